"""Issue 22: one category-name rule (`annotator.names`) at every entry point, and every format's
export -> import round trip with awkward but legal category and file names.

Before, each importer validated names its own way, so some of our own exports could not be imported
back; VOC lost ids with spaces (the ImageSets list was split on whitespace), names with ':' (the
labelmap split on ':') and names starting with '#' (read as a comment).
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator.errors import CocoFormatError, DatasetFormatError, VocabularyError
from annotator.io import formats
from annotator.io.formats._common import Plan
from annotator.names import MAX_NAME_LENGTH, InvalidName, category_name, name_problem
from annotator.store import Project
from annotator.store.proposals import parse_classes
from annotator.vocab.vocabulary import Vocabulary

ROOT = Path(__file__).resolve().parents[2]

AWKWARD = [
    "traffic light",  # a space
    "straße 猫",  # non-ASCII
    "a, b; c! (d)?",  # punctuation, a comma
    "3d printer",  # a leading digit
    "<tag> & \"q\" 'a'",  # XML-special characters
    "x:y",  # VOC's labelmap separator
    "#hash",  # a comment marker in text lists
    "yes",  # YAML would read a bool
    "1.5",  # ... a float
    "null",  # ... None
    "- dash",  # ... a list item
    "_background_",  # labelme's reserved class name
    "C++ / C#",
    "é" * MAX_NAME_LENGTH,  # the longest name
]
FILES = ["my image (1).png", "ünï cødé.png", "a&b #1.png", "sub dir/x y.png", "2 1.png", "#3.png"]


def _project(folder: Path) -> Project:
    folder.mkdir(parents=True)
    project = Project.open_folder(folder)
    rng = np.random.default_rng(1)
    for k, file in enumerate(FILES):
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(folder / file)
        image = project.add_image(file, 30, 20)
        for j, name in enumerate(AWKWARD[k :: len(FILES)]):  # every name used once, no overlaps
            mask = np.zeros((20, 30), bool)
            mask[2 + 6 * j : 6 + 6 * j, 3:12] = True
            project.add_annotation(image, mask, name)
    for name in ("__ignore__", "_background_ ", "background"):  # unused: only class lists hold them
        project.add_category(name)
    return project


def _names(project: Project) -> list[str]:
    return [c.name for c in project.categories()]


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_awkward_legal_names_round_trip(tmp_path, fmt):
    with _project(tmp_path / "proj") as project:
        out = tmp_path / ("x.json" if fmt == "coco" else fmt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", formats.FormatWarning)
            formats.export(fmt, project, out)
        Project(tmp_path / "q.db").set_meta("folder", str(project.folder))
        with Project(tmp_path / "q.db") as again:
            summary = formats.import_(out, project.folder, again, formats.detect(out))
            assert summary["format"] == fmt
            assert sorted(_names(again)) == sorted(_names(project))
            assert sorted(i.file_name for i in again.images()) == sorted(FILES)
            got = sorted((a.category, a.area) for a in again.annotations())
            assert got == sorted((a.category, a.area) for a in project.annotations())


def test_voc_warns_about_names_other_readers_split():
    """The VOC labelmap holds ':' and a leading '#' for our importer; other readers are warned of."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, _project(Path(tmp) / "proj") as project:
        with pytest.warns(formats.FormatWarning) as record:
            formats.export("voc", project, Path(tmp) / "voc")
        messages = [str(w.message) for w in record]
        assert any("with ':' or a leading '#'" in m for m in messages), messages
        assert any("image id(s) starting with '#'" in m and "'#3'" in m for m in messages)
        listing = (Path(tmp) / "voc" / "ImageSets" / "Main" / "default.txt").read_text("utf-8")
        assert "my image (1)\n" in listing and '"#3"\n' in listing  # datumaro reads whole lines


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "a\nb",
        "tab\there",
        "nul\x00",
        "del\x7f",
        "c1\x85c",
        "line\u2028sep",
        "x" * 201,
        "a\uffff",
        "\ud800x",
    ],
)
def test_one_rule_everywhere(tmp_path, bad):
    problem = name_problem(bad)
    assert problem is not None and "\n" not in problem
    with pytest.raises(InvalidName):
        category_name(bad)
    with Project(tmp_path / "p.db") as project:  # the store
        with pytest.raises(InvalidName):
            project.add_category(bad)
        with pytest.raises(ValueError):  # InvalidName is a ValueError, as before
            project.category_id(bad)
        assert project.categories() == []
    with pytest.raises(VocabularyError):  # vocabulary files and `vocab add`
        Vocabulary.loads("").add(bad)
    if bad.strip() and name_problem(" ".join(bad.split())) is not None:  # whitespace runs fold
        with pytest.raises(InvalidName):  # autolabel --classes, the window's class field
            parse_classes(f"ok, {bad}")
    with pytest.raises(DatasetFormatError):  # every non-COCO importer
        Plan("x").category(bad)


def test_valid_names_pass_everywhere(tmp_path):
    with Project(tmp_path / "p.db") as project:
        for name in AWKWARD:
            assert category_name(f"  {name} ") == name
            assert project.category(project.add_category(name)).name == name
    vocab = Vocabulary.loads("")
    for name in AWKWARD:
        vocab.add(name)
    assert parse_classes(", ".join(n for n in AWKWARD if "," not in n))


def test_coco_uses_the_rule(tmp_path):
    from annotator.io.formats.coco import import_coco

    doc = tmp_path / "c.json"
    doc.write_text(
        '{"images": [], "annotations": [], "categories": [{"id": 1, "name": "a\\u2028b"}]}'
    )
    with Project(tmp_path / "p.db") as project, pytest.raises(CocoFormatError, match="U\\+2028"):
        import_coco(doc, tmp_path, project, check_files=False)


def test_autolabel_classes_flag_gives_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "annotator", "autolabel", str(tmp_path), "--classes", "dog,ca\x01t"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "classes: control character" in lines[0], lines
    assert not (tmp_path / ".annotator").exists()  # refused before a project was opened


def test_segment_category_and_accept_use_the_rule(tmp_path):
    from annotator.app.operations import check_acceptable

    with pytest.raises(InvalidName, match="label: control character"):
        check_acceptable(np.ones((2, 2), bool), "ca\x1bt")  # the window's and segment's accept
    check_acceptable(np.ones((2, 2), bool), "traffic light")
    result = subprocess.run(
        [sys.executable, "-m", "annotator", "segment", str(tmp_path / "x.png"), "--point", "1,1",
         "--category", "x" * 201, "--save", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--category: name longer than 200" in lines[0], lines
