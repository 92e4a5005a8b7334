"""Dataset formats: a registry name -> module with `export(project, out, **options)`,
`import_(path, images_dir, project)` and `detect(path)`.

One module per format (coco, yolo, voc, cvat, labelme, masks); `_common` holds what they share. What
each format cannot hold, and what its export does then, is in its module docstring and in
docs/adr/0007-dataset-formats.md; exports report it as `FormatWarning`s and in `summary["warnings"]`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from annotator.errors import DatasetFormatError
from annotator.io.formats._common import FormatWarning, Progress
from annotator.io.images import show_path
from annotator.store.project import Project

FORMATS = ("coco", "yolo", "voc", "cvat", "labelme", "masks")
EXPORT_FORMATS = (*FORMATS, "geojson")  # geojson: export only (issue 26)
# Every format's detector is asked; more than one match is an error asking for --format.
_DETECT_ORDER = ("yolo", "voc", "masks", "cvat", "coco", "labelme")

__all__ = [
    "FOLDER_FORMATS",
    "EXPORT_FORMATS",
    "FORMATS",
    "FormatWarning",
    "Progress",
    "detect",
    "export",
    "format_module",
    "import_",
    "writes_folder",
]


def format_module(name: str) -> ModuleType:
    """The module of a format (imported on first use: a CLI run pays only for its own format)."""
    if name not in EXPORT_FORMATS:
        raise DatasetFormatError(f"unknown format {name!r} (one of: {', '.join(FORMATS)})")
    return importlib.import_module(f"annotator.io.formats.{name}")


def detect(path: str | os.PathLike) -> str:
    """The format of a file or folder; DatasetFormatError when none matches or when several do
    (a folder with a YOLO data.yaml and a VOC ImageSets/, say): the user says which with --format."""
    p = Path(path)
    if not p.exists():
        raise DatasetFormatError(f"{show_path(p)}: no such file or folder")
    matches = [name for name in _DETECT_ORDER if format_module(name).detect(p)]
    if len(matches) == 1:
        return matches[0]
    if matches:  # never guess: a wrong guess imports the wrong files without a word
        raise DatasetFormatError(
            f"{show_path(p)}: looks like several dataset formats ({', '.join(matches)}): "
            f"give --format {matches[0]} (or one of the others)"
        )
    raise DatasetFormatError(
        f"{show_path(p)}: cannot tell the dataset format (give --format: {', '.join(FORMATS)})"
    )


FOLDER_FORMATS = ("yolo", "voc", "labelme", "masks", "geojson")  # cvat too when `out` is not a .xml file


def writes_folder(name: str, out: str | os.PathLike) -> bool:
    """Whether format `name` exported to `out` writes a folder (staged, published whole)."""
    return name in FOLDER_FORMATS or (name == "cvat" and Path(out).suffix.lower() != ".xml")


def export(
    name: str,
    project: Project,
    out: str | os.PathLike,
    progress: Progress | None = None,
    **options: Any,
) -> dict:
    """Export the project in format `name` to `out`; returns a summary with `warnings`.
    The target passes the one output check (`io.outputs.check_output`: never a project's own
    files, an SQLite file or an input); a folder is built in a hidden sibling and published
    whole (`io.outputs.staged_folder`), so a killed export leaves the old folder or the new one.
    `progress(done, total)` is called per image by the formats that write per image (not COCO:
    one document)."""
    from annotator.io import outputs

    format_module(name)  # an unknown name is one line before anything is read
    folder = writes_folder(name, out)
    inputs = outputs.project_inputs(project)
    outputs.check_output(out, folder, *inputs)
    if name == "cvat" and options.get("copy_images") and not folder:
        outputs.check_output(Path(out).parent / "images", True, *inputs)
    if not folder:
        summary = format_module(name).export(project, out, progress=progress, **options)
    else:
        with outputs.staged_folder(out) as stage:
            summary = format_module(name).export(project, stage, progress=progress, **options)
        _unstage(summary, stage, Path(out))
    summary.setdefault("warnings", [])
    return summary


def _unstage(summary: dict, stage: Path, out: Path) -> None:
    """Summary paths name the published folder, not the staging one."""
    for key, value in list(summary.items()):
        if isinstance(value, str) and str(stage) in value:
            summary[key] = value.replace(str(stage), str(out))


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    name: str | None = None,
    progress: Progress | None = None,
) -> dict:
    """Import a dataset (format detected when `name` is None), all or nothing; `progress` as in
    `export` (per annotation file or image)."""
    from annotator.io.outputs import check_not_partial

    check_not_partial(path)
    name = name or detect(path)
    summary = format_module(name).import_(path, images_dir, project, progress=progress)
    summary.setdefault("warnings", [])
    summary["format"] = name
    return summary
