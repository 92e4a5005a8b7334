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
# Detection order: the folder layouts with a marker file first, labelme's loose JSON last.
_DETECT_ORDER = ("yolo", "voc", "masks", "cvat", "coco", "labelme")
# ---- track formats (issue 25): sequences with their tracks (io/formats/_tracks.py); kept apart
# from FORMATS, the image dataset formats every image project exports to -------------------------
TRACK_FORMATS = ("mots", "mot", "davis")
_DETECT_ORDER = ("davis", "mots", "mot", *_DETECT_ORDER)

__all__ = [
    "FORMATS",
    "TRACK_FORMATS",
    "FormatWarning",
    "Progress",
    "detect",
    "export",
    "format_module",
    "import_",
]


def format_module(name: str) -> ModuleType:
    """The module of a format (imported on first use: a CLI run pays only for its own format)."""
    if name not in FORMATS + TRACK_FORMATS:
        raise DatasetFormatError(
            f"unknown format {name!r} (one of: {', '.join(FORMATS + TRACK_FORMATS)})"
        )
    return importlib.import_module(f"annotator.io.formats.{name}")


def detect(path: str | os.PathLike) -> str:
    """The format of a file or folder; DatasetFormatError when none matches."""
    p = Path(path)
    if not p.exists():
        raise DatasetFormatError(f"{show_path(p)}: no such file or folder")
    for name in _DETECT_ORDER:
        if format_module(name).detect(p):
            return name
    raise DatasetFormatError(
        f"{show_path(p)}: cannot tell the dataset format (give --format: {', '.join(FORMATS)})"
    )


def export(
    name: str,
    project: Project,
    out: str | os.PathLike,
    progress: Progress | None = None,
    **options: Any,
) -> dict:
    """Export the project in format `name` to `out`; returns a summary with `warnings`.
    Never into a project's own files (`store.files.export_target_problem`). `progress(done,
    total)` is called per image by the formats that write per image (not COCO: one document)."""
    from annotator.errors import ProjectError
    from annotator.io.files import show_path
    from annotator.store.files import export_target_problem

    problem = export_target_problem(out, single_file=name == "coco")
    if problem is not None:
        raise ProjectError(f"{show_path(out)}: {problem}")
    summary = format_module(name).export(project, out, progress=progress, **options)
    summary.setdefault("warnings", [])
    return summary


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    name: str | None = None,
    progress: Progress | None = None,
) -> dict:
    """Import a dataset (format detected when `name` is None), all or nothing; `progress` as in
    `export` (per annotation file or image)."""
    name = name or detect(path)
    summary = format_module(name).import_(path, images_dir, project, progress=progress)
    summary.setdefault("warnings", [])
    summary["format"] = name
    return summary
