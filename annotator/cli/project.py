"""`annotator export | import`: a project to and from dataset files (io/formats: coco, yolo, voc,
cvat, labelme, masks). What a format cannot hold is printed as `annotator: warning: ...` lines."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

# light: the format code loads on use
from annotator.app.transfer import EXPORT_FORMATS, FORMATS, TRACK_FORMATS, YOLO_TASKS
from annotator.cli.flags import open_project, project_location


def register(sub, models: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "export",
        help="write a project as a dataset: COCO JSON, YOLO, Pascal VOC, CVAT XML, labelme, PNG masks",
    )
    p.add_argument("project", type=project_location, help="project folder, .db file or URL")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="coco: the JSON file; cvat: the XML file or a folder; others: the dataset folder",
    )
    p.add_argument(
        "--format",
        choices=EXPORT_FORMATS + TRACK_FORMATS,
        default="coco",
        help="dataset format (default: coco)",
    )
    p.add_argument(
        "--polygons",
        action="store_true",
        help="coco, cvat: polygons instead of RLE / CVAT masks (masks with holes stay masks)",
    )
    p.add_argument(
        "--yolo-task",
        choices=YOLO_TASKS,
        default="segment",
        help="yolo: polygons (segment, default) or boxes (detect)",
    )
    p.add_argument(
        "--upright-copies",
        type=Path,
        metavar="DIR",
        help="coco: also write upright copies of all images to DIR (EXIF rotation applied), the "
        "pixels that the exported sizes and masks refer to",
    )
    p.add_argument(
        "--copy-images", action="store_true", help="cvat: also copy the images to images/"
    )
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("import", help="read a dataset into a project (all or nothing)")
    p.add_argument(
        "path", type=Path, help="dataset file or folder (COCO JSON, YOLO/VOC/masks folder, ...)"
    )
    p.add_argument(
        "--images",
        type=Path,
        help="folder the dataset's images are in (default: the dataset's own images folder, "
        "or the project folder)",
    )
    p.add_argument(
        "--project",
        type=project_location,
        required=True,
        help="project folder, .db file or postgresql:// URL (created if new)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS + TRACK_FORMATS,
        help="dataset format (default: detected from the files)",
    )
    p.set_defaults(handler=cmd_import)


def _print_warnings(summary: dict) -> None:
    for line in summary.get("warnings", []):
        print(f"annotator: warning: {line}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    from annotator.app.transfer import ExportOptions, export_project

    options = ExportOptions(
        polygons=args.polygons,
        yolo_task=args.yolo_task,
        upright_copies=args.upright_copies,
        copy_images=args.copy_images,
    )
    with open_project(args.project, create=False) as project:
        summary = export_project(project, args.format, args.output, options)
    _print_warnings(summary)
    print(json.dumps({"output": str(args.output), **summary}))
    return 0


def _new_project_folder(location: Path | str) -> Path | None:
    """The `.annotator/` folder opening `location` will create, when there is none yet."""
    from annotator.cli.flags import project_db
    from annotator.store.backend import is_url

    if is_url(location):
        return None
    folder = project_db(Path(location)).parent
    return folder if folder.name == ".annotator" and not folder.exists() else None


def cmd_import(args: argparse.Namespace) -> int:
    from annotator.app.transfer import check_import_paths, detect_format, import_dataset

    check_import_paths(args.path, args.images)
    name = args.format or detect_format(args.path)
    made = _new_project_folder(args.project)
    try:
        with open_project(args.project) as project:
            summary = import_dataset(project, args.path, args.images, name)
    except BaseException:
        if made is not None:  # a refused import leaves no empty project behind
            shutil.rmtree(made, ignore_errors=True)
        raise
    _print_warnings(summary)
    print(json.dumps(summary))
    return 0
