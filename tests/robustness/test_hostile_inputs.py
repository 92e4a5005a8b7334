"""Issue 22, the input side: hostile dataset files give one line (exit 2) and import nothing.

Every case runs the real CLI in a subprocess with a timeout, so a crash in C code (pycocotools'
rasteriser segfaulted on a polygon vertex of 1e9) or a hang (a named pipe read as a label file) is a
test failure, not a dead or stuck pytest. Covered classes (docs/bad-input.md, "Second round"):
numbers out of bounds (`io/bounds.py`), files that are not regular files, XML/YAML bounds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
W, H = 40, 30


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    try:
        return subprocess.run(
            [sys.executable, "-m", "annotator", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:  # a hang (a named pipe read forever) is a failure
        pytest.fail(f"annotator {' '.join(args)} ran past {timeout} s")


def assert_one_line_error(result: subprocess.CompletedProcess, needle: str = "") -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("annotator: error: "), result.stderr[-2000:]
    assert needle in lines[0], lines[0]
    return lines[0]


def stored_rows(project: Path) -> int:
    db = project / ".annotator" / "project.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        return sum(
            con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("images", "categories", "annotations", "boxes")
        )


@pytest.fixture
def proj(tmp_path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    Image.new("RGB", (W, H), (90, 120, 30)).save(folder / "img.png")
    return folder


def _cvat(shape: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
        f'<image id="0" name="img.png" width="{W}" height="{H}">{shape}</image></annotations>'
    )


def _voc(root: Path, bndbox: str = "<xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>"):
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "default.txt").write_text("img\n")
    (root / "Annotations").mkdir()
    (root / "Annotations" / "img.xml").write_text(
        f"<annotation><object><name>car</name><bndbox>{bndbox}</bndbox></object></annotation>"
    )
    (root / "labelmap.txt").write_text("background:0,0,0::\ncar:128,0,0::\n")


def _voc_png(root: Path, values: np.ndarray) -> None:
    _voc(root)
    (root / "SegmentationObject").mkdir()
    Image.fromarray(values).save(root / "SegmentationObject" / "img.png")
    assert Image.open(root / "SegmentationObject" / "img.png").mode.startswith("I")


def _labelme(root: Path, shapes: str) -> None:
    root.mkdir(exist_ok=True)
    (root / "img.json").write_text(
        f'{{"version": "5.5.0", "shapes": {shapes}, "imagePath": "../img.png",'
        f' "imageWidth": {W}, "imageHeight": {H}}}'
    )


def _yolo(root: Path, line: str) -> None:
    (root / "labels").mkdir(parents=True)
    (root / "data.yaml").write_text("names: [car]\n")
    (root / "labels" / "img.txt").write_text(line + "\n")


def _masks(root: Path, classes: str = "id,name\n1,car\n", inst: np.ndarray | None = None) -> None:
    (root / "instances").mkdir(parents=True)
    (root / "semantic").mkdir()
    (root / "classes.csv").write_text(classes)
    if inst is None:
        inst = np.zeros((H, W), np.uint8)
        inst[2:8, 2:8] = 1
    Image.fromarray(inst).save(root / "instances" / "img.png")
    Image.fromarray((inst > 0).astype(np.uint8)).save(root / "semantic" / "img.png")


def _coco(root: Path, bbox: str) -> None:
    root.write_text(
        '{"images": [{"id": 1, "file_name": "img.png", "width": 40, "height": 30}],'
        ' "categories": [{"id": 1, "name": "car"}],'
        f' "annotations": [{{"id": 1, "image_id": 1, "category_id": 1, "bbox": {bbox}}}]}}'
    )


# (id, builder(dataset path), expected part of the one line, extra import args)
NUMBERS = [
    ("cvat-polygon-1e9", lambda d: _cvat_file(d, '<polygon label="c" points="1,1;1e9,1;5,5"/>'),
     "points[2]: 1e+09 is outside the image"),
    ("cvat-polygon-negative-1e9", lambda d: _cvat_file(d, '<polygon label="c" points="1,1;-1e9,1;5,5"/>'),
     "outside the image"),
    ("cvat-box-inf", lambda d: _cvat_file(d, '<box label="c" xtl="0" ytl="0" xbr="1e400" ybr="5"/>'),
     "xbr: must be finite"),
    ("cvat-box-overflow", lambda d: _cvat_file(d, '<box label="c" xtl="-1e308" ytl="0" xbr="1e308" ybr="5"/>'),
     "xtl: -1e+308 is outside the image"),
    ("cvat-box-nan-rotation", lambda d: _cvat_file(d, '<box label="c" xtl="0" ytl="0" xbr="4" ybr="5" rotation="nan"/>'),
     "rotation: must be finite"),
    ("cvat-mask-huge-box", lambda d: _cvat_file(d, '<mask label="c" rle="1" left="0" top="0" width="99999999999" height="1"/>'),
     "width: must be 0..40"),
    ("cvat-mask-many-runs", lambda d: _cvat_file(d, '<mask label="c" rle="' + ",".join(["0"] * 500) + '" left="0" top="0" width="2" height="2"/>'),
     "more runs than the box has pixels"),
    ("cvat-score-inf", lambda d: _cvat_file(d, '<box label="c" xtl="0" ytl="0" xbr="4" ybr="5"><attribute name="score">inf</attribute></box>'),
     "attribute score: must be finite"),
    ("voc-bndbox-inf", lambda d: _voc(d, "<xmin>0</xmin><ymin>0</ymin><xmax>1e400</xmax><ymax>9</ymax>"),
     "bndbox[2]: must be finite"),
    ("voc-bndbox-overflow", lambda d: _voc(d, "<xmin>-1.7e308</xmin><ymin>0</ymin><xmax>1.7e308</xmax><ymax>9</ymax>"),
     "bndbox[0]: -1.7e+308 is outside the image"),
    ("labelme-point-1e9", lambda d: _labelme(d, '[{"label": "c", "points": [[1, 1], [1e9, 1], [5, 5]]}]'),
     "points[2]: 1e+09 is outside the image"),
    ("labelme-point-huge-int", lambda d: _labelme(d, '[{"label": "c", "points": [[1, 1], [' + "9" * 400 + ', 1], [5, 5]]}]'),
     "must be finite, got a 400-digit number"),
    ("labelme-rectangle-1e308", lambda d: _labelme(d, '[{"label": "c", "shape_type": "rectangle", "points": [[-1e308, 0], [1e308, 5]]}]'),
     "outside the image"),
    ("labelme-score-huge-int", lambda d: _labelme(d, '[{"label": "c", "points": [[1, 1], [9, 1], [5, 5]], "score": ' + "9" * 400 + "}]"),
     "score: must be finite"),
    ("labelme-5000-digits", lambda d: _labelme(d, '[{"label": "c", "points": [[1, 1], [' + "9" * 5000 + ', 1], [5, 5]]}]'),
     "not a readable JSON file"),
    ("yolo-value-inf", lambda d: _yolo(d, "0 0.5 0.5 1e400 0.1"), "value 3: must be finite"),
    ("masks-class-id-huge", lambda d: _masks(d, "id,name\n" + "9" * 30 + ",car\n"), "id: must be 0..65535"),
    ("masks-class-id-100-digits", lambda d: _masks(d, "id,name\n" + "9" * 100 + ",car\n"), "id: not a number"),
    ("voc-16bit-instances", lambda d: _voc_png(d, np.full((H, W), 60000, np.uint16)), "pixel values 60000..60000"),
    ("coco-bbox-overflow", lambda d: _coco(d, "[1e308, 0, 1e308, 5]"), "bbox: x = 1e+308 is outside"),
    ("coco-bbox-beyond-image", lambda d: _coco(d, "[10, 0, 1e9, 5]"), "x + width"),
]  # fmt: skip


def _cvat_file(root: Path, shape: str) -> None:
    root.mkdir()
    (root / "annotations.xml").write_text(_cvat(shape))


def _dataset(proj: Path, case: str) -> Path:
    return proj / ("ds.json" if case.startswith("coco") else "ds")


@pytest.mark.parametrize(("case", "build", "needle"), NUMBERS, ids=[n[0] for n in NUMBERS])
def test_out_of_bounds_numbers_give_one_line(proj, case, build, needle):
    dataset = _dataset(proj, case)
    build(dataset)
    fmt = case.split("-")[0]
    result = run_cli("import", str(dataset), "--images", str(proj), "--project", str(proj),
                     "--format", fmt)  # fmt: skip
    assert_one_line_error(result, needle)
    assert stored_rows(proj) == 0


def test_legal_numbers_still_import(proj):
    """The bounds refuse only what lies outside the image (beyond 1 px): edge vertices still work."""
    _cvat_file(proj / "ds", '<polygon label="c" points="0,0;40,0;40,30"/><box label="c" xtl="0" '
               'ytl="0" xbr="40.5" ybr="30"/>')  # fmt: skip
    result = run_cli("import", str(proj / "ds"), "--images", str(proj), "--project", str(proj))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["annotations_added"] == 1 and summary["boxes_added"] == 1


def test_shapes_over_the_edge_are_clipped_with_a_warning(proj):
    """Annotation tools let a shape hang over the image's edge (a CVAT box dragged past the frame, a
    labelme vertex outside): such shapes are clipped to the image and counted, not refused; a box
    wholly outside is dropped with a warning; only vertices further than one image size out fail."""
    _cvat_file(proj / "ds", '<polygon label="c" points="-5,2;45,2;20,33"/><box label="c" xtl="-3" '
               'ytl="1" xbr="44" ybr="20"/><box label="c" xtl="50" ytl="1" xbr="60" ybr="9"/>')  # fmt: skip
    result = run_cli("import", str(proj / "ds"), "--images", str(proj), "--project", str(proj))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["annotations_added"] == 1 and summary["boxes_added"] == 1
    assert summary["clipped"] == 2 and summary["dropped"] == {
        "CVAT boxes wholly outside their image": 1
    }
    assert "2 shapes reached over the image's edge: clipped to it" in result.stderr
    with sqlite3.connect(proj / ".annotator" / "project.db") as db:
        box = db.execute("SELECT x, y, w, h FROM boxes").fetchone()
    assert box == (0, 1, 40, 19)  # clipped to the 40 x 30 image

    labelme = proj / "lm"
    _labelme(labelme, '[{"label": "c", "points": [[-10, 1], [39, 1], [39, 40]]}]')
    result = run_cli("import", str(labelme), "--images", str(proj), "--project", str(proj))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["clipped"] == 1


# ------------------------------------------------------------------------------ not regular files
def _fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.mkfifo(path)


FIFOS = [
    ("labelme-json", "labelme", lambda d: (_labelme(d, "[]"), _fifo(d / "zz.json")), "named pipe"),
    ("labelme-labels", "labelme", lambda d: (_labelme(d, "[]"), _fifo(d / "labels.txt")), "named pipe"),
    ("yolo-label", "yolo", lambda d: (_yolo(d, "0 0.5 0.5 0.2 0.2"), _fifo(d / "labels" / "img.txt")), "named pipe"),
    ("yolo-data-yaml", "yolo", lambda d: (_yolo(d, "0 0.5 0.5 0.2 0.2"), _fifo(d / "data.yaml")), "named pipe"),
    ("masks-png", "masks", lambda d: (_masks(d), _fifo(d / "instances" / "img.png")), "named pipe"),
    ("masks-semantic", "masks", lambda d: (_masks(d), _fifo(d / "semantic" / "img.png")), "named pipe"),
    ("masks-classes", "masks", lambda d: (_masks(d), _fifo(d / "classes.csv")), "named pipe"),
    ("voc-xml", "voc", lambda d: (_voc(d), _fifo(d / "Annotations" / "img.xml")), "named pipe"),
    ("voc-listing", "voc", lambda d: (_voc(d), _fifo(d / "ImageSets" / "Main" / "default.txt")), "named pipe"),
    ("voc-labelmap", "voc", lambda d: (_voc(d), _fifo(d / "labelmap.txt")), "named pipe"),
    ("voc-object-png", "voc", lambda d: (_voc(d), _fifo(d / "SegmentationObject" / "img.png")), "named pipe"),
    ("cvat-xml", "cvat", lambda d: (d.mkdir(), _fifo(d / "annotations.xml")), "named pipe"),
    ("coco-json", "coco", lambda d: _fifo(d), "named pipe"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "fmt", "build", "needle"), FIFOS, ids=[f[0] for f in FIFOS])
@pytest.mark.parametrize("detected", [False, True], ids=["format-given", "detected"])
def test_named_pipes_in_a_dataset_give_one_line(proj, case, fmt, build, needle, detected):
    dataset = proj / ("ds.json" if fmt == "coco" else "ds")
    build(dataset)
    flags = [] if detected else ["--format", fmt]
    result = run_cli("import", str(dataset), "--images", str(proj), "--project", str(proj), *flags,
                     timeout=60)  # fmt: skip
    # Detection skips a pipe (it may then find no format): either way one line, never a hang.
    assert_one_line_error(result, "" if detected else needle)
    assert stored_rows(proj) == 0


# ---------------------------------------------------------------------------------- XML and YAML
def _utf16_doctype(root_tag: str, body: str) -> bytes:
    text = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f"<{root_tag}>{body}</{root_tag}>"
    )
    data = text.encode("utf-16")
    assert b"<!DOCTYPE" not in data  # what the old byte search looked for
    return data


def test_utf16_doctype_is_refused_in_cvat(proj):
    (proj / "ds").mkdir()
    body = "<version>1.1</version><meta><task><labels><label><name>&b;</name></label></labels></task></meta>"
    (proj / "ds" / "annotations.xml").write_bytes(_utf16_doctype("annotations", body))
    for flags in ([], ["--format", "cvat"]):  # detection reads UTF-16 too
        result = run_cli("import", str(proj / "ds"), "--images", str(proj), "--project", str(proj),
                         *flags)  # fmt: skip
        assert_one_line_error(result, "DOCTYPE")
    assert stored_rows(proj) == 0


def test_utf16_doctype_is_refused_in_voc(proj):
    _voc(proj / "ds")
    (proj / "ds" / "Annotations" / "img.xml").write_bytes(
        _utf16_doctype("annotation", "<object><name>&b;</name></object>")
    )
    result = run_cli("import", str(proj / "ds"), "--images", str(proj), "--project", str(proj))
    assert_one_line_error(result, "DOCTYPE")
    assert stored_rows(proj) == 0


def test_deep_xml_is_refused(proj):
    (proj / "ds").mkdir()
    body = "<version>1.1</version>" + "<meta>" * 5000 + "</meta>" * 5000
    (proj / "ds" / "annotations.xml").write_text(f"<annotations>{body}</annotations>")
    result = run_cli("import", str(proj / "ds"), "--images", str(proj), "--project", str(proj),
                     "--format", "cvat")  # fmt: skip
    assert_one_line_error(result, "nested deeper than 64")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("names: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply"),
        ("names: [car]\n" + "# padding\n" * (2 * 2**20), "more than the"),  # > 16 MiB
        ("names: !!python/object/apply:os.system ['true']\n", "not readable YAML"),
    ],
    ids=["deep", "huge", "python-tag"],
)
def test_hostile_yaml_is_refused(proj, text, needle):
    _yolo(proj / "ds", "0 0.5 0.5 0.2 0.2")
    (proj / "ds" / "data.yaml").write_text(text)
    result = run_cli("import", str(proj / "ds"), "--images", str(proj), "--project", str(proj),
                     "--format", "yolo")  # fmt: skip
    assert_one_line_error(result, needle)
    assert stored_rows(proj) == 0


# ------------------------------------------------------------------------------------- archives
def _bomb(path: Path, declared: int, zeros_mb: int) -> None:
    """A .tar.gz whose first header is a pax extended header declaring `declared` bytes, followed
    by `zeros_mb` MiB of zeros (a few hundred KB compressed)."""
    import gzip
    import tarfile

    info = tarfile.TarInfo("annotator-cache.json")
    info.size, info.type = declared, tarfile.XHDTYPE
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(info.tobuf(format=tarfile.USTAR_FORMAT))
        block = bytes(1 << 20)
        for _ in range(zeros_mb):
            out.write(block)


def test_cache_import_refuses_a_huge_extended_header_before_buffering(tmp_path):
    """Before the fix tarfile read the declared pax header whole: 643 MB peak RSS for a 300 KB file
    (300 MiB of zeros behind a header declaring 3 GiB; 200 MiB here). Now the 512-byte header is
    refused: 34 MB."""
    archive = tmp_path / "bomb.tar.gz"
    _bomb(archive, 3 << 30, 200)
    assert archive.stat().st_size < 2 << 20
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from annotator.cacheops.transfer import import_subset\n"
        "try:\n"
        f"    import_subset(Path({str(archive)!r}), Path({str(tmp_path / 'cache')!r}))\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(hwm.split()[1]) // 1024)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    message, peak_mb = result.stdout.strip().splitlines()
    assert message.startswith("AnnotatorError") and "extended header of 3221225472 bytes" in message
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's (pytest's) peak
    assert int(peak_mb) < 200, peak_mb  # the 300 MiB behind the header were never buffered


def test_cache_import_cli_refuses_a_gnu_long_name_bomb_with_one_line(tmp_path):
    import gzip
    import tarfile

    archive = tmp_path / "long.tar.gz"
    info = tarfile.TarInfo("././@LongLink")
    info.size, info.type = 1 << 30, tarfile.GNUTYPE_LONGNAME
    with gzip.open(archive, "wb") as out:
        out.write(info.tobuf(format=tarfile.USTAR_FORMAT) + bytes(1 << 16))
    result = run_cli("cache", "import", str(archive), "--cache-dir", str(tmp_path / "cache"))
    assert_one_line_error(result, "extended header of 1073741824 bytes")


# ------------------------------------------------------------------------------------- detection
def test_a_folder_matching_two_formats_asks_for_format(proj):
    """A YOLO folder that also holds a VOC layout: one line naming both, nothing imported; with
    --format the named one is imported."""
    ds = proj / "ds"
    _yolo(ds, "0 0.5 0.5 0.2 0.2")
    (ds / "ImageSets" / "Main").mkdir(parents=True)
    (ds / "ImageSets" / "Main" / "default.txt").write_text("img\n")
    (ds / "Annotations").mkdir()
    result = run_cli("import", str(ds), "--images", str(proj), "--project", str(proj))
    line = assert_one_line_error(result, "looks like several dataset formats (yolo, voc)")
    assert "--format" in line
    assert stored_rows(proj) == 0
    result = run_cli("import", str(ds), "--images", str(proj), "--project", str(proj),
                     "--format", "yolo")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["boxes_added"] == 1


@pytest.mark.parametrize(
    ("data_yaml", "labelmap", "needle"),
    [
        ("names: {.inf: car}\n", None, "names: keys must be class indices"),
        (None, "background:0,0,0::\ncar:\u00b2,0,0::\n", "colour must be r,g,b integers"),
        (None, "background:0,0,0::\ncar:999,0,0::\n", "colour must be r,g,b integers"),
    ],
    ids=["yolo-inf-key", "voc-superscript-digit", "voc-colour-999"],
)
def test_odd_numbers_in_class_lists(proj, data_yaml, labelmap, needle):
    ds = proj / "ds"
    if data_yaml is not None:
        _yolo(ds, "0 0.5 0.5 0.2 0.2")
        (ds / "data.yaml").write_text(data_yaml)
    else:
        _voc(ds)
        (ds / "labelmap.txt").write_text(labelmap, encoding="utf-8")
    result = run_cli("import", str(ds), "--images", str(proj), "--project", str(proj))
    assert_one_line_error(result, needle)
    assert stored_rows(proj) == 0


EVAL_SCRIPT = """
import json, sys
from pathlib import Path
from annotator.errors import AnnotatorError
from annotator.evaluation.datasets import coco_dataset
folder = Path(sys.argv[1])
doc = {"images": [{"id": 1, "file_name": "img.png", "width": int(sys.argv[3]), "height": 30}],
       "categories": [{"id": 1, "name": "c"}],
       "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                        "segmentation": json.loads(sys.argv[2])}]}
(folder / "a.json").write_text(json.dumps(doc))
try:
    for sample in coco_dataset(folder / "a.json", folder).samples:
        sample.load()
except AnnotatorError as error:
    print(error)
"""


@pytest.mark.parametrize(
    ("segmentation", "width", "needle"),
    [
        ("[[1, 1, 1e9, 1, 5, 5]]", 40, "polygon[2]: 1e+09 is outside the image"),
        ('{"size": [1000000, 1000000], "counts": "abc"}', 40, "segmentation size must be"),
        ("[[1, 1, 9, 1, 5, 5]]", 10**9, "width: must be 1..150000000"),
    ],
    ids=["polygon-1e9", "rle-size", "huge-width"],
)
def test_evaluation_coco_reader_is_bounded(proj, segmentation, width, needle):
    """`annotator evaluate --coco`'s reader: the same bounds before pycocotools (in a subprocess:
    a segfault or a 1 TB allocation fails the test instead of killing pytest)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", EVAL_SCRIPT, str(proj), segmentation, str(width)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert needle in result.stdout and len(result.stdout.strip().splitlines()) == 1, result.stdout


def test_cache_import_refuses_members_past_the_declared_count(tmp_path):
    """The manifest says how many files follow; one more is refused before it is read."""
    import io
    import tarfile

    archive = tmp_path / "extra.tar"
    manifest = b'{"bytes": 0, "files": 0, "format": "annotator-cache-subset", "version": 1}'
    with tarfile.open(archive, "w") as tar:
        for name, data in (("annotator-cache.json", manifest), ("text/text-x.npz", b"PK")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result = run_cli("cache", "import", str(archive), "--cache-dir", str(tmp_path / "cache"))
    assert_one_line_error(result, "is past the number of files the archive declares")
    assert not list((tmp_path / "cache").rglob("*.npz"))
