"""`annotator find | tag | similar | compare`: the discovery functions from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from annotator.cli.autolabel import add_proposal_flags, add_sam3_flags
from annotator.cli.flags import (
    add_prompt_flags,
    check_positive,
    make_engine,
    open_project,
    project_location,
)
from annotator.errors import AnnotatorError, PromptError
from annotator.spec import SIDE_KEYS, ModelSpec, parse_side


def _side(text: str) -> dict:
    try:
        return parse_side(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(subparsers, models: argparse.ArgumentParser) -> None:
    """Add `find`, `tag`, `similar` and `compare` to the `annotator` parser."""
    parents = [models]

    q = subparsers.add_parser(
        "find",
        parents=list(parents),
        help="masks and boxes for a text query (open-vocabulary detection), printed as JSON",
    )
    q.add_argument("image", type=Path, help="an image file")
    q.add_argument("query", help='what to look for, e.g. "red car"')
    q.add_argument("--top-k", type=int, default=10, metavar="K", help="at most K masks (10)")
    q.add_argument(
        "--threshold", type=float, metavar="S", help="only masks with a cosine score >= S"
    )
    q.add_argument(
        "--by",
        choices=("proposals", "sam3"),
        default="proposals",
        help="proposals: grid masks scored by CLIP (default); sam3: SAM 3's text prompt",
    )
    add_proposal_flags(q)
    add_sam3_flags(q)
    q.set_defaults(handler=run_find)

    q = subparsers.add_parser(
        "tag", parents=list(parents), help="top vocabulary tags per image; seed a label set"
    )
    q.add_argument("folder", type=Path, help="a folder of images (or one image)")
    q.add_argument("-k", "--top-k", type=int, default=5, metavar="K", help="tags per image (5)")
    q.add_argument(
        "--format",
        choices=("jsonl", "table"),
        default="jsonl",
        help="one JSON object per image (default) or an aligned table",
    )
    q.add_argument(
        "--seed-labels",
        type=int,
        metavar="N",
        help="print the N most frequent tags as a label set instead of per-image tags",
    )
    q.add_argument(
        "--min-score", type=float, default=0.0, metavar="P", help="tags below P do not count"
    )
    q.add_argument("-o", "--output", type=Path, help="with --seed-labels: write a vocabulary file")
    q.set_defaults(handler=run_tag)

    q = subparsers.add_parser(
        "similar",
        parents=list(parents),
        help="most similar images / annotated objects of a project by CLIP embedding",
    )
    q.add_argument("project", type=project_location, help="project folder, .db file or URL")
    which = q.add_mutually_exclusive_group()
    which.add_argument("--image", metavar="NAME", help="an image of the project (file name)")
    which.add_argument("--annotation", type=int, metavar="ID", help="an annotation id")
    q.add_argument(
        "--index", action="store_true", help="first embed the images/annotations not yet embedded"
    )
    q.add_argument(
        "--of",
        choices=("image", "annotation"),
        help="what to return (default: the kind of the query)",
    )
    q.add_argument("-k", "--top-k", type=int, default=10, metavar="K", help="default 10")
    q.set_defaults(handler=run_similar)

    q = subparsers.add_parser(
        "compare",
        parents=list(parents),
        help="one image and clicks through two model choices, side by side",
        description="Side A and side B start from the model flags; --a and --b override some "
        f"of them: KEY=VALUE[,KEY=VALUE...] with KEY in {', '.join(SIDE_KEYS)}. Example: "
        "--b region-head=crop, or --a sam-checkpoint=b.pth --b sam-checkpoint=h.pth.",
    )
    q.add_argument("image", type=Path, help="an image file")
    add_prompt_flags(q)
    q.add_argument(
        "--a", type=_side, default={}, metavar="KEY=VALUE,...", help="side A's model choice"
    )
    q.add_argument(
        "--b", type=_side, default={}, metavar="KEY=VALUE,...", help="side B's model choice"
    )
    q.add_argument("--top-k", type=int, default=5, metavar="K", help="labels per side (5)")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(handler=run_compare)


# ------------------------------------------------------------------------------------- commands
def run_find(args: argparse.Namespace) -> int:
    from annotator.discovery.find import Finder
    from annotator.discovery.proposals import ProposalSettings
    from annotator.io.masks import mask_box_xywh, mask_to_rle

    check_positive("--top-k", args.top_k)
    check_positive("--points-per-side", args.points_per_side)
    if not args.image.is_file():
        raise AnnotatorError(f"{args.image}: no such image file")
    if not args.query.strip():
        raise PromptError("the search text is empty")
    if args.by == "sam3":
        return _find_sam3(args)
    settings = ProposalSettings(
        points_per_side=args.points_per_side,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_thresh,
        nms_thresh=args.nms_thresh,
    )
    engine = make_engine(args)
    from annotator.io.pyramid import is_large

    if is_large(args.image):  # a tile grid at full resolution, merged (issue 26)
        from annotator.cli.large import find_large

        return find_large(args, engine, settings)
    embedding = engine.embed(args.image)
    finder = Finder(engine, settings)
    matches = finder.find(embedding, args.query, args.threshold, args.top_k)
    result = {
        "image": str(args.image),
        "width": embedding.size[1],
        "height": embedding.size[0],
        "query": args.query,
        "proposals": len(finder.proposals(embedding)),
        "matches": [
            {
                "rle": mask_to_rle(m.mask),
                "bbox": [float(v) for v in mask_box_xywh(m.mask)],  # XYWH, as COCO and `segment`
                "box": [float(v) for v in m.box],  # XYXY
                "area": int(m.mask.sum()),
                "score": round(m.score, 6),
                "sam_score": round(m.proposal_score, 6),
            }
            for m in matches
        ],
    }
    print(json.dumps(result))
    return 0


def _find_sam3(args: argparse.Namespace) -> int:
    """`find --by sam3`: SAM 3's instances of the query, in the same JSON as the proposals path."""
    from annotator.device import resolve_device
    from annotator.io.images import load_image
    from annotator.io.masks import mask_box_xywh, mask_to_rle
    from annotator.models.sam3 import Sam3TextSegmenter

    segmenter = Sam3TextSegmenter.load(args.sam3_model, resolve_device(args.device))
    rgb = load_image(args.image)
    threshold = 0.3 if args.threshold is None else args.threshold
    found = segmenter.segment(rgb, args.query, threshold, args.mask_threshold)
    result = {
        "image": str(args.image),
        "width": int(rgb.shape[1]),
        "height": int(rgb.shape[0]),
        "query": args.query,
        "by": "sam3",
        "proposals": len(found),
        "matches": [
            {
                "rle": mask_to_rle(m.mask),
                "bbox": [float(v) for v in mask_box_xywh(m.mask)],
                "box": [float(v) for v in m.box],
                "area": int(m.mask.sum()),
                "score": round(m.score, 6),
            }
            for m in found[: args.top_k]
        ],
    }
    print(json.dumps(result))
    return 0


def run_tag(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from annotator.discovery.tags import seed_labels, seed_vocabulary, tag_images
    from annotator.io.images import list_images

    check_positive("--top-k", args.top_k)
    check_positive("--seed-labels", args.seed_labels)
    if args.output is not None and args.seed_labels is None:
        raise AnnotatorError("-o/--output writes the seeded labels: add --seed-labels N")
    if args.output is not None:  # issue 22: the one output check, before any model
        from annotator.io.outputs import check_output

        check_output(args.output, False, [args.folder], [args.folder])
    if args.folder.is_file():
        paths = [args.folder]
    elif args.folder.is_dir():
        paths = list_images(args.folder)
        if not paths:
            raise AnnotatorError(f"{args.folder}: no images found")
    else:
        raise AnnotatorError(f"{args.folder}: no such folder or image")
    engine = make_engine(args)
    collected = []
    failed = 0
    with tqdm(total=len(paths), desc="tagging", unit="image", file=sys.stderr) as bar:
        for item in tag_images(engine, paths, args.top_k):
            bar.update(1)
            if item.error is not None:
                failed += 1
                bar.write(f"annotator: skipped {item.path.name}: {item.error}", file=sys.stderr)
                continue
            collected.append(item.tags)
            if args.seed_labels is not None:
                continue
            if args.format == "jsonl":
                tags = [{"name": n, "score": round(float(s), 6)} for n, s in item.tags]
                print(json.dumps({"image": str(item.path), "tags": tags}), flush=True)
            else:
                text = ", ".join(f"{n} ({s:.2f})" for n, s in item.tags)
                print(f"{item.path.name}\t{text}", flush=True)
    if args.seed_labels is not None:
        names = seed_labels(collected, args.seed_labels, args.min_score)
        if args.output is not None:
            seed_vocabulary(names, engine.vocabulary).save(args.output)
            print(f"{args.output}: {len(names)} labels", file=sys.stderr)
        else:
            for name in names:
                print(name)
    return 1 if failed else 0


def run_similar(args: argparse.Namespace) -> int:
    from annotator.discovery.similar import SimilarityIndex, backfill, region_model_id

    check_positive("--top-k", args.top_k)
    if not args.index and args.image is None and args.annotation is None:
        raise AnnotatorError("give --image NAME or --annotation ID (or --index to embed)")
    with open_project(args.project, create=False) as project:
        # the image or annotation asked for exists: checked before any model loads (issue 22)
        if args.image is not None and project.image_by_name(args.image) is None:
            raise AnnotatorError(f"{args.project}: no image named {args.image!r}")
        if args.image is None and args.annotation is not None:
            try:
                project.annotation(args.annotation)
            except KeyError:
                raise AnnotatorError(
                    f"{args.project}: no annotation with id {args.annotation}"
                ) from None
        if args.index:
            engine = make_engine(args)
            model_id = engine.region_model_id
            from tqdm import tqdm

            with tqdm(desc="embedding", unit="image", file=sys.stderr) as bar:

                def progress(done: int, total: int) -> None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()

                report = backfill(project, engine, progress)
            for line in report.failed:
                print(f"annotator: skipped {line}", file=sys.stderr)
            print(
                f"{report.images} images and {report.annotations} annotations embedded",
                file=sys.stderr,
            )
            if args.image is None and args.annotation is None:
                return 1 if report.failed else 0
        else:
            model_id = region_model_id(ModelSpec.from_args(args))
        index = SimilarityIndex(project, model_id)
        if args.image is not None:
            record = project.image_by_name(args.image)
            if record is None:
                raise AnnotatorError(f"{args.project}: no image named {args.image!r}")
            found = index.like_image(record.id, args.of or "image", args.top_k)
        else:
            try:
                project.annotation(args.annotation)
            except KeyError:
                raise AnnotatorError(
                    f"{args.project}: no annotation with id {args.annotation}"
                ) from None
            found = index.like_annotation(args.annotation, args.of or "annotation", args.top_k)
        for n in found:
            row: dict[str, object] = {"kind": n.kind, "id": n.ref_id, "score": round(n.score, 6)}
            if n.kind == "image":
                row["file_name"] = project.image(n.ref_id).file_name
            else:
                annotation = project.annotation(n.ref_id)
                row["image"] = project.image(annotation.image_id).file_name
                row["category"] = annotation.category
                row["bbox"] = list(annotation.bbox)
            print(json.dumps(row))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from annotator.discovery.compare import compare, comparison_json, format_comparison

    check_positive("--top-k", args.top_k)
    if not args.point and args.box is None:
        raise PromptError("give at least one --point X,Y or a --box X0,Y0,X1,Y1")
    if not args.image.is_file():
        raise AnnotatorError(f"{args.image}: no such image file")
    spec = ModelSpec.from_args(args)
    side_a, side_b = spec.with_side(args.a), spec.with_side(args.b)
    engine_a = make_engine(side_a)
    if side_a.differs_only_in_head(side_b):  # same models: share them, swap the head
        from annotator.models.region import default_head_name

        engine_b = engine_a.with_head(side_b.region_head or default_head_name(engine_a.clip))
    else:
        engine_b = make_engine(side_b)
    result = compare(engine_a, engine_b, args.image, args.point, args.box, args.top_k)
    if args.json:
        print(json.dumps(comparison_json(result)))
    else:
        print(format_comparison(result))
    return 0
