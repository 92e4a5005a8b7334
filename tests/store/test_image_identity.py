"""Images are identified by content on every save path (issue 22): a picture from elsewhere with
the project's image name is refused in one line (or is the same image by its bytes), never stored
on the project's own picture."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from annotator.cli import main
from annotator.errors import ProjectError
from annotator.store import Project


def _png(path, seed: int):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).save(path)
    return path


def _mask() -> np.ndarray:
    mask = np.zeros((6, 8), bool)
    mask[1:4, 2:6] = True
    return mask


@pytest.mark.parametrize("where", ["standalone db", "file moved away"])
def test_nothing_to_compare_with_is_refused_not_guessed(tmp_path, where):
    """The hole: an image with no recorded content whose own file cannot be read took any
    same-named picture from elsewhere."""
    other = tmp_path / "Q"
    other.mkdir()
    stranger = _png(other / "a.png", 2)
    if where == "standalone db":
        location = tmp_path / "x.db"  # a project without a folder
    else:
        (tmp_path / "P").mkdir()
        _png(tmp_path / "P" / "a.png", 1)
        location = tmp_path / "P" / ".annotator" / "project.db"
    with Project(location) as p:
        own = p.add_image("a.png", 8, 6)  # as an import adds it: no content recorded
        p.add_annotation(own, _mask(), "mine")
    if where == "file moved away":
        (tmp_path / "P" / "a.png").unlink()
    with Project(location) as p:
        with pytest.raises(ProjectError, match="cannot tell whether this is the project's image"):
            p.add_image_file(stranger, 8, 6)
        assert len(p.annotations()) == 1 and p.image(own).sha256 is None


def test_the_cli_save_is_one_line_and_an_identical_copy_is_the_same_image(tmp_path, capsys):
    """`segment --save` goes through `add_image_file`; here without a model, the same call."""
    from annotator.cli.segment import save_mask

    assert callable(
        save_mask
    )  # the CLI's save path (tests/robustness/test_bad_input_cli.py runs it whole)
    project_folder, other = tmp_path / "P", tmp_path / "Q"
    project_folder.mkdir(), other.mkdir()
    own = _png(project_folder / "a.png", 1)
    with Project.open_folder(project_folder) as p:
        image_id = p.add_image_file(own, 8, 6)
        copy = other / "a.png"
        copy.write_bytes(own.read_bytes())
        assert p.add_image_file(copy, 8, 6) == image_id  # same bytes: same image
        _png(copy, 5)
        with pytest.raises(ProjectError, match="different image under this name"):
            p.add_image_file(copy, 8, 6)


def test_names_that_climb_out_of_the_project_are_no_image(tmp_path, capsys):
    (tmp_path / "P").mkdir()
    _png(tmp_path / "P" / "a.png", 1)
    with Project.open_folder(tmp_path / "P") as p:
        p.add_image("a.png", 8, 6)
        for name in ("../a.png", "/etc/passwd", "../../P/a.png", ""):
            assert p.image_by_name(name) is None
    for names in ("../a.png", "/etc/passwd,a.png", "a.png,../../x"):
        code = main(["refine", str(tmp_path / "P"), "--boxes", "--images", names])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "not an image of the project" in err
    for name in ("../a.png", "/etc/passwd", "../../P/a.png"):  # before any model is loaded
        code = main(["similar", str(tmp_path / "P"), "--image", name, "--cache-dir", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "no image named" in err


def test_import_from_another_folder_with_the_same_names_is_refused(tmp_path, capsys):
    """A dataset whose images folder is not the project's: its a.png is another picture than the
    project's a.png, so nothing is imported onto it."""
    project_folder, other = tmp_path / "P", tmp_path / "Q"
    project_folder.mkdir(), other.mkdir()
    _png(project_folder / "a.png", 1)
    _png(other / "a.png", 2)
    with Project.open_folder(project_folder) as p:
        p.add_image("a.png", 8, 6)
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3], "area": 9,
             "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]], "iscrowd": 0}
        ],
    }  # fmt: skip
    dataset = other / "data.json"
    dataset.write_text(json.dumps(doc))
    code = main(["import", str(dataset), "--images", str(other), "--project", str(project_folder)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "outside the project folder" in err
    with Project.open_folder(project_folder) as p:
        assert p.annotations() == []
