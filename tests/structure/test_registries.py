"""One record per dataset format and per segmenter family (ADR 0028): every table the CLI, the
window and the model code read is a view of the registry, so a new entry appears everywhere."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from annotator import families
from annotator.io import formats

ROOT = Path(__file__).resolve().parents[2]


def test_every_format_record_names_a_module_with_its_functions() -> None:
    assert formats.EXPORT_FORMATS == tuple(n for n, f in formats.REGISTRY.items() if not f.track)
    assert formats.FORMATS == tuple(
        n for n, f in formats.REGISTRY.items() if f.importable and not f.track
    )
    assert formats.TRACK_FORMATS == ("mots", "mot", "davis", "coco-video", "cvat-video")
    for name, fmt in formats.REGISTRY.items():
        module = fmt.load()
        assert module.NAME == name
        functions = ("export", "import_", "detect") if fmt.importable else ("export",)
        for function in functions:
            assert callable(getattr(module, function)), (name, function)
        assert (name in formats.FOLDER_FORMATS) == (fmt.suffix is None)


def test_app_transfer_and_the_cli_read_the_format_registry() -> None:
    from annotator.app import transfer
    from annotator.cli import project as cli_project

    assert transfer.FORMATS == formats.FORMATS
    assert transfer.TITLES == {n: f.title for n, f in formats.REGISTRY.items()}
    assert transfer.SINGLE_FILE == {n: f.suffix for n, f in formats.REGISTRY.items() if f.suffix}
    assert transfer.SINGLE_FILE["coco"] == ".json" and "yolo" not in transfer.SINGLE_FILE
    assert cli_project.FORMATS == formats.FORMATS


@pytest.mark.parametrize(
    ("name", "out", "folder"),
    [
        ("coco", "a.json", False),
        ("cvat", "a.xml", False),
        ("cvat", "out", True),
        ("yolo", "y", True),
    ],
)
def test_writes_folder_from_the_record(name: str, out: str, folder: bool) -> None:
    assert formats.writes_folder(name, out) is folder


def test_a_registered_format_appears_in_every_view(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a format is one record: the views computed from the registry list it."""
    monkeypatch.setattr(formats, "REGISTRY", dict(formats.REGISTRY))
    formats.register(formats.DatasetFormat("probe", "Probe JSON", suffix=".json", module="coco"))
    try:
        assert "probe" in formats.FORMATS and formats.get("probe").title == "Probe JSON"
        assert formats.format_module("probe").NAME == "coco"
        with pytest.raises(ValueError, match="twice"):
            formats.register(formats.DatasetFormat("probe", "again"))
    finally:
        monkeypatch.undo()
        formats._refresh()
    assert "probe" not in formats.FORMATS


def test_every_family_record_is_consistent() -> None:
    from annotator.cli.flags import SEGMENTER_FAMILIES
    from annotator.gui.settings import FAMILY_NAMES
    from annotator.models import registry, weights

    assert SEGMENTER_FAMILIES == registry.FAMILIES == tuple(registry.REGISTRY) == families.NAMES
    assert set(FAMILY_NAMES) == {"", *families.NAMES}
    for name, family in families.FAMILIES.items():
        known = weights.known(family.default_weights)
        assert known.kind == name and weights.DEFAULT_BY_FAMILY[name] == known.name
        assert (name in weights.FOLDER_KINDS) == family.folder == known.is_folder
        if family.model_type:
            assert registry.MODEL_TYPES[family.model_type] == name
        module, _, cls = family.loader.partition(":")
        assert callable(getattr(importlib.import_module(module), cls).load)


def test_the_family_records_load_neither_torch_nor_qt() -> None:
    code = (
        "import sys, annotator.families, annotator.cli.flags\n"
        "print([m for m in ('torch', 'PySide6') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "[]"


def test_a_family_loads_through_its_record(tmp_path: Path) -> None:
    """The record's loader builds the family's class: a tiny SAM 1 checkpoint, loaded by path."""
    from annotator.models.registry import load_segmenter
    from annotator.models.sam import SamModel
    from tests.tiny_sam import make_tiny_sam

    checkpoint = make_tiny_sam(tmp_path / "tiny.pth")
    assert isinstance(families.get("sam").load(checkpoint, "cpu"), SamModel)
    assert isinstance(load_segmenter(checkpoint, "sam"), SamModel)
    with pytest.raises(KeyError, match="known: sam"):
        families.get("nope")


def test_the_transfer_answers_come_from_the_records(tmp_path: Path) -> None:
    """What used to be name if-chains in app/transfer.py, now read from each record."""
    from annotator.app.transfer import ExportOptions, export_job, images_folder_needed

    project = tmp_path / "project"
    (project / "ds" / "images").mkdir(parents=True)
    (project / "voc").mkdir()
    xml = project / "ds" / "annotations.xml"
    xml.write_text("<annotations/>")
    assert not images_folder_needed("coco", project / "a.json", project)
    assert not images_folder_needed("labelme", project / "ds", project)
    assert images_folder_needed("masks", project / "ds", project)
    assert not images_folder_needed("yolo", project / "ds", project)  # ds/images inside
    assert images_folder_needed("voc", project / "voc", project)  # no JPEGImages/
    assert not images_folder_needed("cvat", xml, project)  # the XML's own folder
    assert images_folder_needed("cvat", xml, project / "voc")  # outside the project folder
    options = ExportOptions(polygons=True, yolo_task="detect", copy_images=True)
    assert options.for_format("coco") == {"polygons": True, "upright_dir": None}
    assert options.for_format("yolo") == {"task": "detect"}
    assert options.for_format("cvat") == {"polygons": True, "copy_images": True}
    assert options.for_format("voc") == {}
    assert "(RLE)" in export_job("p.db", "coco", tmp_path / "a.json").name
    assert "(masks)" in export_job("p.db", "cvat", tmp_path / "a.xml").name
    assert "(detect)" in export_job("p.db", "yolo", tmp_path / "y", options).name
