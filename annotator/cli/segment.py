"""`annotator gui | embed | segment`: the window, the background encoder and one click, headless."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from annotator.cli.flags import (
    add_prompt_flags,
    make_engine,
    open_project,
    project_exists,
    project_location,
)
from annotator.errors import AnnotatorError, PromptError

if TYPE_CHECKING:
    import numpy as np


def register(sub, models: argparse.ArgumentParser) -> None:
    p = sub.add_parser("gui", parents=[models], help="open the window (the default)")
    p.add_argument(
        "folder",
        nargs="?",
        type=project_location,
        help="folder of images, a video file (opened in its folder), or a project URL"
        " (postgresql://USER@HOST:PORT/DB?project=NAME)",
    )
    p.set_defaults(handler=cmd_gui)

    p = sub.add_parser(
        "embed", parents=[models], help="encode every image of a folder into the cache"
    )
    p.add_argument("folder", type=Path, help="folder of images; cached images are skipped")
    from annotator.cli.large import add_embed_flags

    add_embed_flags(p)  # large images (issue 26): which pyramid level and windows
    ray = p.add_argument_group('cluster (pip install "annotator[cluster]")')
    ray.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="encode on a Ray cluster (ADDRESS as ray.init takes it, e.g. auto or HOST:6379); "
        "without ADDRESS a local one on this machine. Images and --cache-dir must be on a file "
        "system every node sees at the same path",
    )
    ray.add_argument(
        "--ray-workers", type=int, metavar="N", help="workers (default: one per GPU, else CPUs/C)"
    )
    ray.add_argument(
        "--ray-cpus-per-worker",
        type=float,
        metavar="C",
        help="CPU cores per worker, its torch threads (default 4, or 1 beside a GPU)",
    )
    ray.add_argument(
        "--ray-batch", type=int, default=None, metavar="B", help="images per task (default 8)"
    )
    p.set_defaults(handler=cmd_embed)

    p = sub.add_parser(
        "segment", parents=[models], help="one mask + labels for prompts, printed as JSON"
    )
    p.add_argument("image", type=Path, help="an image file")
    add_prompt_flags(p)
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="labels to print (5)")
    p.add_argument(
        "--multimask",
        choices=("auto", "on", "off"),
        default="auto",
        help="SAM's three candidates (auto: on for a single click, as SAM recommends)",
    )
    p.add_argument(
        "--save",
        type=project_location,
        metavar="PROJECT",
        help="also store the mask in this project (folder, .db file or postgresql:// URL)",
    )
    p.add_argument(
        "--category",
        help="category to save under (default: the best label; the project's accepted objects "
        "count as visual exemplars for it)",
    )
    from annotator.cli.large import add_window_flag

    add_window_flag(p)  # large images (issue 26): the region the segmenter sees
    p.set_defaults(handler=cmd_segment)


def cmd_gui(args: argparse.Namespace) -> int:
    from annotator.gui.app import run_gui

    return run_gui(args.folder, args)


def cmd_embed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from annotator.io.images import list_images, show_path

    if not args.folder.is_dir():
        raise AnnotatorError(f"{args.folder}: not a folder")
    ray_flags = [f for f in ("ray_workers", "ray_cpus_per_worker", "ray_batch") if getattr(args, f)]
    if args.ray is None and ray_flags:
        raise AnnotatorError(f"--{ray_flags[0].replace('_', '-')} needs --ray")
    paths = list_images(args.folder)
    if not paths:
        raise AnnotatorError(f"{args.folder}: no images found")
    if args.ray is not None:
        return _embed_on_ray(args, paths)
    from annotator.cli.large import embed_large
    from annotator.io.pyramid import is_large

    engine = make_engine(args, build_index=False)  # encoding needs no text index
    failed = skipped = 0
    with tqdm(paths, desc="embedding", unit="image", file=sys.stderr) as bar:
        for path in bar:
            if is_large(path):  # a tiled TIFF over 16 MP: the level and windows asked for
                try:
                    done, cached = embed_large(engine, path, args.level, args.tiles)
                except AnnotatorError as error:
                    failed += 1
                    bar.write(
                        f"annotator: skipped {show_path(path.name)}: {error}", file=sys.stderr
                    )
                    continue
                skipped += not done
                continue
            if engine.is_cached(path):
                skipped += 1
                continue
            try:
                engine.embed(path)
            except AnnotatorError as error:
                failed += 1
                bar.write(f"annotator: skipped {show_path(path.name)}: {error}", file=sys.stderr)
    print(
        f"{len(paths) - failed - skipped} embedded, {skipped} already cached, {failed} failed",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _embed_on_ray(args: argparse.Namespace, paths: list[Path]) -> int:
    """`embed --ray`: the same cache files and the same summary, from a pool of Ray workers."""
    from tqdm import tqdm

    from annotator.cli.flags import spec_from_args
    from annotator.cluster import DEFAULT_BATCH, embed_on_ray, import_ray
    from annotator.io.images import show_path

    import_ray()  # the install hint before anything else
    with tqdm(total=len(paths), desc="embedding", unit="image", file=sys.stderr) as bar:

        def on_batch(results) -> None:
            for path, status, message in results:
                if status == "failed":
                    bar.write(
                        f"annotator: skipped {show_path(Path(path).name)}: {message}",
                        file=sys.stderr,
                    )
            bar.update(len(results))

        report = embed_on_ray(
            paths,
            spec_from_args(args),
            address=args.ray or None,
            workers=args.ray_workers,
            cpus_per_worker=args.ray_cpus_per_worker,
            batch_size=args.ray_batch or DEFAULT_BATCH,
            on_batch=on_batch,
            note=lambda line: bar.write(line, file=sys.stderr),
        )
    print(report.summary(), file=sys.stderr)
    return 1 if report.failed else 0


def cmd_segment(args: argparse.Namespace) -> int:
    from annotator.io.masks import mask_box_xywh, mask_to_rle

    if not args.point and args.box is None:
        raise PromptError("give at least one --point X,Y or a --box X0,Y0,X1,Y1")
    if args.category is not None:  # checked before the model runs (annotator/names.py)
        from annotator.names import category_name

        category_name(args.category, "--category")
    if not args.image.is_file():
        raise AnnotatorError(f"{args.image}: no such image file")
    if args.top_k < 0:
        raise AnnotatorError(f"--top-k must be 0 (no labels) or more, not {args.top_k}")
    engine = make_engine(args, build_index=args.top_k > 0)  # --top-k 0: no text index at all
    if args.save is not None and project_exists(args.save) and args.top_k > 0:
        from annotator.app.exemplars import exemplars_from_project

        with open_project(args.save, create=False) as project:  # its accepted objects inform labels
            engine.exemplars = exemplars_from_project(project, engine.region_model_id)
    from annotator.cli.large import segment_large, wants_window

    if wants_window(args):  # a large TIFF, or --window: encoded region by region
        return segment_large(args, engine)
    embedding = engine.embed(args.image, clip=args.top_k > 0)  # --top-k 0: the mask half only
    multimask = {"auto": None, "on": True, "off": False}[args.multimask]
    proposal = engine.segment(
        embedding, args.point, args.box, top_k=args.top_k, multimask=multimask
    )
    rle = mask_to_rle(proposal.mask)
    result = {
        "image": str(args.image),
        "width": embedding.size[1],
        "height": embedding.size[0],
        "rle": rle,
        "bbox": [float(v) for v in mask_box_xywh(proposal.mask)],
        "area": int(proposal.mask.sum()),
        "score": round(float(proposal.score), 6),
        "labels": [
            {"name": s.name, "score": round(float(s.score), 6), "source": s.source}
            for s in proposal.suggestions
        ],
    }
    if args.save is not None:
        result["annotation_id"] = _save_proposal(args, engine, proposal)
    print(json.dumps(result))
    return 0


def _save_proposal(args, engine, proposal) -> int:
    prompts = {
        "points": [[x, y, int(bool(p))] for x, y, p in args.point],
        "box": list(args.box) if args.box else None,
    }
    category = args.category or (proposal.labels[0][0] if proposal.labels else None)
    vector = None if proposal.region is None else (engine.region_model_id, proposal.region)
    return save_mask(
        args.save, args.image, proposal.mask, category, float(proposal.score), prompts, vector
    )


def save_mask(
    project: Path,
    image: Path,
    mask: np.ndarray,
    category: str | None,
    score: float | None,
    prompts: dict | None,
    vector: tuple[str, np.ndarray] | None = None,
) -> int:
    """Store one accepted mask for `image` in `project` (one transaction); returns the annotation id.

    `vector`: (model id, the mask's unit CLIP vector), kept for `annotator similar`.
    This is the path of `annotator segment --save`, also driven by the kill -9 test.
    """
    from annotator.app.operations import accept_for_file, check_acceptable

    check_acceptable(mask, category)  # before opening: a refused mask creates no project file
    with open_project(project) as store:
        return accept_for_file(store, Path(image), mask, category, score, prompts, vector)
