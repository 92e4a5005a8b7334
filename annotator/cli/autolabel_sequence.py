"""`annotator autolabel SEQUENCE --classes ...` on a video file (or a frame folder with
`--sequence`): proposals on `--frame` (default 0), each followed through the sequence as a track
with pending masks (app/sequence_autolabel.py); `--by sam3`: SAM 3 video tracks every instance of
each class (models/sam3_video.py). The project is `--save PROJECT`, by default the video's folder.
Prints one JSON summary; a killed run resumes with the same command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from annotator.cli.flags import INTERRUPTED, open_project, spec_from_args
from annotator.errors import AnnotatorError


def is_sequence_target(args: argparse.Namespace) -> bool:
    from annotator.io.sequences import is_video

    return bool(args.sequence) or (Path(args.target).is_file() and is_video(args.target))


def run_autolabel_sequence(
    args: argparse.Namespace, classes: list[str], by: str, make_labeler
) -> int:
    """`make_labeler(args, by)`: cli/autolabel.py's (passed in: no import cycle)."""
    from annotator.app.sequence_autolabel import autolabel_sequence
    from annotator.cache import default_cache_dir
    from annotator.cli.track import _bar
    from annotator.io.sequences import open_sequence
    from annotator.models.hf_segmenter import resolve_device

    source = Path(args.target)
    where = args.save or (source.parent if source.is_file() else source)
    spec = spec_from_args(args)
    state_dir = (spec.cache_dir or default_cache_dir()) / "tracking"
    with open_sequence(source) as sequence:
        if not 0 <= args.frame < len(sequence):
            raise AnnotatorError(f"--frame {args.frame} is outside the {len(sequence)} frames")
        project = open_project(where, create=True)
        bar = _bar(len(sequence))
        try:
            if by == "sam3":
                from annotator.app.sequence_sam3 import autolabel_sequence_sam3
                from annotator.models.sam3_video import Sam3VideoTracker

                tracker = Sam3VideoTracker.load(args.sam3_model, resolve_device(args.device))
                summary = autolabel_sequence_sam3(
                    project, sequence, tracker, classes, args.frame,
                    threshold=args.threshold,
                    progress=bar,
                )  # fmt: skip
            else:
                from annotator.models.trackers import load_tracker

                labeler = make_labeler(args, by)
                device = str(resolve_device(spec.device))
                tracker = load_tracker(spec.checkpoint, spec.segmenter, device)
                summary = autolabel_sequence(
                    project, sequence, labeler, tracker, classes, state_dir, args.frame,
                    progress=bar,
                )  # fmt: skip
        except KeyboardInterrupt:
            print("annotator: interrupted; the stored frames are kept", file=sys.stderr)
            return INTERRUPTED
        finally:
            bar.close()
            project.close()
    summary["by"] = by
    print(json.dumps(summary))
    return 0
