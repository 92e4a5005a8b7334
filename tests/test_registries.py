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

ROOT = Path(__file__).resolve().parents[1]


def test_every_format_record_names_a_module_with_its_functions() -> None:
    assert formats.FORMATS == tuple(formats.REGISTRY)
    for name, fmt in formats.REGISTRY.items():
        module = fmt.load()
        assert module.NAME == name
        for function in ("export", "import_", "detect"):
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
