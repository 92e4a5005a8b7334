"""`annotator track` without `--category`: the object is labelled from the vocabulary by the CLIP
region head on its prompt-frame mask (the labelling a click gets), top 5 in the JSON summary,
the best as the track's and its pending masks' category; an object with `--category` keeps it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotator.cli import main
from annotator.io.sequences import open_sequence
from annotator.store import Project
from annotator.store.tracks import TrackStore
from tests import clips, tiny_video
from tests.conftest import cli_flags


@pytest.fixture(scope="module")
def video_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sam2video") / "model"
    tiny_video.save("sam2", folder)
    return folder


def test_unnamed_object_gets_the_click_labels(video_model, engine_args, engine, tmp_path, capsys):
    clip = clips.write_lossless(tmp_path / "c.mkv", clips.frames(5))
    project = tmp_path / "p"
    project.mkdir()
    flags = cli_flags(engine_args)
    flags = flags[2:]  # the CLIP and vocabulary flags; the segmenter is the video model
    argv = [
        "track", str(clip), "--object", "1", "--frame", "1", "--point", "35,38",
        "--object", "2", "--frame", "0", "--point", "90,24", "--category", "cup",
        "--save", str(project), "--segmenter", "sam2", "--checkpoint", str(video_model),
        "--cache-dir", str(tmp_path / "cache"), *flags,
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    vocabulary = {"dog", "cat", "car", "person", "bird", "tree", "house", "boat", "horse", "chair"}
    labels = summary["labels"]
    assert list(labels) == ["1"] and len(labels["1"]) == 5
    assert {name for name, _ in labels["1"]} <= vocabulary
    scores = [s for _, s in labels["1"]]
    assert scores == sorted(scores, reverse=True)
    best = labels["1"][0][0]
    assert summary["categories"] == {"1": best, "2": "cup"}
    with Project.open_folder(project) as p:
        store = TrackStore(p)
        tracks = {t.object_id: t for t in store.tracks()}
        assert tracks[1].category == best and tracks[2].category == "cup"
        pending = store.track_proposals(tracks[1].id)
        assert pending and {store.proposals.get(pid).category for _, pid in pending} == {best}
        (mask,) = [store.proposals.get(pid).mask() for f, pid in pending if f == 1]
    assert mask.any() and not mask.all()
    with open_sequence(clip) as seq:
        frame = seq.frame(1)
    # the click's labelling of the same mask on the same frame (Engine.relabel)
    expected = engine.relabel(engine.embed(np.ascontiguousarray(frame)), mask)
    assert [n for n, _ in expected] == [n for n, _ in labels["1"]]
    assert np.allclose([s for _, s in expected], scores, atol=1e-4)
