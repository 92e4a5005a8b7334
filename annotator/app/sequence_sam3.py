"""`autolabel SEQUENCE --by sam3` (issue 25): SAM 3 video finds every instance of each class from
`frame` on and keeps its id across frames (models/sam3_video.py); each SAM 3 object becomes a
track (object id = SAM 3's id + 1, category = the class whose prompt found it) and every frame's
masks are stored pending in one transaction with the frame's done mark, scored by SAM 3's
detection score. SAM 3's state cannot be saved, so a rerun of the same run recomputes from
`frame` and stores only the frames not yet stored (deterministic: the same ids and masks).
Headless; the tracker is passed in."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from annotator.errors import AnnotatorError, PromptError
from annotator.io.sequences import Sequence as FrameSequence
from annotator.store.project import Project
from annotator.store.proposals import PENDING, run_key
from annotator.store.tracks import TrackStore


def autolabel_sequence_sam3(
    project: Project,
    sequence: FrameSequence,
    tracker,
    classes: Sequence[str],
    frame: int = 0,
    threshold: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Every instance of `classes` from `frame` on as tracks with pending masks; the summary.
    `threshold`: masks scoring below it are not stored (None: the model's own thresholds)."""
    classes = list(classes)
    if not classes:
        raise AnnotatorError("no classes to label: give --classes NAME,NAME")
    if not 0 <= frame < len(sequence):
        raise PromptError(f"--frame {frame} is outside the sequence's {len(sequence)} frames")
    started = time.perf_counter()
    store = TrackStore(project)
    with project.transaction():
        sequence_id = store.add_sequence(sequence)
    frame_ids = store.frame_images(sequence_id)
    source = store.sequence(sequence_id).source
    settings = {"frame": frame, "classes": classes, "threshold": threshold}
    run = run_key({"model": tracker.identity, "sequence": source, **settings})
    done = store.done_frames(run, sequence_id)
    tracks: dict[int, int] = {}  # object id -> track id
    categories: dict[int, str] = {}
    computed = stored = 0
    for result in tracker.track(len(sequence), sequence.frame, classes, start=frame):
        computed += 1
        masks = []
        for sam3_id, mask in sorted(result.masks.items()):
            score = result.scores[sam3_id]
            if threshold is not None and score < threshold:
                continue
            object_id = sam3_id + 1
            if object_id not in tracks:
                category = result.prompts.get(sam3_id) or classes[0]
                prompt = {str(frame): {"sam3": category, **settings}}
                tracks[object_id] = store.set_track(sequence_id, object_id, category, prompt)
                categories[object_id] = store.track_by_object(sequence_id, object_id).category
                store.drop_pending([tracks[object_id]], run)
            masks.append((tracks[object_id], categories[object_id], mask, score))
        if result.frame not in done:
            if store.store_frame(run, frame_ids[result.frame], result.frame, masks) is not None:
                stored += 1
            done.add(result.frame)
        if progress is not None:
            progress(len(done), len(sequence) - frame)
    seconds = time.perf_counter() - started
    return {
        "sequence": sequence_id,
        "source": source,
        "frames": len(done),
        "objects": sorted(tracks),
        "classes": {str(o): categories[o] for o in sorted(tracks)},
        "tracks": {str(o): t for o, t in sorted(tracks.items())},
        "pending": sum(len(store.track_proposals(t, PENDING)) for t in tracks.values()),
        "stored": stored,
        "mode": "sam3-video",
        "seconds": round(seconds, 3),
        "frames_per_second": round(computed / seconds, 3) if seconds > 0 else None,
    }


__all__ = ["autolabel_sequence_sam3"]
