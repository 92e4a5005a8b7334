"""`annotator refine PROJECT --boxes`: box-only annotations -> pending mask proposals (then `review`)."""

from __future__ import annotations

import argparse
import json
import sys

from annotator.cli.flags import (
    INTERRUPTED,
    make_engine,
    open_project,
    project_location,
    run_per_image,
)
from annotator.errors import AnnotatorError


def register(sub, models: argparse.ArgumentParser) -> None:
    """Add `refine` to the `annotator` parser."""
    q = sub.add_parser(
        "refine",
        parents=[models],
        help="a pending mask proposal for every box-only annotation (resumable); review them after",
        description="Every box-only annotation of PROJECT (imported detection datasets) becomes "
        "SAM's prompt; each mask is stored as a pending proposal for that box, which `annotator "
        "review` or the window's Review panel accepts (the box then gets the mask) or rejects. "
        "Boxes already refined are skipped: rerunning continues where a stopped run ended.",
    )
    q.add_argument("project", type=project_location, help="project folder, .db file or URL")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--boxes", action="store_true", help="refine the box-only annotations into masks"
    )
    q.add_argument(
        "--images",
        metavar="NAME,NAME,...",
        help="only these images (file names as the project lists them)",
    )
    q.add_argument(
        "--no-clip",
        action="store_true",
        help="keep mask pixels outside the box (default: the mask is cut to its box)",
    )
    q.set_defaults(handler=run_refine)


def _image_ids(project, names: str | None) -> list[int] | None:
    if names is None:
        return None
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if not wanted:
        raise AnnotatorError("--images is empty: give file names separated by commas")
    ids = []
    for name in wanted:
        record = project.image_by_name(name)
        if record is None:
            raise AnnotatorError(f"--images: {name!r} is not an image of the project")
        ids.append(record.id)
    return ids


def run_refine(args: argparse.Namespace) -> int:
    from annotator.app.refine import refine_boxes, waiting_boxes
    from annotator.store.extras import boxes
    from annotator.store.proposals import ProposalStore

    with open_project(args.project, create=False) as project:
        if project.folder is None:
            raise AnnotatorError(f"{args.project}: the project does not know its image folder")
        image_ids = _image_ids(project, args.images)
        if not boxes(project):
            print(f"annotator: no box-only annotations in {args.project}", file=sys.stderr)
        todo = waiting_boxes(ProposalStore(project), image_ids)
        engine = make_engine(args, build_index=False) if todo else None
        report = run_per_image(
            lambda progress: refine_boxes(
                project, engine, image_ids, clip=not args.no_clip, progress=progress
            ),
            len(todo),
            "refine boxes",
        )
        if report is None:
            return INTERRUPTED
    for line in report.failed:
        print(f"annotator: skipped {line}", file=sys.stderr)
    print(
        json.dumps(
            {
                "boxes": report.boxes,
                "proposals": report.proposals,
                "images": report.images,
                "skipped_done": report.skipped,
                "empty": report.empty,
                "failed": len(report.failed),
                "seconds": round(report.seconds, 3),
            }
        )
    )
    return 1 if report.failed else 0
