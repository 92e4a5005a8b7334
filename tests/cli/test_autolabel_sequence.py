"""`annotator autolabel VIDEO --classes ...` (issue 25, the CPU path): the image autolabel's
proposals on the first frame, each followed through the video as a track with pending masks; a
second run of the same command stores nothing new; `--by sam3` is in tests/models/test_sam3_video.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotator.app.sequence_autolabel import mask_request
from annotator.cli import main
from annotator.store import Project
from annotator.store.tracks import TrackStore
from tests import clips, tiny_video
from tests.conftest import cli_flags


@pytest.fixture(scope="module")
def video_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sam2video") / "model"
    tiny_video.save("sam2", folder)
    return folder


def test_mask_request_prompts_inside_the_mask():
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[12:28, 12:28] = False  # a hole in the middle: the point must not fall there
    r = mask_request(3, 2, ring, "cup")
    ((x, y, positive),) = r.points
    assert positive and ring[int(y), int(x)]
    assert r.box == (5, 5, 34, 34) and (r.object_id, r.frame, r.category) == (3, 2, "cup")


def test_autolabel_a_video(video_model, engine_args, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    clip = clips.write_lossless(folder / "c.mkv", clips.frames(5))
    argv = [
        "autolabel", str(clip), "--classes", "dog,cat", "--threshold", "-1", "--top-k", "2",
        "--points-per-side", "4", "--segmenter", "sam2", "--checkpoint", str(video_model),
        "--cache-dir", str(tmp_path / "cache"), *cli_flags(engine_args)[2:],
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["by"] == "proposals" and summary["proposals"] >= 1
    objects = summary["objects"]
    assert len(objects) == summary["proposals"] and summary["frames"] == 5
    assert set(summary["classes"].values()) <= {"dog", "cat"}
    with Project.open_folder(folder) as p:
        store = TrackStore(p)
        (seq,) = store.sequences()
        tracks = store.tracks(seq.id)
        assert sorted(t.object_id for t in tracks) == objects
        first = {}
        for t in tracks:
            assert t.category == summary["classes"][str(t.object_id)]
            frames = store.track_proposals(t.id)
            assert frames and frames[0][0] == 0  # from the proposal frame on
            first[t.object_id] = len(frames)
        pending = summary["pending"]
        assert pending == sum(first.values())
    assert main(argv) == 0  # the same command again: the same tracks, nothing stored twice
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["objects"] == objects and again["stored"] == 0 and again["pending"] == pending


def test_bad_sequences_one_line_nothing_stored(tmp_path, capsys):
    """A corrupt or truncated video, an audio-only file, a frame outside the clip: exit 2, one
    line, no project made or nothing stored in it."""
    import av

    folder = tmp_path / "v"
    folder.mkdir()
    good = clips.write_video(folder / "good.mp4", clips.frames(20))
    truncated = folder / "cut.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt = folder / "noise.mkv"
    corrupt.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)))
    audio = folder / "audio.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    cases = {
        truncated: "cut.mp4",
        corrupt: "noise.mkv",
        audio: "no video stream",
    }
    for path, words in cases.items():
        assert (
            main(["autolabel", str(path), "--classes", "dog", "--save", str(tmp_path / "p")]) == 2
        )
        err = capsys.readouterr().err.strip()
        assert err.startswith("annotator: error: ") and "\n" not in err and words in err, err
    assert not (tmp_path / "p").exists()  # nothing made before the input was read
    argv = [
        "autolabel",
        str(good),
        "--classes",
        "dog",
        "--frame",
        "40",
        "--save",
        str(tmp_path / "p"),
    ]
    assert main(argv) == 2
    assert "outside" in capsys.readouterr().err
    assert not (tmp_path / "p" / ".annotator").exists()
    mixed = clips.write_folder(tmp_path / "frames", clips.frames(3))
    from PIL import Image

    Image.fromarray(clips.frames(1, 40, 40)[0]).save(mixed / "f3.png")
    argv = [
        "autolabel",
        str(mixed),
        "--sequence",
        "--classes",
        "dog",
        "--save",
        str(tmp_path / "p"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "mixed frame sizes" in err and "\n" not in err
    assert not (tmp_path / "p").exists()
