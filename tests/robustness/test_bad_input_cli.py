"""Issue 4 through the real `annotator` command: every kind of bad input gives exit 2 and one line.

Most cases call `annotator.cli.main([...])` in-process (the same code the console script runs, minus
the interpreter start-up); the cases where the process boundary matters (a non-UTF-8 file name on
stderr, two processes writing one project) run real subprocesses. See docs/bad-input.md for the table.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from annotator.cli import main
from annotator.models import weights
from annotator.store import Project
from tests.conftest import cli_flags
from tests.timing import record

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(capsys):
    """Run `annotator ARGS` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse usage errors
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def one_line_error(result: tuple[int, str, str], *needles: str) -> str:
    """Exit 2, no traceback, one error line (the last; a progress bar may precede it) naming what
    is wrong."""
    code, _, err = result
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip()]
    errors = [line for line in lines if line.startswith("annotator")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for needle in needles:
        assert needle in errors[0], err
    return errors[0]


@pytest.fixture
def flags(engine_args, tmp_path) -> list[str]:
    return [*cli_flags(engine_args), "--cache-dir", str(tmp_path / "cache")]


def _set(flags: list[str], flag: str, value: object) -> list[str]:
    out = list(flags)
    out[out.index(flag) + 1] = str(value)
    return out


def _pattern(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, (x * 7 + y * 3) % 256], -1)
    image[height // 5 : height // 2, width // 6 : width // 2] = (240, 30, 30)  # off-centre block
    return image.astype(np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but has no pixel data (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _odd_images(folder: Path) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """Files that must load (name -> (width, height)) and files that must fail (name -> reason)."""
    folder.mkdir(parents=True, exist_ok=True)
    good: dict[str, tuple[int, int]] = {}
    Image.fromarray(_pattern(30, 40)).save(folder / "png_named.jpg", format="PNG")
    good["png_named.jpg"] = (40, 30)
    grey16 = (np.arange(24 * 36, dtype=np.uint32).reshape(24, 36) * 70).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "grey16.png")
    good["grey16.png"] = (36, 24)
    Image.new("CMYK", (20, 16), (255, 0, 0, 0)).save(folder / "cmyk.jpg", quality=95)
    good["cmyk.jpg"] = (20, 16)
    Image.fromarray(_pattern(18, 26)).convert("P").save(folder / "palette.png")
    good["palette.png"] = (26, 18)
    rgba = np.dstack([_pattern(22, 28), np.full((22, 28), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    good["rgba.png"] = (28, 22)
    Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(folder / "one_pixel.png")
    good["one_pixel.png"] = (1, 1)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide x 30 high, shown 30 wide x 40 high
    Image.fromarray(_pattern(30, 40)).save(folder / "exif6.jpg", quality=95, exif=exif)
    good["exif6.jpg"] = (30, 40)

    bad: dict[str, str] = {}
    (folder / "zero.jpg").write_bytes(b"")
    bad["zero.jpg"] = "the file is empty"
    buffer = io.BytesIO()
    Image.fromarray(_pattern(64, 64)).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    bad["truncated.jpg"] = "truncated or corrupt"
    (folder / "text.png").write_text("this is a text file with an image extension\n")
    bad["text.png"] = "not an image"
    (folder / "bomb.png").write_bytes(_png_header_only(40_000, 40_000))
    bad["bomb.png"] = "image too large"
    return good, bad


# ------------------------------------------------------------------------------------------ images
def test_odd_and_broken_images_through_embed_and_segment(cli, flags, tmp_path):
    folder = tmp_path / "images"
    good, bad = _odd_images(folder)
    code, _, err = cli("embed", folder, *flags)
    assert code == 1  # some images could not be embedded; the others were
    assert f"{len(good)} embedded, 0 already cached, {len(bad)} failed" in err
    for name, reason in bad.items():
        (line,) = [x for x in err.splitlines() if f"skipped {name}:" in x]
        assert reason in line and str(folder / name) in line
    assert "Traceback" not in err
    # Everything that embedded is cached: a second run encodes nothing.
    assert (
        f"0 embedded, {len(good)} already cached, {len(bad)} failed"
        in cli("embed", folder, *flags)[2]
    )
    for name, (width, height) in good.items():
        code, out, err = cli("segment", folder / name, "--point", "0,0", *flags)
        assert code == 0, err
        result = json.loads(out)
        assert (result["width"], result["height"]) == (width, height), name
        assert result["rle"]["size"] == [height, width]
    for name, reason in bad.items():
        one_line_error(cli("segment", folder / name, "--point", "1,1", *flags), name, reason)


def test_exif_rotated_mask_lines_up_and_export_has_the_rotated_size(cli, flags, tmp_path):
    """A JPEG stored 40x30 with orientation 6 is shown 30x40: the mask made through `segment` on it is
    exactly the mask made on those upright pixels saved losslessly without EXIF, and the export says
    30x40."""
    folder = tmp_path / "project"
    folder.mkdir()
    rotated = folder / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_pattern(30, 40)).save(rotated, quality=95, exif=exif)
    with Image.open(rotated) as raw:
        stored = np.asarray(raw.convert("RGB"))
    upright = np.rot90(stored, -1)  # orientation 6: shown turned 90 degrees clockwise
    assert upright.shape == (40, 30, 3)
    reference = tmp_path / "upright.png"
    Image.fromarray(np.ascontiguousarray(upright)).save(reference)
    box = ["--box", "3,4,20,33"]  # fits the upright 30x40 picture only
    code, out, err = cli("segment", rotated, *box, "--save", folder, "--category", "thing", *flags)
    assert code == 0, err
    made = json.loads(out)
    code, out, err = cli("segment", reference, *box, *flags)
    assert code == 0, err
    expected = json.loads(out)
    assert (made["width"], made["height"]) == (30, 40)
    decode = lambda r: mask_utils.decode({**r, "counts": r["counts"].encode()}).astype(bool)  # noqa: E731
    assert decode(made["rle"]).shape == (40, 30)
    assert np.array_equal(decode(made["rle"]), decode(expected["rle"]))
    assert decode(made["rle"]).any()

    coco = tmp_path / "coco.json"
    code, _, err = cli("export", folder, "-o", coco)
    assert code == 0, err
    doc = json.loads(coco.read_text())
    assert [(i["file_name"], i["width"], i["height"]) for i in doc["images"]] == [
        ("rotated.jpg", 30, 40)
    ]
    (ann,) = doc["annotations"]
    assert np.array_equal(decode(ann["segmentation"]), decode(made["rle"]))


def test_a_file_deleted_during_embed_is_skipped(cli, flags, tmp_path, monkeypatch):
    from annotator.engine import Engine

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(_pattern(20 + i, 30)).save(folder / f"{i}.png")
    real_embed = Engine.embed

    def embed_then_delete(self, image, *args, **kwargs):
        (folder / "1.png").unlink(missing_ok=True)  # deleted after the folder was listed
        return real_embed(self, image, *args, **kwargs)

    monkeypatch.setattr(Engine, "embed", embed_then_delete)
    code, _, err = cli("embed", folder, *flags)
    assert code == 1
    assert "2 embedded, 0 already cached, 1 failed" in err
    assert f"skipped 1.png: {folder / '1.png'}: file not found" in err


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes only on Linux")
def test_non_utf8_file_names_through_the_real_command(engine_args, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    good = folder / os.fsdecode(b"caf\xe9.png")
    Image.fromarray(_pattern(20, 30)).save(good)
    (folder / os.fsdecode(b"vid\xe9.jpg")).write_bytes(b"")
    env = {**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    flags = [*cli_flags(engine_args), "--cache-dir", str(tmp_path / "cache")]
    script = (
        "import json, sys; from annotator.cli import main; embed, segment = json.loads(sys.argv[1]); "
        "print('RC', main(embed), file=sys.stderr, flush=True); sys.exit(main(segment))"
    )
    commands = [["embed", str(folder), *flags], ["segment", str(good), "--point", "3,3", *flags]]
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(commands)],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    err = done.stderr.decode("utf-8")  # printable: the bad bytes are escaped
    assert "Traceback" not in err
    assert "RC 1" in err and "1 embedded, 0 already cached, 1 failed" in err
    assert "skipped vid\\xe9.jpg:" in err and "the file is empty" in err
    assert done.returncode == 0, err
    result = json.loads(done.stdout)
    assert (result["width"], result["height"]) == (30, 20)


# ------------------------------------------------------------------------------------- checkpoints
def test_bad_checkpoints_are_one_line_errors(
    cli, flags, engine_args, tiny_vit_clip_files, tmp_path
):
    image = tmp_path / "a.png"
    Image.fromarray(_pattern(20, 30)).save(image)
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "notes.pth").write_text("these are my notes, not weights\n")
    torch.save(torch.nn.Linear(3, 4).state_dict(), tmp_path / "linear.pth")
    data = Path(engine_args["sam_checkpoint"]).read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    sam_cases = {
        "missing.pth": "file not found",
        "empty.pth": "empty",
        "notes.pth": "not a PyTorch checkpoint",
        "linear.pth": "not a Segment-Anything state dict",
        "cut.pth": "truncated or corrupt",
    }
    for name, reason in sam_cases.items():
        bad = _set(flags, "--sam-checkpoint", tmp_path / name)
        one_line_error(cli("segment", image, "--point", "3,3", *bad), str(tmp_path / name), reason)
    vit_config, vit_weights = tiny_vit_clip_files
    # CLIP config and weights of two different models: both files are named.
    mixed = _set(flags, "--clip-weights", vit_weights)
    one_line_error(
        cli("segment", image, "--point", "3,3", *mixed),
        str(vit_weights),
        str(engine_args["clip_config"]),
    )
    mixed = _set(flags, "--clip-config", vit_config)
    one_line_error(
        cli("embed", image.parent, *mixed), str(vit_config), str(engine_args["clip_weights"])
    )
    one_line_error(
        cli("segment", image, "--point", "3,3", *_set(flags, "--clip-weights", tmp_path / "x.pt")),
        str(tmp_path / "x.pt"),
        "not found",
    )
    one_line_error(
        cli("vocab", "build", *_set(flags, "--clip-config", tmp_path / "notes.pth")),
        str(tmp_path / "notes.pth"),
        "JSON",
    )


def test_truncated_download_and_hash_mismatch_through_the_cli(cli, tmp_path, monkeypatch):
    from tests.file_server import FileServer
    from tests.models.test_weights import PAYLOAD, SHA

    monkeypatch.setenv("ANNOTATOR_CACHE", str(tmp_path / "cache"))
    server = FileServer({"/model.pth": PAYLOAD})
    try:
        entry = weights.KnownWeights(
            "tiny_test", "sam", f"{server.url}/model.pth", "tiny.pth", len(PAYLOAD), SHA, "test"
        )
        monkeypatch.setitem(weights.KNOWN, "tiny_test", entry)
        target = tmp_path / "cache" / "weights" / "tiny.pth"
        server.cut_after = 1_000_000  # the connection drops: a truncated download
        one_line_error(cli("weights", "download", "tiny_test"), "interrupted", "resumes")
        assert Path(f"{target}.part").stat().st_size == 1_000_000 and not target.exists()
        one_line_error(cli("weights", "verify", "tiny_test"), str(target), "no such file")
        truncated = tmp_path / "truncated.pth"
        truncated.write_bytes(PAYLOAD[:1_000_000])
        one_line_error(cli("weights", "verify", "tiny_test", truncated), "does not match")
        server.cut_after = None
        code, out, err = cli("weights", "download", "tiny_test")
        assert code == 0, err
        assert out.strip() == str(target)
        assert target.read_bytes() == PAYLOAD
        assert server.requests[-1] == ("/model.pth", "bytes=1000000-")  # resumed
        assert cli("weights", "verify", "tiny_test")[1].strip() == f"{target}: ok"
        # The server sends other bytes than the published sha256: deleted, clear message.
        target.unlink()
        wrong = weights.KnownWeights(
            "tiny_test", "sam", entry.url, "tiny.pth", len(PAYLOAD), "0" * 64, "test"
        )
        monkeypatch.setitem(weights.KNOWN, "tiny_test", wrong)
        one_line_error(cli("weights", "download", "tiny_test"), "sha256", "deleted")
        assert not target.exists() and not Path(f"{target}.part").exists()
        one_line_error(cli("weights", "download", "nope"), "'nope'", "sam_vit_b")
    finally:
        server.close()


# ---------------------------------------------------------------------------------------- COCO
def test_coco_import_errors_change_nothing(cli, tmp_path):
    project = images = tmp_path / "project"
    images.mkdir()
    Image.fromarray(_pattern(12, 16)).save(images / "a.png")
    valid = {
        "images": [{"id": 1, "file_name": "a.png", "width": 16, "height": 12}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 8, 1, 8, 6, 1, 6]]}
        ],
    }
    path = tmp_path / "in.json"
    path.write_text(json.dumps(valid))
    code, out, err = cli("import", path, "--images", images, "--project", project)
    assert code == 0, err
    assert json.loads(out)["annotations_added"] == 1
    db = project / ".annotator" / "project.db"

    def broken(change) -> dict:
        doc = json.loads(json.dumps(valid))
        change(doc)
        return doc

    cases = {
        "{not json": "JSON",
        json.dumps([1, 2]): "must be an object",
        json.dumps(broken(lambda d: d.pop("images"))): "missing key 'images'",
        json.dumps(broken(lambda d: d["annotations"][0].pop("segmentation"))): "segmentation",
        json.dumps(broken(lambda d: d["annotations"][0].update(image_id=9))): "no image has id 9",
        json.dumps(
            broken(
                lambda d: d["annotations"][0].update(
                    segmentation={"size": [12, 16], "counts": "1~"}
                )
            )
        ): "counts",
        json.dumps(
            broken(lambda d: d["annotations"][0].update(segmentation=[[1, 1, 90, 1, 8, 6]]))
        ): "polygon reaches",
        json.dumps(broken(lambda d: d["annotations"][0].update(bbox=[0, 0, -3, 2]))): "negative",
        json.dumps(broken(lambda d: d["annotations"].append(dict(d["annotations"][0])))): (
            "duplicate annotation id"
        ),
        json.dumps(broken(lambda d: d["images"][0].update(file_name="gone.png"))): (
            "gone.png: file not found"
        ),
    }
    for text, needle in cases.items():
        path.write_text(text)
        line = one_line_error(cli("import", path, "--images", images, "--project", project), needle)
        assert line.startswith(f"annotator: error: {path}: "), line
    path.write_bytes(b"\xff\xfe\x00garbage")
    one_line_error(cli("import", path, "--images", images, "--project", project), str(path))
    with Project(db) as store:
        assert store.integrity_ok() and len(store.annotations()) == 1


# ---------------------------------------------------------------------------------- vocabularies
def test_vocabulary_files_through_the_cli(cli, flags, tmp_path):
    cases = {
        "empty.txt": (b"", "no entries"),
        "comments.txt": (b"# one\n# two\n\n", "no entries"),
        "dup.txt": (b"dog\ncat\nDog, hound\n", "duplicate name 'Dog' (first on line 1)"),
        "latin1.txt": ("dog\ncaf\u00e9\n".encode("latin-1"), ":2: not UTF-8"),
        "long.txt": (b"ok\n" + b"x" * 5000 + b"\n", ":2: name longer than 200"),
    }
    for name, (content, reason) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        one_line_error(cli("vocab", "list", "--vocabulary", path), str(path), reason)
    one_line_error(cli("vocab", "list", "--vocabulary", tmp_path / "none.txt"), "none.txt")
    one_line_error(cli("vocab", "add", "cat", "--vocabulary", tmp_path / "dup.txt"), "dup.txt")
    # The model-using commands refuse the same files before loading any model.
    image = tmp_path / "a.png"
    Image.fromarray(_pattern(20, 30)).save(image)
    bad = _set(flags, "--vocabulary", tmp_path / "dup.txt")
    one_line_error(cli("segment", image, "--point", "3,3", *bad), "dup.txt", "duplicate")

    big = tmp_path / "big.txt"
    big.write_text("".join(f"thing {i}, synonym {i}\n" for i in range(200_000)), encoding="utf-8")
    started = time.perf_counter()
    code, out, err = cli("vocab", "list", "--vocabulary", big, "--search", "synonym 199999")
    seconds = time.perf_counter() - started
    assert code == 0, err
    assert out.splitlines() == ["thing 199999, synonym 199999"]
    record("vocab list over 200k lines", seconds=seconds, bound_was=8)


# ---------------------------------------------------------------------------------------- prompts
def test_prompts_outside_zero_size_and_hundreds_of_points(cli, flags, engine, tmp_path):
    from segment_anything import SamPredictor

    image = tmp_path / "a.png"
    pixels = _pattern(48, 64)
    Image.fromarray(pixels).save(image)
    rng = np.random.default_rng(3)
    xy = rng.uniform(-10, 70, size=(300, 2)).round(2)  # some outside the image too
    positive = rng.random(300) < 0.6
    points = [(float(x), float(y), bool(p)) for (x, y), p in zip(xy, positive, strict=True)]

    embedded = engine.embed(pixels)
    proposal = engine.segment(embedded, points)
    predictor = SamPredictor(engine.sam.model)
    predictor.set_image(pixels)
    masks, scores, _ = predictor.predict(xy, positive.astype(int), multimask_output=False)
    assert np.array_equal(proposal.mask, masks[0])  # 300 points: exactly what upstream SAM gives
    assert proposal.score == pytest.approx(float(scores[0]), abs=1e-5)

    args = [a for x, y, p in points for a in ("--point", f"{x},{y},{int(p)}")]
    code, out, err = cli("segment", image, *args, "--top-k", "2", *flags)
    assert code == 0, err
    result = json.loads(out)
    decoded = mask_utils.decode({**result["rle"], "counts": result["rle"]["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), masks[0])
    # Points and boxes outside the image, with negative coordinates, are accepted as such.
    code, out, err = cli("segment", image, "--point", "-20,-5", "--point", "500,30,0", *flags)
    assert code == 0, err
    assert json.loads(out)["rle"]["size"] == [48, 64]
    code, out, err = cli("segment", image, "--box", "-10,-10,80,60", *flags)
    assert code == 0, err
    assert json.loads(out)["width"] == 64
    one_line_error(cli("segment", image, "--box", "10,10,10,30", *flags), "no area")
    one_line_error(cli("segment", image, "--box", "5,5,5,5", *flags), "no area")
    one_line_error(cli("segment", image, *flags), "point")
    code, _, err = cli("segment", image, "--point", "nan,3", *flags)
    assert code == 2 and "Traceback" not in err


# ------------------------------------------------------------------------------ two writers at once
_SAVER = """
import sys
import time
import numpy as np
from pathlib import Path
from annotator.cli import save_mask

project, image, offset = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
while not (project / "go").exists():  # start together, so that the commits interleave
    time.sleep(0.002)
ids = []
for k in range(25):
    mask = np.zeros((24, 32), bool)
    mask[k % 20 : k % 20 + 3, offset : offset + 4] = True
    ids.append(save_mask(project, image, mask, f"label{offset}", 0.5, {"points": [[1, 1, 1]]}))
print(" ".join(map(str, ids)))
"""


def test_two_processes_save_into_one_project_at_once(tmp_path):
    """Two `segment --save` writers (the real `save_mask`) interleave commits; none is lost."""
    folder = tmp_path / "project"
    folder.mkdir()
    image = folder / "a.png"
    Image.fromarray(_pattern(24, 32)).save(image)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SAVER, str(folder), str(image), str(offset)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for offset in (0, 16)
    ]
    time.sleep(0.3)  # both interpreters have started and imported what they need
    (folder / "go").touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    ids = [[int(i) for i in out.split()] for out, _ in outputs]
    assert len(set(ids[0]) | set(ids[1])) == 50
    with Project.open_folder(folder) as project:
        assert project.integrity_ok()
        assert len(project.images()) == 1  # both writers found or made the same image row
        stored = {a.id: a for a in project.annotations()}
        assert set(stored) == set(ids[0]) | set(ids[1])
        for offset, written in zip((0, 16), ids, strict=True):
            for k, ann_id in enumerate(written):
                assert stored[ann_id].category == f"label{offset}"
                assert stored[ann_id].bbox == (float(offset), float(k % 20), 4.0, 3.0)


# ------------------------------------------------------ store, cache, device, CLIP config (#11)
@pytest.mark.parametrize("device", ["banana", "cuda:99", "cuda:-1", "xpu", "bad\nname"])
def test_a_bad_device_is_one_line(cli, flags, tmp_path, device, monkeypatch):
    image = tmp_path / "a.png"
    Image.fromarray(_pattern(40, 50)).save(image)
    if device == "cuda:99":  # as on a machine with one GPU, whether or not this one has any
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    line = one_line_error(cli("segment", image, "--point", "5,5", *_set(flags, "--device", device)))
    assert "device" in line
    assert "only 1 CUDA GPUs" in line if device == "cuda:99" else True


def test_cuda_without_cuda_is_one_line(cli, flags, tmp_path, monkeypatch):
    image = tmp_path / "a.png"
    Image.fromarray(_pattern(40, 50)).save(image)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    one_line_error(
        cli("segment", image, "--point", "5,5", *_set(flags, "--device", "cuda")),
        "no usable CUDA GPU",
    )


def test_a_cache_path_that_is_a_file_is_one_line(cli, flags, tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(_pattern(40, 50)).save(image)
    cache = tmp_path / "cache-file"
    cache.write_text("I am a file")
    one_line_error(
        cli("segment", image, "--point", "5,5", *_set(flags, "--cache-dir", cache)),
        "cache-file: the cache path is a file",
    )
    assert cache.read_text() == "I am a file"


def test_a_crafted_clip_config_through_the_cli_is_one_line(cli, flags, tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(_pattern(40, 50)).save(image)
    config = Path(flags[flags.index("--clip-config") + 1])
    cfg = json.loads(config.read_text())
    cfg["text_cfg"]["layers"] = 10**6
    crafted = tmp_path / "crafted.json"
    crafted.write_text(json.dumps(cfg))
    start = time.perf_counter()
    one_line_error(
        cli("segment", image, "--point", "5,5", *_set(flags, "--clip-config", crafted)),
        "text_cfg.layers = 1000000 is outside",
    )
    assert time.perf_counter() - start < 90  # never builds a million layers (minutes, or OOM)


def test_dot_annotator_as_a_file_through_save_is_one_line(cli, flags, tmp_path):
    folder = tmp_path / "P"
    folder.mkdir()
    Image.fromarray(_pattern(40, 50)).save(folder / "a.png")
    (folder / ".annotator").write_text("a file")
    args = ("segment", folder / "a.png", "--point", "20,20", "--save", folder, "--category", "x")
    one_line_error(cli(*args, *flags), ".annotator")
    assert (folder / ".annotator").read_text() == "a file"


def test_segment_save_matches_images_by_content_not_name(cli, flags, tmp_path):
    project, other = tmp_path / "P", tmp_path / "Q"
    project.mkdir(), other.mkdir()
    Image.fromarray(_pattern(40, 50)).save(project / "a.png")
    Image.fromarray(_pattern(40, 50)[::-1].copy()).save(other / "a.png")  # same name and size
    save = ("--point", "20,20", "--save", project, "--category", "thing")
    code, _, err = cli("segment", project / "a.png", *save, *flags)
    assert code == 0, err
    one_line_error(cli("segment", other / "a.png", *save, *flags), "a different image")
    (other / "copy.png").write_bytes((project / "a.png").read_bytes())
    code, _, err = cli("segment", other / "copy.png", *save, *flags)  # same bytes: same image
    assert code == 0, err
    with Project.open_folder(project) as p:
        (image,) = p.images()
        assert image.file_name == "a.png" and len(p.annotations(image.id)) == 2


def test_export_never_overwrites_the_project_database(cli, flags, tmp_path):
    folder = tmp_path / "P"
    folder.mkdir()
    Image.fromarray(_pattern(40, 50)).save(folder / "a.png")
    save = ("--point", "20,20", "--save", folder, "--category", "thing")
    assert cli("segment", folder / "a.png", *save, *flags)[0] == 0
    db = folder / ".annotator" / "project.db"
    before = db.read_bytes()
    link = tmp_path / "innocent.json"
    link.symlink_to(db)
    for target in (
        db,
        folder / ".annotator" / "project.db-wal",
        folder / ".annotator" / "x.json",
        link,
    ):
        one_line_error(cli("export", folder, "-o", target), "must not replace project files")
    with Project(tmp_path / "other.db"):
        pass
    one_line_error(cli("export", folder, "-o", tmp_path / "other.db"), "SQLite database")
    assert db.read_bytes() == before
    with Project.open_folder(folder) as p:
        assert p.integrity_ok() and len(p.annotations()) == 1


def test_a_read_only_cache_holding_a_corrupt_file_recomputes_with_one_warning(
    engine, tmp_path, monkeypatch, caplog
):
    """Root ignores modes, so 'read-only' is simulated: removing and writing both fail with EACCES."""
    import dataclasses
    import logging

    import annotator.cache as cache_module
    from annotator.cache import ArrayCache

    image = tmp_path / "a.png"
    Image.fromarray(_pattern(40, 50)).save(image)
    cache = ArrayCache(tmp_path / "ro-cache")
    fresh = dataclasses.replace(engine, cache=cache) if dataclasses.is_dataclass(engine) else None
    if fresh is None:
        fresh = type(engine)(
            engine.sam, engine.clip, engine.head, engine.index, cache, engine.device
        )
    expected = engine.embed(image)
    digest = expected.image_hash
    corrupt = cache.path("sam", engine.sam.identity, digest)
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    real_unlink = Path.unlink

    def refuse(self, *args, **kwargs):
        if cache.root in self.parents:
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, *args, **kwargs)

    def no_write(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refuse)
    monkeypatch.setattr(cache_module, "atomic_write_with", no_write)
    with caplog.at_level(logging.WARNING, logger="annotator.cache"):
        for _ in range(3):
            got = fresh.embed(image)
            np.testing.assert_array_equal(got.sam.features, expected.sam.features)
    warnings = [r for r in caplog.records if r.name == "annotator.cache"]
    assert len(warnings) <= 2, [r.getMessage() for r in warnings]  # one per cause, not per call
    assert any("cannot be removed" in r.getMessage() for r in warnings)
    assert all("\n" not in r.getMessage() for r in warnings)
    assert corrupt.read_bytes() == b"PK\x03\x04 not really a zip"


# ------------------------------------------------------------------- issue 11: hostile data files
_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"


@pytest.fixture
def fake_gs(tmp_path, monkeypatch):
    """A `gs` first on PATH that logs each call and then hangs (see test_images.py)."""
    from PIL import EpsImagePlugin

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gs.log"
    (bin_dir / "gs").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nsleep 30\n')
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return log


@contextlib.contextmanager
def _hard_limit(seconds: int):
    """Turn a hang into a test failure (SIGALRM interrupts a blocking open of a FIFO too)."""

    def hang(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for gs; SIGALRM")
def test_postscript_named_jpg_through_segment_and_embed(cli, flags, fake_gs, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    marker = tmp_path / "MARKER"
    (folder / "writes.jpg").write_bytes(_EPS + f"({marker}) (w) file closefile\n".encode())
    (folder / "loops.jpg").write_bytes(_EPS + b"{ } loop\n")
    Image.fromarray(_pattern(20, 30)).save(folder / "fine.png")
    started = time.monotonic()
    with _hard_limit(120):
        for name in ("writes.jpg", "loops.jpg"):
            one_line_error(
                cli("segment", folder / name, "--point", "1,1", *flags),
                name,
                "a PostScript/EPS file; only raster images",
            )
        code, _, err = cli("embed", folder, *flags)
    assert code == 1 and "1 embedded, 0 already cached, 2 failed" in err
    assert "skipped loops.jpg:" in err and "skipped writes.jpg:" in err
    assert time.monotonic() - started < 110  # under _hard_limit(120): nothing waits on `gs`
    assert not marker.exists() and not fake_gs.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_in_the_folder_does_not_block_embed(cli, flags, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(_pattern(20, 30)).save(folder / "a.png")
    os.mkfifo(folder / "pipe.jpg")  # nobody writes to it: opening it plainly blocks forever
    with _hard_limit(120):
        code, _, err = cli("embed", folder, *flags)
        assert code == 1 and "1 embedded, 0 already cached, 1 failed" in err, err
        assert "skipped pipe.jpg:" in err and "a named pipe, not a regular file" in err
        # cli.py refuses it before loading (its message says "no such image file"): one line
        one_line_error(cli("segment", folder / "pipe.jpg", "--point", "1,1", *flags), "pipe.jpg")


def test_extreme_shapes_through_segment_and_embed(cli, flags, tmp_path):
    """1x1 and thin images work while SAM can resize them (long side at most 2 x its input size
    times the short side: 512 for the tiny model, 2048 for real SAM); thinner ones, like 1x3000 and
    3000x1, are one line naming the file."""
    folder = tmp_path / "images"
    folder.mkdir()
    good = {"dot.png": (1, 1), "thin.png": (1, 500), "thin_tall.png": (500, 1)}
    too_thin = {"wide.png": (1, 3000), "tall.png": (3000, 1)}
    for name, (height, width) in {**good, **too_thin}.items():
        Image.fromarray(_pattern(height, width)).save(folder / name)
    code, _, err = cli("embed", folder, *flags)
    assert code == 1 and "3 embedded, 0 already cached, 2 failed" in err, err
    assert "Traceback" not in err
    for name in too_thin:
        (line,) = [x for x in err.splitlines() if f"skipped {name}:" in x]
        assert "is too thin to segment" in line
        one_line_error(cli("segment", folder / name, "--point", "0,0", *flags), name, "too thin")
    for name, (height, width) in good.items():
        code, out, err = cli("segment", folder / name, "--point", "0,0", *flags)
        assert code == 0, err
        result = json.loads(out)
        assert result["rle"]["size"] == [height, width]
        assert all(math.isfinite(v) for v in _numbers(result))


def _numbers(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


@pytest.mark.parametrize(
    "prompt",
    [
        ["--point", "1e300,1e300"],
        ["--point", "-1e300,5"],
        ["--box", "0,0,1e300,1e300"],
        ["--point", "nan,3"],
        ["--point", "inf,3"],
        ["--point", "1" * 5000 + ",3"],
    ],
    ids=["1e300", "-1e300", "box-1e300", "nan", "inf", "5000-digits"],
)
def test_coordinates_near_1e300_give_an_error_or_finite_numbers(cli, flags, tmp_path, prompt):
    image = tmp_path / "a.png"
    Image.fromarray(_pattern(20, 30)).save(image)
    code, out, err = cli("segment", image, *prompt, *flags)
    assert "Traceback" not in err
    if code == 0:
        assert "NaN" not in out and "Infinity" not in out
        assert all(math.isfinite(v) for v in _numbers(json.loads(out)))
    else:
        one_line_error((code, out, err))


def test_export_into_the_project_database_is_refused(cli, flags, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    Image.fromarray(_pattern(20, 30)).save(folder / "a.png")
    code, _, err = cli(
        "segment", folder / "a.png", "--point", "5,5", "--save", folder, "--category", "x", *flags
    )
    assert code == 0, err
    db = folder / ".annotator" / "project.db"
    before = db.read_bytes()
    one_line_error(cli("export", folder, "-o", db), "refusing to export")
    one_line_error(cli("export", folder, "-o", folder / ".annotator" / "x.json"), ".annotator")
    assert db.read_bytes() == before
    with Project(db) as store:
        assert store.integrity_ok() and len(store.annotations()) == 1
    stale = folder / ".out.json.abcd1234.tmp"  # left by a killed export
    stale.write_bytes(b"{")
    os.utime(stale, (time.time() - 600, time.time() - 600))
    code, _, err = cli("export", folder, "-o", folder / "out.json")
    assert code == 0, err
    assert not stale.exists()


def test_imported_huge_ids_leave_room_for_later_saves(cli, flags, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    Image.fromarray(_pattern(20, 30)).save(folder / "a.png")
    doc = {
        "images": [{"id": 2**63 - 1, "file_name": "a.png", "width": 30, "height": 20}],
        "categories": [{"id": 2**63 - 1, "name": "cat"}],
        "annotations": [
            {
                "id": 2**63 - 1,
                "image_id": 2**63 - 1,
                "category_id": 2**63 - 1,
                "segmentation": [[1, 1, 8, 1, 8, 6, 1, 6]],
            }
        ],
    }
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc))
    code, out, err = cli("import", path, "--images", folder, "--project", folder)
    assert code == 0, err
    for k in range(2):  # failed with "the disk is full" when the id 2**63-1 was kept
        code, _, err = cli(
            "segment", folder / "a.png", "--point", f"{5 + k},5", "--save", folder,
            "--category", "dog", *flags,
        )  # fmt: skip
        assert code == 0, err
    path.write_text(json.dumps(doc).replace(str(2**63 - 1), str(2**64), 1))
    one_line_error(cli("import", path, "--images", folder, "--project", folder), "at most")


@pytest.mark.skipif(sys.platform == "win32", reason="such file names are POSIX")
def test_newlines_and_escapes_in_file_names_stay_on_one_line(cli, flags, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    evil = folder / "x\nannotator: error: forged\x1b[2J.png"
    evil.write_bytes(b"not an image")
    line = one_line_error(cli("segment", evil, "--point", "1,1", *flags), "\\x0a", "\\x1b[2J")
    assert "\x1b" not in line
    code, _, err = cli("embed", folder, *flags)
    assert code == 1 and "\x1b" not in err
    assert len([x for x in err.splitlines() if "forged" in x]) == 1


def test_vocab_add_and_remove_keep_comments_and_mode(cli, tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# my words\n\napple, malus\n\n# fruit end\n")
    path.chmod(0o644)
    assert cli("vocab", "add", "pear", "--vocabulary", path)[0] == 0
    assert path.read_text() == "# my words\n\napple, malus\npear\n\n# fruit end\n"
    assert cli("vocab", "remove", "apple", "--vocabulary", path)[0] == 0
    assert path.read_text() == "# my words\n\npear\n\n# fruit end\n"
    assert path.stat().st_mode & 0o777 == 0o644
