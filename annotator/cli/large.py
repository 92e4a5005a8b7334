"""`annotator segment` on a very large image (or with `--window`): one click answered in a working
window, printed (and saved) at full-image coordinates. See app/working_window.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from annotator.errors import AnnotatorError


def window_flag(text: str) -> tuple[int, int, int, int]:
    """`--window X0,Y0,X1,Y1` in full-image pixels (integers, x1 > x0, y1 > y0)."""
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a window is four integers X0,Y0,X1,Y1, not {text!r}"
        ) from None
    if x1 <= x0 or y1 <= y0:
        raise argparse.ArgumentTypeError(f"the window {text!r} has no area (need X1>X0, Y1>Y0)")
    return x0, y0, x1, y1


def add_window_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--window",
        type=window_flag,
        metavar="X0,Y0,X1,Y1",
        help="the region to encode, in full-image pixels (large images; default: a window of "
        "the model's input size centred on the prompts, at full resolution)",
    )


def is_large(path: Path) -> bool:
    """A TIFF over `io/tiles.LARGE_PIXELS`: segmented in a window, proposed on a tile grid."""
    from annotator.io.tiles import LARGE_PIXELS, TiledImage, is_tiff

    if not is_tiff(path):
        return False
    with TiledImage(path) as image:
        return image.width * image.height > LARGE_PIXELS


def wants_window(args: argparse.Namespace) -> bool:
    return getattr(args, "window", None) is not None or is_large(args.image)


def segment_large(args: argparse.Namespace, engine) -> int:
    """`segment` in a working window; the JSON has the same fields, the RLE at full resolution,
    plus the window that was encoded."""
    from annotator.app.working_window import (
        Window,
        default_window,
        input_side,
        segment_in_window,
    )
    from annotator.cache import default_cache_dir
    from annotator.io.pyramid import open_large

    cache_root = engine.cache.root.parent if engine.cache is not None else default_cache_dir()
    with open_large(args.image, cache_root) as image:
        if args.window is not None:
            window = Window(*args.window)
        else:
            side = input_side(engine)
            window = default_window(args.point, args.box, side, image.width, image.height)
        multimask = {"auto": None, "on": True, "off": False}[args.multimask]
        answer = segment_in_window(
            engine, image, window, args.point, args.box, top_k=args.top_k, multimask=multimask
        )
    proposal = answer.proposal
    rle = answer.rle()
    w = answer.window
    result = {
        "image": str(args.image),
        "width": answer.image_size[1],
        "height": answer.image_size[0],
        "window": [w.x0, w.y0, w.x1, w.y1],
        "rle": rle,
        "bbox": list(answer.bbox()),
        "area": answer.area(),
        "score": round(float(proposal.score), 6),
        "labels": [
            {"name": s.name, "score": round(float(s.score), 6), "source": s.source}
            for s in proposal.suggestions
        ],
    }
    if args.save is not None:
        result["annotation_id"] = _save(args, engine, answer, rle)
    print(json.dumps(result))
    return 0


def _save(args: argparse.Namespace, engine, answer, rle: dict) -> int:
    """Store the full-resolution RLE without ever decoding it (a 20k x 20k mask is 400 MB)."""
    from annotator.app.operations import check_acceptable
    from annotator.cli.flags import open_project
    from annotator.store.embeddings import ANNOTATION, EmbeddingTable

    proposal = answer.proposal
    category = args.category or (proposal.labels[0][0] if proposal.labels else None)
    check_acceptable(proposal.mask, category)
    prompts = {
        "points": [[x, y, int(bool(p))] for x, y, p in args.point],
        "box": list(args.box) if args.box else None,
        "window": list(answer.window.box),
    }
    height, width = answer.image_size
    with open_project(args.save) as store, store.transaction():
        image_id = store.add_image_file(Path(args.image), width, height)
        ann_id = store.add_annotation_rle(
            image_id, rle, str(category), float(proposal.score), prompts
        )
        if proposal.region is not None:
            EmbeddingTable(store).put(ANNOTATION, ann_id, engine.region_model_id, proposal.region)
    if not ann_id:
        raise AnnotatorError("the mask could not be saved")
    return ann_id
