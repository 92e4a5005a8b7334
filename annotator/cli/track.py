"""`annotator track`: follow objects through a video or a folder of frames, masks stored as pending.

    annotator track SOURCE --frame N (--point X,Y[,0|1])... [--box X0,Y0,X1,Y1] [--object ID]
                    [--category NAME] [--direction forward|backward|both] [--frames A:B]
                    --save PROJECT [MODEL FLAGS]

Several `--object ID` groups track several objects together: `--frame`, `--point`, `--box` and
`--category` belong to the group of the last `--object` before them (flags before the first
`--object` form object 1's group); a group without `--frame` takes the previous group's.
An object without `--category` is labelled from the vocabulary by the CLIP region head on its mask
on the prompt frame (the head a click uses): the best label is its category, the top 5 are in the
summary's `labels`. Without CLIP weights (none given, none cached) it stays "object" (a note says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from annotator.cli.flags import _box, _point, open_project, project_location, spec_from_args
from annotator.errors import AnnotatorError


class _Group(argparse.Action):
    """Appends to the current `--object` group (a list of dicts in `namespace.groups`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        groups = getattr(namespace, "groups", None)
        if groups is None:
            groups = []
            namespace.groups = groups
        fresh = bool(groups) and groups[-1]["object"] is None and not groups[-1]["points"]
        fresh = fresh and groups[-1]["box"] is None
        if option_string == "--object" and fresh:  # `--frame N --object 1 ...`: one group
            groups[-1]["object"] = values
            return
        if option_string == "--object" or not groups:
            previous = groups[-1]["frame"] if groups else None
            groups.append({"object": None, "frame": previous, "points": [], "box": None})
            if option_string == "--object":
                groups[-1]["object"] = values
                return
        group = groups[-1]
        if option_string == "--point":
            group["points"].append(values)
        elif option_string == "--box":
            group["box"] = values
        elif option_string == "--frame":
            group["frame"] = values
        elif option_string == "--category":
            group["category"] = values


def register(sub, models: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "track",
        parents=[models],
        help="follow objects through a video or frame folder; masks stored as pending",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source", type=Path, help="a video file (mp4, mov, mkv, avi, webm) or a frame folder"
    )
    p.add_argument("--frame", type=int, action=_Group, metavar="N", help="the frame of the prompts")
    p.add_argument(
        "--point", type=_point, action=_Group, metavar="X,Y[,0|1]", help="a click; repeatable"
    )
    p.add_argument("--box", type=_box, action=_Group, metavar="X0,Y0,X1,Y1", help="a box")
    p.add_argument(
        "--object", type=int, action=_Group, metavar="ID", help="starts an object's group"
    )
    p.add_argument("--category", action=_Group, metavar="NAME", help="the object's category")
    p.add_argument(
        "--direction",
        choices=("forward", "backward", "both"),
        default="forward",
        help="from the prompted frames: forward (default), backward or both",
    )
    p.add_argument("--frames", metavar="A:B", help="track frames A..B-1 only (default: all)")
    p.add_argument(
        "--save",
        type=project_location,
        required=True,
        metavar="PROJECT",
        help="the project that gets the sequence and the pending masks",
    )
    p.set_defaults(handler=cmd_track, groups=None)


def _requests(args: argparse.Namespace):
    from annotator.app.tracking import ObjectRequest

    out = []
    for i, g in enumerate(args.groups or []):
        object_id = g["object"] if g["object"] is not None else 1
        if g["frame"] is None:
            raise AnnotatorError(f"object {object_id}: say on which frame with --frame N")
        if not g["points"] and g["box"] is None:
            raise AnnotatorError(f"object {object_id}: give --point or --box (group {i + 1})")
        out.append(
            ObjectRequest(object_id, g["frame"], list(g["points"]), g["box"], g.get("category"))
        )
    if not out:
        raise AnnotatorError("give --frame N and at least one --point or --box")
    return out


def cmd_track(args: argparse.Namespace) -> int:
    from annotator.app.tracking import check_requests, run_track
    from annotator.cache import default_cache_dir
    from annotator.io.sequences import open_sequence
    from annotator.models.hf_segmenter import resolve_device
    from annotator.models.trackers import load_tracker

    requests = _requests(args)
    spec = spec_from_args(args)
    with open_sequence(args.source) as sequence:
        check_requests(requests, len(sequence), args.frames)
        project = open_project(args.save)
        try:
            device = str(resolve_device(spec.device))
            tracker = load_tracker(spec.checkpoint, spec.segmenter, device)
            if getattr(tracker, "mode", "") == "box-carry":
                print(
                    f"annotator: note: {tracker.family} has no video memory here; each frame is "
                    "prompted with the previous frame's mask box",
                    file=sys.stderr,
                )
            labeller = None
            if any(not r.category for r in requests):
                labeller = _labeller(spec, device)
            state_dir = (spec.cache_dir or default_cache_dir()) / "tracking"
            bar = _bar(len(sequence))
            try:
                summary = run_track(
                    project,
                    sequence,
                    tracker,
                    requests,
                    state_dir,
                    args.direction,
                    args.frames,
                    progress=bar,
                    labeller=labeller,
                )
            finally:
                bar.close()
        finally:
            project.close()
    print(json.dumps(summary))
    return 0


def _labeller(spec, device: str):
    """The click's labelling for a track's prompt-frame mask: the CLIP region head over the frame
    and the vocabulary's text index (built or read from the cache), exemplars as the engine has
    none here. None (with a note) when no CLIP was named and the default's weights are not on
    this machine (the weights cache, or open_clip's download cache)."""
    from annotator.app.tracking import TOP_K
    from annotator.cache import check_cache_root, default_cache_dir
    from annotator.engine import Engine, load_region_model
    from annotator.index_build import text_index
    from annotator.models.clip import DEFAULT_CLIP_MODEL

    if spec.clip_weights is None and spec.clip_config is None and spec.clip_model is None:
        local = _local_default_clip()
        if local is None:  # never a download (or minutes of retries offline) just to label
            print(
                "annotator: note: objects without --category stay 'object': no CLIP weights "
                "here (give --clip-weights, or `annotator weights download`)",
                file=sys.stderr,
            )
            return None
        spec = spec.replace(clip_model=DEFAULT_CLIP_MODEL, clip_weights=local)
    clip, head = load_region_model(spec, device)
    root = check_cache_root(Path(spec.cache_dir) if spec.cache_dir else default_cache_dir())
    index = text_index(spec.vocabulary, clip, root / "text")
    index.build()
    engine = Engine(None, clip, head, index, device=device)

    def label(frame, mask):
        return engine.topk(head.embed(head.prepare(frame), mask), TOP_K)

    return label


def _local_default_clip() -> Path | None:
    """The default CLIP's weights file if this machine has it, without asking the network."""
    from annotator.models import weights

    if weights.is_cached(weights.DEFAULT_CLIP):
        return weights.cached_path(weights.DEFAULT_CLIP)
    try:
        import open_clip
        from huggingface_hub import try_to_load_from_cache

        from annotator.models.clip import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

        repo = open_clip.get_pretrained_cfg(DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED)["hf_hub"]
        for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo.rstrip("/"), name)
            if isinstance(found, str):
                return Path(found)
    except (ImportError, KeyError, TypeError, ValueError):
        pass
    return None


class _bar:
    """A tqdm bar on stderr (frames/s and ETA), moved by `run_track`'s progress."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.tqdm = tqdm(total=total, desc="tracking", unit="frame", file=sys.stderr)

    def __call__(self, done: int, total: int) -> None:
        self.tqdm.total = total
        self.tqdm.update(done - self.tqdm.n)

    def close(self) -> None:
        self.tqdm.close()
