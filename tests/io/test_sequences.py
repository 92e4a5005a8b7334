"""Sequences (annotator/io/sequences.py): videos and frame folders decoded on demand."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import SequenceError
from annotator.io import sequences
from annotator.io.sequences import FrameCache, open_sequence
from tests import clips


@pytest.fixture(scope="module")
def images():
    return clips.frames(12)


def test_lossless_video_random_and_sequential_access(tmp_path, images):
    path = clips.write_lossless(tmp_path / "a.mkv", images)
    with open_sequence(path) as seq:
        assert len(seq) == 12 and seq.size == (96, 128)
        assert seq.info.kind == "video" and seq.info.fps == pytest.approx(10.0)
        for i in (0, 7, 3, 4, 5, 11, 0):
            frame = seq.frame(i)
            assert not frame.flags.writeable
            np.testing.assert_array_equal(frame, images[i])
        assert [i for i, _ in seq.frames(9)] == [9, 10, 11]
        with pytest.raises(IndexError):
            seq.frame(12)


@pytest.mark.parametrize(
    "suffix,codec",
    [(".mp4", "libx264"), (".webm", "libvpx-vp9"), (".avi", "mpeg4"), (".mov", "mpeg4")],
)
def test_lossy_containers(tmp_path, images, suffix, codec):
    path = clips.write_video(tmp_path / f"clip{suffix}", images, codec=codec)
    with open_sequence(path) as seq:
        assert len(seq) == 12
        for i in (11, 2, 6):
            diff = np.abs(seq.frame(i).astype(int) - images[i]).mean()
            assert diff < 12, (suffix, i, diff)
        # frames are told apart (the discs move), not one frame repeated
        assert np.abs(seq.frame(0).astype(int) - seq.frame(11)).mean() > 2


def test_rotation_metadata_applied(tmp_path, images):
    path = clips.write_video(tmp_path / "r.mp4", images, rotation=90)
    with open_sequence(path) as seq:
        assert seq.size == (128, 96)
        frame = seq.frame(4)
        assert np.abs(frame.astype(int) - np.rot90(images[4], 1)).mean() < 8
        assert np.abs(frame.astype(int) - np.rot90(images[4], -1)).mean() > 20


def test_folder_natural_order(tmp_path, images):
    folder = clips.write_folder(
        tmp_path / "frames", images
    )  # f0 .. f11: natural, not f1 f10 f11 f2
    with open_sequence(folder) as seq:
        assert seq.info.kind == "folder" and len(seq) == 12
        assert seq.frame_name(2) == "f2.png" and seq.frame_name(10) == "f10.png"
        np.testing.assert_array_equal(seq.frame(10), images[10])


def test_frame_cache_is_bounded(tmp_path, images):
    path = clips.write_lossless(tmp_path / "a.mkv", images)
    cache = FrameCache(max_frames=3, max_bytes=10 << 20)
    with open_sequence(path, cache) as seq:
        for _ in seq.frames():
            assert len(cache) <= 3
        assert len(cache) == 3
    small = FrameCache(max_frames=100, max_bytes=2 * images[0].nbytes)
    with open_sequence(path, small) as seq:
        for _ in seq.frames():
            assert small.bytes <= 2 * images[0].nbytes
        assert len(small) == 2


def test_variable_frame_rate_kept_in_order(tmp_path, images):
    import av

    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.height, stream.width = images.shape[1:3]
        stream.pix_fmt = "bgr0"
        stream.codec_context.time_base = __import__("fractions").Fraction(1, 1000)
        t = 0
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = t, stream.codec_context.time_base
            t += 40 if i % 2 else 150
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with open_sequence(path) as seq:
        assert len(seq) == 12 and seq.info.variable_rate
        np.testing.assert_array_equal(seq.frame(7), images[7])


def _bad(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text and text
    return text


def test_bad_inputs_one_line(tmp_path, images, monkeypatch):
    good = clips.write_video(tmp_path / "good.mp4", clips.frames(30)).read_bytes()
    cases = {
        "truncated.mp4": good[: len(good) // 2],
        "corrupt.mp4": good[:48]
        + bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)),
        "empty.mp4": b"",
        "text.mkv": b"not a video at all\n" * 10,
    }
    for name, data in cases.items():
        with pytest.raises(SequenceError) as error:
            open_sequence(_bad(tmp_path, name, data))
        assert name in _one_line(error)
    with pytest.raises(SequenceError, match="not a video file"):
        open_sequence(_bad(tmp_path, "x.txt", b"hello"))
    with pytest.raises(SequenceError, match="not found"):
        open_sequence(tmp_path / "missing.mp4")


def test_audio_only_and_zero_frames(tmp_path):
    import av

    audio = tmp_path / "audio.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(SequenceError, match="no video stream") as error:
        open_sequence(audio)
    _one_line(error)
    empty = tmp_path / "zero.mkv"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.height, stream.width, stream.pix_fmt = 32, 32, "bgr0"
        container.start_encoding()
    with pytest.raises(SequenceError, match="0 frames|no video stream|not a readable") as error:
        open_sequence(empty)
    _one_line(error)


def test_huge_frames_refused_from_header(tmp_path, images, monkeypatch):
    path = clips.write_video(tmp_path / "big.mp4", images)
    monkeypatch.setattr(sequences, "MAX_FRAME_PIXELS", 100 * 90)
    with pytest.raises(SequenceError, match="larger than") as error:
        open_sequence(path)
    _one_line(error)


def test_folder_mixed_sizes_and_empty(tmp_path, images):
    folder = clips.write_folder(tmp_path / "mixed", images[:3])
    from PIL import Image

    Image.fromarray(images[0][:50]).save(folder / "f3.png")
    with pytest.raises(SequenceError, match="mixed frame sizes") as error:
        open_sequence(folder)
    _one_line(error)
    (tmp_path / "none").mkdir()
    with pytest.raises(SequenceError, match="no image files"):
        open_sequence(tmp_path / "none")


@pytest.mark.parametrize("pix_fmt", ["gbrp10le", "yuv444p10le"])
def test_ten_bit_video_decodes_to_8_bit(tmp_path, images, pix_fmt):
    """A 10-bit video (FFV1 stores 10 bits per channel) decodes to 8-bit RGB frames close to the
    source (no wrap-around, no refusal); yuv444p10le also checks the colour conversion."""
    path = clips.write_video(tmp_path / f"ten-{pix_fmt}.mkv", images, codec="ffv1", pix_fmt=pix_fmt)
    import av

    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == pix_fmt
    with open_sequence(path) as seq:
        assert len(seq) == len(images)
        for f in (0, len(images) - 1):
            frame = seq.frame(f)
            assert frame.dtype == np.uint8 and frame.shape == images[f].shape
            diff = np.abs(frame.astype(int) - images[f].astype(int))
            assert diff.max() <= (1 if pix_fmt.startswith("gbrp") else 6), diff.max()
