"""One tracking job: a sequence in a project, objects prompted on frames, masks stored as pending.

Shared by `annotator track` and the window. The tracker (models/tracking.py `VideoTracker` or
models/box_carry.py `BoxCarryTracker`) is passed in, so this layer imports no model.

An object's prompts live with its track (`tracks.prompts`, absolute frame indices): a new prompt on
a frame replaces that object's prompt on that frame, and the object is tracked again from all of
its prompts (a correction click on a middle frame becomes a second conditioning frame). The run is
named by a key over the model identity, the sequence, the frame range, the direction and the
prompts; its masks replace the pending masks of earlier runs of the same tracks. Each frame's masks
and done mark are one transaction; every `CHECKPOINT_EVERY` stored frames the tracker's memory is
saved next to the cache, so a killed run, started again with the same command, restores the memory
and goes on after the last checkpoint, skipping (not duplicating) the frames already stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotator.errors import PromptError
from annotator.io.sequences import Sequence
from annotator.store.project import Project
from annotator.store.proposals import PENDING, run_key
from annotator.store.tracks import TrackStore
from annotator.track_prompts import ObjectPrompt

CHECKPOINT_EVERY = 8
DEFAULT_CATEGORY = "object"
TOP_K = 5

Labeller = Callable[[np.ndarray, np.ndarray], list[tuple[str, float]]]
"""(RGB frame, bool mask) -> the best labels as (name, score), best first: the CLIP region head
and text index a click uses (built by the caller; this layer imports no model)."""


@dataclass
class ObjectRequest:
    """One `--object` group: clicks ((x, y, positive) each) and/or a box on a frame."""

    object_id: int
    frame: int
    points: list[tuple[float, float, bool]] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    category: str | None = None

    def prompt(self) -> ObjectPrompt:
        points = labels = None
        if self.points:
            points = np.array([(x, y) for x, y, _ in self.points], dtype=np.float64)
            labels = np.array([1 if positive else 0 for *_, positive in self.points])
        box = None if self.box is None else np.asarray(self.box, dtype=np.float64)
        if points is None and box is None:
            raise PromptError(f"object {self.object_id}: give --point or --box on --frame")
        return ObjectPrompt(self.object_id, self.frame, points, labels, box)


def parse_range(text: str | None, count: int) -> tuple[int, int]:
    """`A:B` (either side may be empty) -> frames A..B-1 within 0..count."""
    if not text:
        return 0, count
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        lo = int(parts[0]) if parts[0].strip() else 0
        hi = int(parts[1]) if parts[1].strip() else count
    except ValueError:
        raise PromptError(f"--frames is A:B (e.g. 0:100), not {text!r}") from None
    lo, hi = max(0, lo), min(count, hi)
    if lo >= hi:
        raise PromptError(f"--frames {text} holds no frame of the {count}")
    return lo, hi


def check_requests(
    requests: list[ObjectRequest], count: int, frames: str | None
) -> tuple[int, int]:
    """The frame range, after checking every request lies in it and has a prompt (before any
    model is loaded or anything stored)."""
    if not requests:
        raise PromptError("give at least one --point or --box on a --frame")
    lo, hi = parse_range(frames, count)
    for r in requests:
        if not lo <= r.frame < hi:
            raise PromptError(f"--frame {r.frame} is outside the tracked frames {lo}:{hi}")
        r.prompt()
    return lo, hi


def run_track(
    project: Project,
    sequence: Sequence,
    tracker,
    requests: list[ObjectRequest],
    state_dir: Path,
    direction: str = "forward",
    frames: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    labeller: Labeller | None = None,
) -> dict:
    """Track the requested objects and store their masks as pending; returns the JSON summary.
    With `labeller`, an object without a category (none asked now or before) is labelled from
    its mask on its prompt frame once its masks are stored: the best label becomes the track's
    and its pending masks' category, the top 5 go in the summary's `labels`."""
    started = time.perf_counter()
    lo, hi = check_requests(requests, len(sequence), frames)
    new = {(r.object_id, r.frame): r.prompt() for r in requests}  # the last group of a pair wins
    store = TrackStore(project)
    with project.transaction():
        sequence_id = store.add_sequence(sequence)
        frame_ids = store.frame_images(sequence_id)
        tracks: dict[int, int] = {}
        categories: dict[int, str] = {}
        unlabelled: dict[int, int] = {}  # object -> its prompt frame (absolute)
        prompts: list[ObjectPrompt] = []
        for object_id in sorted({r.object_id for r in requests}):
            old = store.track_by_object(sequence_id, object_id)
            saved = dict(old.prompts) if old else {}
            for (o, f), prompt in new.items():
                if o == object_id:
                    saved[str(f)] = prompt.to_json()
            asked = [r.category for r in requests if r.object_id == object_id and r.category]
            category = asked[-1] if asked else (old.category if old else DEFAULT_CATEGORY)
            if not asked and category == DEFAULT_CATEGORY:
                unlabelled[object_id] = min(r.frame for r in requests if r.object_id == object_id)
            tracks[object_id] = store.set_track(sequence_id, object_id, category, saved)
            categories[object_id] = " ".join(category.split())
            for f, data in sorted(saved.items(), key=lambda kv: int(kv[0])):
                if lo <= int(f) < hi:
                    prompts.append(ObjectPrompt.from_json(object_id, int(f) - lo, data))
    run = run_key(
        {
            "model": tracker.identity,
            "sequence": store.sequence(sequence_id).source,
            "frames": [lo, hi],
            "direction": direction,
            "prompts": {
                str(o): store.track_by_object(sequence_id, o).prompts for o in sorted(tracks)
            },
        }
    )
    store.drop_pending(tracks.values(), run)
    done = store.done_frames(run, sequence_id)
    state_path = Path(state_dir) / f"track-{run}.pt"
    state = tracker.load_state(state_path) if done and state_path.is_file() else None
    computed = stored = 0
    total = hi - lo
    for result in tracker.track(
        total, sequence.size, lambda i: sequence.frame(lo + i), prompts, direction, state
    ):
        computed += 1
        index = lo + result.frame
        if index not in done:
            masks = [
                (tracks[o], categories[o], result.masks[o], result.scores[o])
                for o in sorted(result.masks)
            ]
            if store.store_frame(run, frame_ids[index], index, masks) is not None:
                stored += 1
                done.add(index)
                if stored % CHECKPOINT_EVERY == 0:
                    tracker.save_state(state_path, tracker.checkpoint())
        if progress is not None:
            progress(len(done), total)
        if cancelled is not None and cancelled():
            tracker.save_state(state_path, tracker.checkpoint())
            break
    else:
        state_path.unlink(missing_ok=True)
    labels = {}
    if labeller is not None:
        labels = label_tracks(store, sequence, sequence_id, tracks, unlabelled, labeller)
    seconds = time.perf_counter() - started
    pending = sum(len(store.track_proposals(t, PENDING)) for t in tracks.values())
    return {
        "sequence": sequence_id,
        "source": store.sequence(sequence_id).source,
        "frames": len(done),
        "objects": sorted(tracks),
        "tracks": {str(o): t for o, t in sorted(tracks.items())},
        "categories": {str(t.object_id): t.category for t in store.tracks(sequence_id)},
        "labels": labels,
        "pending": pending,
        "stored": stored,
        "mode": getattr(tracker, "mode", "video-memory"),
        "seconds": round(seconds, 3),
        "frames_per_second": round(computed / seconds, 3) if seconds > 0 else None,
    }


def label_tracks(
    store: TrackStore,
    sequence: Sequence,
    sequence_id: int,
    tracks: dict[int, int],
    unlabelled: dict[int, int],
    labeller: Labeller,
) -> dict[str, list[list]]:
    """Label each unlabelled object from its stored mask on its prompt frame (none there: the
    object was lost at once, it keeps its category); the best label becomes the track's category
    and its pending masks', in one transaction per object. {object: [[name, score]...]}."""
    out: dict[str, list[list]] = {}
    for object_id, frame in sorted(unlabelled.items()):
        track_id = tracks[object_id]
        found = [pid for f, pid in store.track_proposals(track_id, None) if f == frame]
        if not found:
            continue
        mask = store.proposals.get(found[-1]).mask()
        ranked = labeller(sequence.frame(frame), mask)[:TOP_K]
        if not ranked:
            continue
        best = ranked[0][0]
        track = store.track_by_object(sequence_id, object_id)
        with store.project.transaction():
            store.set_track(sequence_id, object_id, best, track.prompts if track else {})
            for _, pid in store.track_proposals(track_id, PENDING):
                store.proposals.set_category(pid, best)
        out[str(object_id)] = [[name, round(float(score), 4)] for name, score in ranked]
    return out


__all__ = [
    "CHECKPOINT_EVERY",
    "Labeller",
    "ObjectRequest",
    "check_requests",
    "label_tracks",
    "parse_range",
    "run_track",
]
