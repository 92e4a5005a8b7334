"""SAM 3 video (`autolabel SEQUENCE --by sam3`) with a tiny random `Sam3VideoModel` built with
the transformers classes (tests/tiny_sam3.py): our streamed driver (frames decoded one by one,
old frames dropped from the session) equals the reference pipeline (`init_video_session(video=...)`
-> `add_text_prompt` -> `propagate_in_video_iterator` -> `postprocess_outputs`) on every frame,
and the CLI stores every instance as a track with pending masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from annotator.cli import main
from annotator.models.sam3_video import Sam3VideoTracker
from annotator.store import Project
from annotator.store.tracks import TrackStore
from tests import clips
from tests.tiny_sam3 import make_tiny_sam3_video

FRAMES = 5  # past the tracker's memory window (num_maskmem 2 + 1): frames are dropped


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_sam3_video(tmp_path_factory.mktemp("sam3video") / "model")


@pytest.fixture(scope="module")
def frames():
    return clips.frames(FRAMES)


def _reference(folder, frames, prompts):
    from transformers import Sam3VideoModel, Sam3VideoProcessor

    model = Sam3VideoModel.from_pretrained(folder).eval()
    processor = Sam3VideoProcessor.from_pretrained(folder)
    session = processor.init_video_session(video=list(frames), inference_device="cpu")
    processor.add_text_prompt(session, prompts)
    out = {}
    with torch.inference_mode():
        for o in model.propagate_in_video_iterator(session):
            post = processor.postprocess_outputs(session, o)
            masks = post["masks"].numpy().astype(bool)
            ids = post["object_ids"].tolist()
            out[o.frame_idx] = {i: (masks[k], float(post["scores"][k])) for k, i in enumerate(ids)}
    return out


@pytest.mark.slow
def test_streamed_equals_the_reference(folder, frames):
    prompts = ["dog", "cat"]
    expected = _reference(folder, frames, prompts)
    tracker = Sam3VideoTracker.load(folder)
    got = {r.frame: r for r in tracker.track(FRAMES, lambda i: frames[i], prompts)}
    assert sorted(got) == sorted(expected) == list(range(FRAMES))
    assert sum(len(v) for v in expected.values()) > 0  # something to compare
    assert any(m.any() and not m.all() for v in expected.values() for m, _ in v.values())
    for f in range(FRAMES):
        assert sorted(got[f].masks) == sorted(expected[f]), f
        for o, (mask, score) in expected[f].items():
            assert np.array_equal(got[f].masks[o], mask), (f, o)
            assert got[f].scores[o] == pytest.approx(score, abs=1e-5)
            assert got[f].prompts[o] in prompts
    held = tracker.session.processed_frames  # frames before the memory window were dropped
    assert 0 not in held and len(held) <= 4


@pytest.mark.slow
def test_autolabel_by_sam3_stores_tracks(folder, frames, tmp_path, capsys):
    videos = tmp_path / "v"
    videos.mkdir()
    clip = clips.write_lossless(videos / "c.mkv", frames[:3])
    argv = ["autolabel", str(clip), "--classes", "dog,cat", "--by", "sam3",
            "--sam3-model", str(folder), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["by"] == "sam3" and summary["frames"] == 3 and summary["pending"] > 0
    with Project.open_folder(videos) as p:
        store = TrackStore(p)
        tracks = store.tracks()
        assert len(tracks) == len(summary["objects"]) > 0
        assert {t.category for t in tracks} <= {"dog", "cat"}
        total = sum(len(store.track_proposals(t.id)) for t in tracks)
        assert total == summary["pending"]
    assert main(argv) == 0  # again: nothing stored twice
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["stored"] == 0 and again["pending"] == summary["pending"]
