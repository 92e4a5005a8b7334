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


def wants_window(args: argparse.Namespace) -> bool:
    from annotator.io.pyramid import is_large

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
    from annotator.io.pyramid import open_large

    with open_large(args.image) as image:  # level 0 only: no pyramid is built for a click
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


# ------------------------------------------------------------------------------------------ find
def find_large(args: argparse.Namespace, engine, settings) -> int:
    """`find` on a large image: the tile grid at full resolution, merged across borders
    (discovery/tiled.py); the same JSON as `find`, masks as full-image RLEs."""
    from annotator.app.working_window import input_side
    from annotator.discovery.find import Finder
    from annotator.discovery.tiled import FinderSource, propose_tiled
    from annotator.io.pyramid import open_large

    finder = Finder(engine, settings)
    source = FinderSource(engine, finder, args.threshold, args.top_k)
    tile = input_side(engine)
    with open_large(args.image) as image:  # the grid is at level 0: no pyramid built
        merged = propose_tiled(image, source, [args.query], tile=tile, overlap=tile // 4)
        height, width = image.height, image.width
    matches = []
    for p in merged[: args.top_k]:
        x, y, w, h = p.bbox()
        matches.append(
            {
                "rle": p.rle(height, width),
                "bbox": [x, y, w, h],
                "box": [x, y, x + w, y + h],
                "area": p.area,
                "score": round(p.score, 6),
            }
        )
    result = {
        "image": str(args.image),
        "width": width,
        "height": height,
        "query": args.query,
        "tiles": f"{tile} px, overlap {tile // 4}",
        "proposals": len(merged),
        "matches": matches,
    }
    print(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------------------- embed
TILES = ("all", "visible-default")


def add_embed_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("large images (tiled TIFF over 16 MP)")
    g.add_argument(
        "--level",
        type=int,
        metavar="N",
        help="pyramid level to embed (0 = full resolution; default: with --tiles "
        "visible-default the level the opened window shows, with --tiles all level 0)",
    )
    g.add_argument(
        "--tiles",
        choices=TILES,
        default="visible-default",
        help="all: every window of the level's tile grid; visible-default (default): the "
        "window the image opens on (the whole image at the fitting level)",
    )


def embed_windows(image, side: int, level: int | None, tiles: str) -> list:
    """The windows `embed --level --tiles` encodes, in level-0 pixels with their level."""
    from annotator.app.working_window import Window
    from annotator.discovery.tiled import tile_grid

    if level is None:
        fits = max(image.width, image.height) / side
        level = image.level_for(fits) if tiles == "visible-default" else 0
    if not 0 <= level < len(image.levels):
        raise AnnotatorError(f"--level {level}: the image has levels 0 to {len(image.levels) - 1}")
    lv = image.levels[level]

    def to_full(x0: int, y0: int, x1: int, y1: int) -> Window:
        s = lv.scale
        return Window(
            round(x0 * s), round(y0 * s), min(image.width, round(x1 * s)),
            min(image.height, round(y1 * s)), level,
        )  # fmt: skip

    if tiles == "all":
        return [to_full(*w.box) for w in tile_grid(lv.width, lv.height, side, side // 4)]
    w, h = min(side, lv.width), min(side, lv.height)
    x0, y0 = (lv.width - w) // 2, (lv.height - h) // 2
    return [to_full(x0, y0, x0 + w, y0 + h)]


def embed_large(engine, path: Path, level: int | None, tiles: str) -> tuple[int, int]:
    """Embed a large image's windows (both halves); returns (encoded now, already cached)."""
    from annotator.app.working_window import input_side, window_embedding, window_key
    from annotator.io.pyramid import open_large

    cache_root = engine.cache.root.parent if engine.cache is not None else None
    encoded = cached = 0
    with open_large(path, cache_root) as image:
        for window in embed_windows(image, input_side(engine), level, tiles):
            key = window_key(image, window)
            if engine.cache is not None and all(
                engine.cache.contains(kind, model, key)
                for kind, model in (("sam", engine.sam.identity), ("clip", engine.region_model_id))
            ):
                cached += 1
                continue
            window_embedding(engine, image, window)
            encoded += 1
    return encoded, cached
