"""`annotator autolabel | review`: batch proposals for a folder, then accept / reject them headless."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from annotator.cli.flags import (
    INTERRUPTED,
    check_positive,
    make_engine,
    open_project,
    project_db,
    run_per_image,
)
from annotator.errors import AnnotatorError

BY = ("auto", "proposals", "sam3")


def add_proposal_flags(q: argparse.ArgumentParser) -> None:
    """upstream SamAutomaticMaskGenerator's knobs (single crop), shared with `find`."""
    g = q.add_argument_group("automatic masks (SamAutomaticMaskGenerator settings)")
    g.add_argument("--points-per-side", type=int, default=16, metavar="N", help="default 16")
    g.add_argument(
        "--pred-iou-thresh",
        type=float,
        default=0.88,
        metavar="T",
        help="drop masks SAM rates below T (0.88)",
    )
    g.add_argument(
        "--stability-thresh",
        type=float,
        default=0.95,
        metavar="T",
        help="drop masks whose shape changes with the cut-off (0.95)",
    )
    g.add_argument(
        "--nms-thresh",
        type=float,
        default=0.7,
        metavar="T",
        help="box and mask IoU above which overlapping masks are duplicates (0.7)",
    )


def add_sam3_flags(q: argparse.ArgumentParser) -> None:
    g = q.add_argument_group("SAM 3 (--by sam3)")
    g.add_argument(
        "--sam3-model",
        type=Path,
        metavar="FOLDER",
        help="a SAM 3 save_pretrained folder (default: `annotator weights download sam3`)",
    )
    g.add_argument(
        "--mask-threshold",
        type=float,
        default=0.5,
        metavar="T",
        help="SAM 3 mask probability cut-off (0.5)",
    )


def register(sub, models: argparse.ArgumentParser) -> None:
    """Add `autolabel` and `review` to the `annotator` parser."""
    q = sub.add_parser(
        "autolabel",
        parents=[models],
        help="pending proposals for every image and class (resumable); review them afterwards",
        description="Every image of FOLDER (or of the project) gets proposals for each class, "
        "stored as pending (not exported until accepted). Rerunning the same command continues "
        "where a killed or interrupted run stopped.",
    )
    q.add_argument(
        "target",
        type=Path,
        help="an image folder (its project is created), a project, or a video file (a sequence)",
    )
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--classes", metavar="A,B,...", help='class names, e.g. "person,car,dog"')
    which.add_argument(
        "--label-set", action="store_true", help="the project's categories as the classes"
    )
    q.add_argument(
        "--by",
        choices=BY,
        default="auto",
        help="proposals: grid masks scored by CLIP (the CPU choice); sam3: SAM 3 text prompts "
        "(the GPU choice); auto (default): sam3 on a GPU when its weights are there, else proposals",
    )
    q.add_argument(
        "--threshold",
        type=float,
        metavar="S",
        help="keep regions whose class score is >= S (default 0.2 for proposals' cosine, "
        "0.3 for SAM 3's score)",
    )
    q.add_argument(
        "--top-k", type=int, default=10, metavar="K", help="at most K regions per class and image"
    )
    g = q.add_argument_group("sequences (a video file, or a frame folder with --sequence)")
    g.add_argument(
        "--sequence", action="store_true", help="TARGET is a folder of frames: one sequence"
    )
    g.add_argument(
        "--frame", type=int, default=0, metavar="N", help="the frame proposals are made on (0)"
    )
    g.add_argument(
        "--save", type=Path, metavar="PROJECT", help="the project (default: the video's folder)"
    )
    add_proposal_flags(q)
    add_sam3_flags(q)
    q.set_defaults(handler=run_autolabel)

    q = sub.add_parser(
        "review",
        help="pending auto-label proposals: counts, accept above a score",
        description="Headless review; the window's review panel does it one by one.",
    )
    q.add_argument("project", type=Path, help="project folder or .db file")
    q.add_argument(
        "--summary",
        action="store_true",
        help="print JSON counts: pending, accepted, rejected, images_done (default action)",
    )
    q.add_argument(
        "--accept-above", type=float, metavar="S", help="accept every pending proposal scoring >= S"
    )
    q.add_argument(
        "--reject-below", type=float, metavar="S", help="reject every pending proposal scoring < S"
    )
    q.set_defaults(handler=run_review)


# ----------------------------------------------------------------------------------- autolabel
def _choose_by(args: argparse.Namespace) -> str:
    if args.by != "auto":
        return args.by
    from annotator.device import resolve_device
    from annotator.models.sam3 import sam3_cache_dir

    folder = args.sam3_model or sam3_cache_dir()
    on_gpu = resolve_device(args.device).startswith("cuda")
    return "sam3" if on_gpu and (Path(folder) / "config.json").is_file() else "proposals"


def make_labeler(args: argparse.Namespace, by: str):
    """The labeler the flags describe (models loaded here)."""
    from annotator.discovery.autolabel import ProposalLabeler, Sam3Labeler

    check_positive("--top-k", args.top_k)
    if by == "sam3":
        from annotator.device import resolve_device
        from annotator.models.sam3 import Sam3TextSegmenter

        segmenter = Sam3TextSegmenter.load(args.sam3_model, resolve_device(args.device))
        threshold = 0.3 if args.threshold is None else args.threshold
        return Sam3Labeler(segmenter, threshold, args.mask_threshold, args.top_k)
    from annotator.discovery.proposals import ProposalSettings

    check_positive("--points-per-side", args.points_per_side)
    settings = ProposalSettings(
        points_per_side=args.points_per_side,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_thresh,
        nms_thresh=args.nms_thresh,
    )
    threshold = 0.2 if args.threshold is None else args.threshold
    return ProposalLabeler(make_engine(args), settings, threshold, args.top_k)


def _open_target(target: Path):
    """A project (.db, or a folder that has one) or an image folder (project created, images
    added). Returns the open project and the unreadable images."""
    from annotator.discovery.autolabel import add_folder_images

    if target.suffix == ".db" or project_db(target).is_file():
        project = open_project(target, create=False)
    elif target.is_dir():
        project = open_project(target, create=True)
    else:
        raise AnnotatorError(f"{target}: no such folder or project")
    try:
        unreadable = add_folder_images(project, project.folder) if project.folder else []
    except BaseException:
        project.close()
        raise
    return project, unreadable


def run_autolabel(args: argparse.Namespace) -> int:
    if not args.label_set:  # the one name rule, before a project is opened or a model imported
        from annotator.store.proposals import parse_classes as check_classes

        check_classes(args.classes)
    from annotator.app.autolabel import autolabel
    from annotator.cli.autolabel_sequence import is_sequence_target, run_autolabel_sequence
    from annotator.discovery.autolabel import parse_classes

    if is_sequence_target(args):  # issue 25: proposals on a frame, then tracks
        if args.label_set:
            raise AnnotatorError("a sequence is labelled with --classes (not --label-set)")
        classes = parse_classes(args.classes)
        if not classes:
            raise AnnotatorError("--classes is empty: give names separated by commas")
        return run_autolabel_sequence(args, classes, _choose_by(args), make_labeler)
    project, unreadable = _open_target(args.target)
    with project:
        if args.label_set:
            classes = [c.name for c in project.categories()]
            if not classes:
                raise AnnotatorError(
                    f"{args.target}: the project has no categories for --label-set"
                )
        else:
            classes = parse_classes(args.classes)
            if not classes:
                raise AnnotatorError("--classes is empty: give names separated by commas")
        if not project.images():
            raise AnnotatorError(f"{args.target}: no images to label")
        for line in unreadable:
            print(f"annotator: skipped {line}", file=sys.stderr)
        by = _choose_by(args)
        labeler = make_labeler(args, by)
        report = run_per_image(
            lambda progress: autolabel(project, labeler, classes, progress=progress),
            len(project.images()),
            f"autolabel ({by})",
        )
        if report is None:
            return INTERRUPTED
    for line in report.failed:
        print(f"annotator: skipped {line}", file=sys.stderr)
    print(
        json.dumps(
            {
                "by": by,
                "run": report.run,
                "classes": classes,
                "images": report.total,
                "labelled": report.labelled,
                "skipped_done": report.skipped,
                "failed": len(report.failed),
                "proposals": report.proposals,
                "seconds": round(report.seconds, 3),
            }
        )
    )
    return 1 if report.failed else 0


# -------------------------------------------------------------------------------------- review
def run_review(args: argparse.Namespace) -> int:
    from annotator.store.proposals import PENDING, REJECTED, ProposalStore

    with open_project(args.project, create=False) as project:
        store = ProposalStore(project)
        result: dict[str, object] = {}
        if args.accept_above is not None:
            ids = [p.id for p in store.proposals(PENDING) if p.score >= args.accept_above]
            store.accept_many(ids)
            result["accepted_now"] = len(ids)
        if args.reject_below is not None:
            ids = [p.id for p in store.proposals(PENDING) if p.score < args.reject_below]
            with project.transaction():
                for i in ids:
                    store.set_status(i, REJECTED)
            result["rejected_now"] = len(ids)
        result.update(store.summary())
        print(json.dumps(result))
    return 0
