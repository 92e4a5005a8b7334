"""Dataset export and import (every format of `annotator.io.formats`) for the CLI and the window.

One code path: `export_project` / `import_dataset` take an open project and do what
`annotator export | import` do (the CLI calls them and prints; the window runs them as long jobs,
`export_job` / `import_job`). They collect the formats' `FormatWarning`s (what a format cannot hold
and what was done instead) in `summary["warnings"]` rather than letting Python print them.

The jobs run in a child process (`LongJob.process`): json of a 50,000-annotation file is one C call
that holds the GIL for a quarter of a second, which a thread would turn into a frozen window. The
child opens its own connection to the project (WAL: the window's connection keeps reading).

Cancel: the formats report each image they reach, and the job checks for a cancel there.
- COCO writes a hidden partial file renamed over the target only at the end (a stop or a kill
  leaves the old file; `cleanup` removes the partial); CVAT writes its XML at the end, atomically.
- The folder formats (YOLO, VOC, labelme, masks) write one file per image, each atomically: a
  stopped export leaves the files written so far (each whole) beside the older ones.
- An import is one transaction, which SQLite rolls back if the child is stopped before it commits.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from annotator.app.longjob import JobControl, LongJob
from annotator.errors import AnnotatorError, ProjectError
from annotator.io import formats

# Views of the format registry (`annotator.io.formats.REGISTRY`, light to import), kept under
# the names the window and the CLI read; a new format appears here by its registry entry alone.
FORMATS = formats.FORMATS  # the formats that import
EXPORT_FORMATS = formats.EXPORT_FORMATS  # every image format (GeoJSON is export only)
TRACK_FORMATS = formats.TRACK_FORMATS  # sequence formats with tracks (issue 25)
TITLES = {name: f.title for name, f in formats.REGISTRY.items()}
SINGLE_FILE = {name: f.suffix for name, f in formats.REGISTRY.items() if f.suffix}  # else a folder
OPTIONS = {name: frozenset(f.options.values()) for name, f in formats.REGISTRY.items()}
"""Format -> the `ExportOptions` fields its exporter reads (the dialog shows only those)."""
YOLO_TASKS = ("segment", "detect")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportOptions:
    """The CLI's export flags, for every format (each format reads the ones it has)."""

    polygons: bool = False  # coco, cvat: polygons instead of RLE / CVAT masks
    yolo_task: str = "segment"  # yolo: segment (polygons) or detect (boxes)
    upright_copies: str | None = None  # coco: also write upright copies of the images here
    copy_images: bool = False  # cvat: also copy the images to images/

    def for_format(self, name: str) -> dict[str, Any]:
        """The keyword options of format `name`'s exporter (its registry record maps them)."""
        fields = formats.get(name).options
        if "yolo_task" in fields.values() and self.yolo_task not in YOLO_TASKS:
            raise AnnotatorError(f"YOLO task must be one of {', '.join(YOLO_TASKS)}")
        return {kw: getattr(self, field) for kw, field in fields.items()}


def export_problem(name: str, out: str | os.PathLike) -> str | None:
    """One line saying why `out` must not be an export target (a project's own files, a folder
    where a file goes), or None. Cheap: the window asks before it starts the job."""
    from annotator.io.files import show_path
    from annotator.io.outputs import output_problem

    if name not in formats.REGISTRY:
        return f"unknown format {name!r} (one of: {', '.join(formats.REGISTRY)})"
    folder = formats.get(name).writes_folder(out)
    problem = output_problem(out, folder)  # the inputs are checked again with the project open
    return None if problem is None else f"{show_path(out)}: {problem}"


def export_project(
    project: Any,
    name: str,
    out: str | os.PathLike,
    options: ExportOptions | None = None,
    progress: Progress | None = None,
) -> dict:
    """Write `project` in format `name` at `out`; returns the format's summary, whose `warnings`
    list what the format could not hold (not printed: the caller shows them)."""
    problem = export_problem(name, out)
    if problem is not None:
        raise ProjectError(problem)
    kwargs = (options or ExportOptions()).for_format(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", formats.FormatWarning)  # in summary["warnings"]
        return formats.export(name, project, out, progress=progress, **kwargs)


def check_import_paths(path: str | os.PathLike, images: str | os.PathLike | None) -> None:
    """One-line errors for a dataset path that is not there or an image folder that is no folder."""
    if not Path(path).exists():
        raise AnnotatorError(f"{path}: no such file or folder")
    if images is not None and not Path(images).is_dir():
        raise AnnotatorError(f"{images}: not a folder")
    from annotator.io.outputs import check_not_partial

    check_not_partial(path)  # never a half-written export


def detect_format(path: str | os.PathLike) -> str:
    """The dataset format of a file or folder (a one-line DatasetFormatError when none fits)."""
    return formats.detect(path)


def import_dataset(
    project: Any,
    path: str | os.PathLike,
    images: str | os.PathLike | None = None,
    name: str | None = None,
    progress: Progress | None = None,
) -> dict:
    """Add a dataset's annotations to `project`, all or nothing (format detected when `name` is
    None). A team (PostgreSQL) project that records no image folder yet records `images` as its
    folder: the names the import stores are relative to it."""
    check_import_paths(path, images)
    name = name or formats.detect(path)
    if getattr(project, "url", None) and project.folder is None and images is not None:
        project.set_meta("folder", str(Path(images).resolve()))  # where its images are
        project.folder = Path(images).resolve()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", formats.FormatWarning)
        return formats.import_(path, images, project, name, progress=progress)


def images_folder_needed(name: str, path: str | os.PathLike, folder: Path | None) -> bool:
    """Whether the window must ask for the images folder: the format's own default (the dataset's
    images/ or JPEGImages/ folder, the CVAT XML's folder) is missing or outside the project folder
    `folder`, or the format has none (PNG masks). COCO names images relative to the project folder
    and labelme next to each JSON, so they need no question."""
    images = formats.get(name).images
    if images is None:
        return False
    if images == "" or folder is None:
        return images == ""
    p = Path(path)
    default = (p.parent if p.is_file() else p) if images == "." else p / images
    if not default.is_dir():
        return True
    rel = os.path.relpath(os.path.abspath(default), os.path.abspath(folder))
    return rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel)


# ----------------------------------------------------------------------------- long jobs (window)
def _partial_name(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def remove_partials(out: Path) -> None:
    """Delete what a stopped export left (its partial file and the writer's temporary files)."""
    for leftover in out.parent.glob(f".{out.name}.partial*"):
        leftover.unlink(missing_ok=True)


def _reporter(control: JobControl, text: str) -> Progress:
    """A format's per-image progress as the job's progress, with a cancel check at each image."""

    def progress(done: int, total: int, stage: str | None = None) -> None:
        control.check()
        control.progress(done, total, stage or text)

    return progress


def _open(location: str) -> Any:
    from annotator.store import Project

    return Project(location)


def export_file(
    control: JobControl, location: str, name: str, out: str, options: dict | None = None
) -> dict:
    """The export job: open the project at `location` (a database path or URL), write format
    `name` at `out`; returns the format's summary (with `warnings`)."""
    target = Path(out)
    opts = ExportOptions(**(options or {}))
    problem = export_problem(name, target)
    if problem is not None:
        raise AnnotatorError(problem)
    control.progress(0, 0, "reading the project")
    with _open(location) as project:
        control.check()
        progress = _reporter(control, f"writing {TITLES[name]}")
        if not formats.get(name).partial_file:
            return export_project(project, name, target, opts, progress)
        staging = _partial_name(target)
        try:
            summary = export_project(project, name, staging, opts, progress)
            control.check()
            os.replace(staging, target)
        except BaseException:
            remove_partials(target)
            raise
    summary["path"] = str(target)
    return summary


def import_file(
    control: JobControl, location: str, path: str, images: str | None, name: str | None
) -> dict:
    """The import job: add the dataset at `path` to the project at `location` (all or nothing)."""
    control.progress(0, 0, "reading the dataset")
    with _open(location) as project:
        control.check()
        progress = _reporter(control, "reading annotations")
        return import_dataset(project, path, images, name, progress)


def export_job(
    location: str, name: str, out: Path, options: ExportOptions | None = None
) -> LongJob:
    """The window's export of format `name` to `out`, as a process job."""
    opts = options or ExportOptions()
    fmt = formats.get(name)
    detail = ""
    if "polygons" in fmt.options.values():
        detail = " (polygons)" if opts.polygons else f" ({fmt.mask_word})"
    elif "yolo_task" in fmt.options.values():
        detail = f" ({opts.yolo_task})"
    return LongJob(
        f"Exporting {TITLES[name]}{detail} to {Path(out).name}",
        export_file,
        (str(location), name, str(out), asdict(opts)),
        process=True,
        cleanup=partial(remove_partials, Path(out)),
    )


def import_job(
    location: str, path: Path, images: Path | None = None, name: str | None = None
) -> LongJob:
    """The window's import of the dataset at `path` (format detected when `name` is None)."""
    return LongJob(
        f"Importing {Path(path).name}",
        import_file,
        (str(location), str(path), None if images is None else str(images), name),
        process=True,
    )


def project_location(project: Any) -> str:
    """What a job's child process opens: the team project's URL, or the database path."""
    return str(getattr(project, "url", None) or project.path)


# ------------------------------------------------------------- COCO (the window's first format)
def export_coco_file(control: JobControl, db_path: str, out: str, polygons: bool) -> dict:
    """Write the project at `db_path` as COCO JSON at `out`; returns export_coco's summary."""
    return export_file(control, db_path, "coco", out, {"polygons": bool(polygons)})


def import_coco_file(control: JobControl, db_path: str, path: str, images_dir: str) -> dict:
    """Add a COCO file's annotations to the project at `db_path` (all or nothing)."""
    return import_file(control, db_path, path, images_dir, "coco")


def export_coco_job(db_path: str, out: Path, polygons: bool) -> LongJob:
    return export_job(db_path, "coco", out, ExportOptions(polygons=bool(polygons)))


def import_coco_job(db_path: str, path: Path, images_dir: Path) -> LongJob:
    return import_job(db_path, path, images_dir, "coco")
