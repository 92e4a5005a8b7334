"""COCO instance-segmentation files, the format's home: `export_coco` and `import_coco` (and the
bounds an import enforces) are importable from here. The work is in `coco_export.py` and
`coco_import.py` (their docstrings have the decisions; `coco_checks.py` holds the import's checks);
this module adds detection and the registry's signatures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from annotator.io.formats.coco_checks import MAX_DOCUMENT_BYTES, MAX_KEPT_ID, MAX_NAME_LENGTH
from annotator.io.formats.coco_export import export_coco
from annotator.io.formats.coco_import import import_coco
from annotator.store.project import Project

NAME = "coco"

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_KEPT_ID",
    "MAX_NAME_LENGTH",
    "NAME",
    "detect",
    "export",
    "export_coco",
    "import_",
    "import_coco",
]


def export(
    project: Project,
    out: str | os.PathLike,
    polygons: bool = False,
    upright_dir: str | os.PathLike | None = None,
    progress: Any = None,
    **_: Any,
) -> dict:
    """Write a COCO instances JSON at `out` (a file path)."""
    summary = export_coco(
        project, out, polygons=polygons, upright_dir=upright_dir, progress=progress
    )
    summary["format"] = NAME
    return summary


def import_(
    path: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    project: Project,
    progress: Any = None,
) -> dict:
    """Import a COCO JSON (one document: no per-image progress)."""
    summary = import_coco(path, images_dir, project)
    summary["format"] = NAME
    return summary


def detect(path: Path) -> bool:
    """Any .json file that is not a labelme file or a COCO video file (`coco-video`): the COCO
    importer then names what is wrong."""
    from annotator.io.formats import coco_video, labelme

    return (
        path.is_file()
        and path.suffix.lower() == ".json"
        and not labelme.detect(path)
        and not coco_video.detect(path)
    )
