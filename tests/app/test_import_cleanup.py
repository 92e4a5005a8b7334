"""A refused `annotator import` leaves no empty project behind (issue 24): a labelme folder whose
images (`--images`) are outside the project folder is refused with one line, exit 2, and the
`.annotator/` the import would have created is gone again."""

from __future__ import annotations

import json

from PIL import Image

from annotator.cli import main


def test_labelme_with_images_elsewhere_is_refused_and_leaves_nothing(tmp_path, capsys):
    (tmp_path / "ann").mkdir()
    (tmp_path / "imgs").mkdir()
    (tmp_path / "proj").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "imgs" / "a.png")
    shape = {"label": "dog", "points": [[1, 1], [20, 1], [20, 20]], "shape_type": "polygon"}
    doc = {"version": "5.0", "flags": {}, "shapes": [shape], "imagePath": "a.png",
           "imageData": None, "imageHeight": 30, "imageWidth": 40}  # fmt: skip
    (tmp_path / "ann" / "a.json").write_text(json.dumps(doc))
    args = ["import", str(tmp_path / "ann"), "--images", str(tmp_path / "imgs")]
    assert main([*args, "--project", str(tmp_path / "proj")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside the project folder" in err
    assert list((tmp_path / "proj").iterdir()) == []  # no empty .annotator/ left behind


def test_an_existing_project_is_kept_when_an_import_is_refused(tmp_path, capsys):
    from annotator.store import Project

    (tmp_path / "proj").mkdir()
    with Project(tmp_path / "proj" / ".annotator" / "project.db") as project:
        project.add_category("cat")
    assert main(["import", str(tmp_path / "missing.json"), "--project", str(tmp_path / "proj")])
    assert (tmp_path / "proj" / ".annotator" / "project.db").is_file()
