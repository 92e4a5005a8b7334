"""`annotator find | tag | similar | compare`: the discovery functions from the command line.

`register` adds the four subcommands (each with the model flags) and tags the namespace with
`discovery_command`; `run` dispatches. User errors raise `AnnotatorError` (the CLI prints them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from annotator.errors import AnnotatorError, PromptError

COMMANDS = ("find", "tag", "similar", "compare")

# `--a KEY=VALUE,...` keys: the model flags a side may override, with their types.
SIDE_KEYS: dict[str, type] = {
    "sam-checkpoint": Path,
    "clip-model": str,
    "clip-pretrained": str,
    "clip-weights": Path,
    "clip-config": Path,
    "region-head": str,
    "vocabulary": str,
}


def parse_side(text: str) -> dict[str, object]:
    """`KEY=VALUE,KEY=VALUE` -> {dest: value}; keys are model flag names without the dashes."""
    out: dict[str, object] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or key not in SIDE_KEYS or not value.strip():
            raise argparse.ArgumentTypeError(
                f"a model choice is KEY=VALUE[,KEY=VALUE...] with KEY one of "
                f"{', '.join(SIDE_KEYS)}; not {item!r}"
            )
        if key == "region-head" and value.strip() not in ("pool", "crop"):
            raise argparse.ArgumentTypeError(f"region-head is pool or crop, not {value.strip()!r}")
        out[key.replace("-", "_")] = SIDE_KEYS[key](value.strip())
    return out


def register(subparsers, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add `find`, `tag`, `similar` and `compare` to the `annotator` parser."""
    from annotator.cli import add_prompt_flags

    def proposal_flags(q: argparse.ArgumentParser) -> None:
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
    proposal_flags(q)
    q.set_defaults(discovery_command="find")

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
    q.set_defaults(discovery_command="tag")

    q = subparsers.add_parser(
        "similar",
        parents=list(parents),
        help="most similar images / annotated objects of a project by CLIP embedding",
    )
    q.add_argument("project", type=Path, help="project folder or .db file")
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
    q.set_defaults(discovery_command="similar")

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
        "--a", type=parse_side, default={}, metavar="KEY=VALUE,...", help="side A's model choice"
    )
    q.add_argument(
        "--b", type=parse_side, default={}, metavar="KEY=VALUE,...", help="side B's model choice"
    )
    q.add_argument("--top-k", type=int, default=5, metavar="K", help="labels per side (5)")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(discovery_command="compare")


# ------------------------------------------------------------------------------------- commands
def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise AnnotatorError(f"{name} must be at least 1, not {value}")


def run_find(args: argparse.Namespace) -> int:
    from annotator.cli import make_engine
    from annotator.discovery.find import Finder
    from annotator.discovery.proposals import ProposalSettings
    from annotator.io.masks import mask_bbox, mask_to_rle

    _check_positive("--top-k", args.top_k)
    _check_positive("--points-per-side", args.points_per_side)
    if not args.image.is_file():
        raise AnnotatorError(f"{args.image}: no such image file")
    if not args.query.strip():
        raise PromptError("the search text is empty")
    settings = ProposalSettings(
        points_per_side=args.points_per_side,
        pred_iou_thresh=args.pred_iou_thresh,
        stability_score_thresh=args.stability_thresh,
        nms_thresh=args.nms_thresh,
    )
    engine = make_engine(args)
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
                "bbox": [float(v) for v in mask_bbox(m.mask)],  # XYWH, as COCO and `segment`
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


def run_tag(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from annotator.cli import make_engine
    from annotator.discovery.tags import seed_labels, seed_vocabulary, tag_images
    from annotator.io.images import list_images

    _check_positive("--top-k", args.top_k)
    _check_positive("--seed-labels", args.seed_labels)
    if args.output is not None and args.seed_labels is None:
        raise AnnotatorError("-o/--output writes the seeded labels: add --seed-labels N")
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
    from annotator.cli import _open_project, make_engine
    from annotator.discovery.similar import SimilarityIndex, backfill

    _check_positive("--top-k", args.top_k)
    if not args.index and args.image is None and args.annotation is None:
        raise AnnotatorError("give --image NAME or --annotation ID (or --index to embed)")
    with _open_project(args.project, create=False) as project:
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
            model_id = _model_id_without_sam(args)
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


def _model_id_without_sam(args: argparse.Namespace) -> str:
    """The region model id the query needs: only the CLIP model and head are loaded (no SAM, no
    text index), since a query reads stored vectors."""
    from annotator.models.clip import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, ClipModel
    from annotator.models.region import default_head_name, make_head

    name, pretrained = args.clip_model, args.clip_pretrained
    if args.clip_config is None and args.clip_weights is None and pretrained is None:
        name = name or DEFAULT_CLIP_MODEL
        pretrained = DEFAULT_CLIP_PRETRAINED if name == DEFAULT_CLIP_MODEL else None
    clip = ClipModel.load(
        name=name if args.clip_config is None else None,
        pretrained=pretrained,
        weights=args.clip_weights,
        config=args.clip_config,
        device="cpu",
    )
    head = make_head(args.region_head or default_head_name(clip), clip)
    return f"{clip.identity}|{getattr(head, 'identity', head.name)}"


def run_compare(args: argparse.Namespace) -> int:
    from annotator.cli import make_engine
    from annotator.discovery.compare import compare, comparison_json, format_comparison

    _check_positive("--top-k", args.top_k)
    if not args.point and args.box is None:
        raise PromptError("give at least one --point X,Y or a --box X0,Y0,X1,Y1")
    if not args.image.is_file():
        raise AnnotatorError(f"{args.image}: no such image file")
    side_a = argparse.Namespace(**{**vars(args), **args.a})
    side_b = argparse.Namespace(**{**vars(args), **args.b})
    engine_a = make_engine(side_a)
    changed = {k for k in SIDE_KEYS if getattr(side_a, k.replace("-", "_"), None)
               != getattr(side_b, k.replace("-", "_"), None)}  # fmt: skip
    if changed <= {"region-head"}:  # same models: share them, swap the head
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


HANDLERS = {"find": run_find, "tag": run_tag, "similar": run_similar, "compare": run_compare}


def run(args: argparse.Namespace) -> int:
    """Dispatch on `args.discovery_command` (set by `register`)."""
    return HANDLERS[args.discovery_command](args)


__all__ = ["COMMANDS", "parse_side", "register", "run"]
