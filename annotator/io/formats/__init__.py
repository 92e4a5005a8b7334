"""Dataset formats: one `DatasetFormat` record per format, in `REGISTRY` (ADR 0028).

A record holds what the CLI, `app/transfer.py` and the window's dialogs need to know about a format
(name, title, one file or a folder, where its images are, which export options it takes, detection
order) and names the module that does the work: `export(project, out, **options)`,
`import_(path, images_dir, project)` and `detect(path)`. The module is imported on first use, so
reading the registry is light (a CLI run pays only for its own format). Adding a format is one
module here plus one `register(DatasetFormat(...))` line below.

One module per format (coco, yolo, voc, cvat, labelme, masks); `_common` holds what they share. What
each format cannot hold, and what its export does then, is in its module docstring and in
docs/adr/0007-dataset-formats.md; exports report it as `FormatWarning`s and in `summary["warnings"]`.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from annotator.errors import DatasetFormatError
from annotator.io.files import show_path

if TYPE_CHECKING:
    from annotator.io.formats._common import Progress
    from annotator.store.project import Project


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset format's facts; its code is in `annotator.io.formats.<module>`."""

    name: str  # the CLI's --format value
    title: str  # what the window shows
    suffix: str | None = None  # exported as one file with this suffix; None: a folder
    folder_unless_suffix: bool = False  # a folder unless the target ends in `suffix` (CVAT)
    images: str | None = None  # the images' default folder relative to the dataset ("." its own
    # folder, "" none: always asked); None: names are relative to the project or the JSON (no question)
    options: dict[str, str] = field(default_factory=dict)  # exporter keyword -> ExportOptions field
    detect_rank: int = 0  # detectors are asked in this order (all are asked; several = an error)
    partial_file: bool = False  # the window writes a hidden partial file, renamed at the end
    mask_word: str = "masks"  # what a mask is written as without `polygons` (the job's title)
    module: str = ""  # defaults to `name`
    importable: bool = True  # False: export only (GeoJSON)
    track: bool = (
        False  # a sequence format with tracks (issue 25): MOTS, MOT, DAVIS, COCO/CVAT video
    )

    def load(self) -> ModuleType:
        """The format's module (imported on first use)."""
        return importlib.import_module(f"annotator.io.formats.{self.module or self.name}")

    def writes_folder(self, out: str | os.PathLike) -> bool:
        """Whether an export to `out` writes a folder (staged, published whole)."""
        if self.suffix is None:
            return True
        return self.folder_unless_suffix and Path(out).suffix.lower() != self.suffix

    @property
    def single_file(self) -> bool:
        """Whether the window offers a file (not a folder) as the default target."""
        return self.suffix is not None


REGISTRY: dict[str, DatasetFormat] = {}


def register(fmt: DatasetFormat) -> DatasetFormat:
    """Add a format to the registry (its name must be new)."""
    if fmt.name in REGISTRY:
        raise ValueError(f"dataset format {fmt.name!r} is registered twice")
    REGISTRY[fmt.name] = fmt
    _refresh()
    return fmt


def _refresh() -> None:
    """The tuples older callers read, recomputed from the registry."""
    global FORMATS, EXPORT_FORMATS, TRACK_FORMATS, FOLDER_FORMATS, _DETECT_ORDER
    EXPORT_FORMATS = tuple(n for n, f in REGISTRY.items() if not f.track)
    FORMATS = tuple(n for n, f in REGISTRY.items() if f.importable and not f.track)
    TRACK_FORMATS = tuple(n for n, f in REGISTRY.items() if f.track)
    FOLDER_FORMATS = tuple(n for n, f in REGISTRY.items() if f.suffix is None)
    readable = [n for n, f in REGISTRY.items() if f.importable]
    _DETECT_ORDER = tuple(sorted(readable, key=lambda n: REGISTRY[n].detect_rank))


FORMATS: tuple[str, ...] = ()  # the image dataset formats that import
EXPORT_FORMATS: tuple[str, ...] = ()  # every image dataset format (all export)
TRACK_FORMATS: tuple[str, ...] = ()  # the sequence formats with tracks (import and export)
FOLDER_FORMATS: tuple[str, ...] = ()  # cvat too when `out` does not end in .xml
_DETECT_ORDER: tuple[str, ...] = ()

register(
    DatasetFormat(
        "coco",
        "COCO JSON",
        suffix=".json",
        options={"polygons": "polygons", "upright_dir": "upright_copies"},
        detect_rank=4,
        partial_file=True,
        mask_word="RLE",
    )
)
register(DatasetFormat("yolo", "YOLO", images="images", options={"task": "yolo_task"}))
register(DatasetFormat("voc", "Pascal VOC", images="JPEGImages", detect_rank=1))
register(
    DatasetFormat(
        "cvat",
        "CVAT XML",
        suffix=".xml",
        folder_unless_suffix=True,
        images=".",
        options={"polygons": "polygons", "copy_images": "copy_images"},
        detect_rank=3,
    )
)
register(DatasetFormat("labelme", "labelme JSON", detect_rank=5))
register(DatasetFormat("masks", "PNG masks", images="", detect_rank=2))
# Issue 26: polygons per image, in a GeoTIFF's CRS when it is georeferenced; export only.
register(
    DatasetFormat("geojson", "GeoJSON (polygons; a GeoTIFF's CRS)", importable=False, detect_rank=9)
)
# Issue 25: sequences with their tracks (io/formats/_tracks.py), kept apart from the image formats
# every image project exports to (FORMATS); their layouts are asked first.
register(DatasetFormat("mots", "MOTS tracks", track=True, detect_rank=-2))
register(DatasetFormat("mot", "MOT 1.1 boxes", track=True, detect_rank=-1))
register(DatasetFormat("davis", "DAVIS masks", track=True, detect_rank=-3))
# COCO with one image per frame (TAO's video fields, ADR 0038) and CVAT for video 1.1 (ADR 0039).
register(
    DatasetFormat(
        "coco-video", "COCO video (TAO fields)", track=True, detect_rank=-4, module="coco_video"
    )
)
register(
    DatasetFormat(
        "cvat-video", "CVAT for video 1.1", track=True, detect_rank=-5, module="cvat_video"
    )
)

__all__ = [
    "EXPORT_FORMATS",
    "TRACK_FORMATS",
    "FOLDER_FORMATS",
    "EXPORT_FORMATS",
    "FORMATS",
    "REGISTRY",
    "DatasetFormat",
    "FormatWarning",
    "Progress",
    "detect",
    "export",
    "format_module",
    "get",
    "import_",
    "register",
    "writes_folder",
]


def __getattr__(name: str) -> Any:
    """`FormatWarning` and `Progress` live in `_common` (numpy, the store): imported on use."""
    if name in ("FormatWarning", "Progress"):
        from annotator.io.formats import _common

        return getattr(_common, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get(name: str) -> DatasetFormat:
    """The record of format `name`; one line naming the known formats when there is none."""
    fmt = REGISTRY.get(name)
    if fmt is None:
        raise DatasetFormatError(f"unknown format {name!r} (one of: {', '.join(REGISTRY)})")
    return fmt


def format_module(name: str) -> ModuleType:
    """The module of a format (imported on first use: a CLI run pays only for its own format)."""
    return get(name).load()


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
        f"{show_path(p)}: cannot tell the dataset format "
        f"(give --format: {', '.join(FORMATS + TRACK_FORMATS)})"
    )


def writes_folder(name: str, out: str | os.PathLike) -> bool:
    """Whether format `name` exported to `out` writes a folder (staged, published whole)."""
    return get(name).writes_folder(out)


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
    if options.get("copy_images") and not folder:  # CVAT's images/ beside its XML
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
    if not get(name).importable:
        raise DatasetFormatError(
            f"{name} is an export-only format (import one of: {', '.join(FORMATS)})"
        )
    summary = format_module(name).import_(path, images_dir, project, progress=progress)
    summary.setdefault("warnings", [])
    summary["format"] = name
    return summary
