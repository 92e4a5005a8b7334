"""COCO through the format registry: `annotator.io.coco` does the work (its docstring has the
decisions); this module only adds detection and the registry's signatures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from annotator.io.coco import export_coco, import_coco
from annotator.store.project import Project

NAME = "coco"


def export(
    project: Project,
    out: str | os.PathLike,
    polygons: bool = False,
    upright_dir: str | os.PathLike | None = None,
    **_: Any,
) -> dict:
    """Write a COCO instances JSON at `out` (a file path)."""
    summary = export_coco(project, out, polygons=polygons, upright_dir=upright_dir)
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
    """Any .json file that is not a labelme file: the COCO importer then names what is wrong."""
    from annotator.io.formats import labelme

    return path.is_file() and path.suffix.lower() == ".json" and not labelme.detect(path)
