"""Video files and folders of frames as sequences: frames decoded on demand, never all at once.

A sequence is `len(seq)` frames of one size; `seq.frame(i)` is frame i as a read-only RGB uint8
(H, W, 3) array, the upright picture (a video's rotation metadata applied). Frames come from a
bounded LRU `FrameCache` (a frame count and a byte budget), so memory does not grow with the
video's length; reading frames in order decodes each once.

Videos (mp4, mov, mkv, avi, webm, m4v) are decoded with PyAV (FFmpeg). Opening a video decodes it
once without converting the pixels (about 10x cheaper than decoding to RGB): that gives the exact
frame count and every frame's timestamp, and finds a truncated or corrupt stream before anything
is stored. Frame i is the i-th frame in presentation order; a variable frame rate is accepted
(frames keep their order; `info.variable_rate` says so and `fps` is the average). Random access
seeks to the keyframe before the wanted timestamp and decodes forward.

A folder of frames is its image files in natural order ("f2" before "f10"); every frame must have
the first frame's size (checked from the headers at open).

Bad input raises `SequenceError`, one line naming the file: no video stream (an audio-only file),
zero frames, truncated or corrupt data, frames larger than `MAX_FRAME_PIXELS`, mixed sizes.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.errors import ImageLoadError, SequenceError
from annotator.io.files import show_path
from annotator.io.images import image_size, list_images, load_image

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"})
MAX_FRAME_PIXELS = 40_000_000
"""Largest frame accepted (8K UHD is 33 MP); refused from the stream header, before decoding."""
MAX_FRAMES = 10_000_000
CACHE_FRAMES = 16
CACHE_BYTES = 256 << 20


@dataclass(frozen=True)
class SequenceInfo:
    """What a sequence is, known after `open_sequence` without decoding any pixels to RGB."""

    source: str  # the video file or the folder, as given
    kind: str  # "video" or "folder"
    frame_count: int
    width: int  # of the upright frames
    height: int
    fps: float | None  # average; None for a folder
    variable_rate: bool = False


class FrameCache:
    """Least-recently-used frames, bounded by a count and by bytes (at least one frame is kept)."""

    def __init__(self, max_frames: int = CACHE_FRAMES, max_bytes: int = CACHE_BYTES) -> None:
        self.max_frames = max(1, int(max_frames))
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, index: int) -> np.ndarray | None:
        frame = self._items.get(index)
        if frame is not None:
            self._items.move_to_end(index)
        return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        old = self._items.pop(index, None)
        if old is not None:
            self.bytes -= old.nbytes
        self._items[index] = frame
        self.bytes += frame.nbytes
        while len(self._items) > 1 and (
            len(self._items) > self.max_frames or self.bytes > self.max_bytes
        ):
            _, dropped = self._items.popitem(last=False)
            self.bytes -= dropped.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


class Sequence:
    """Frames 0..len-1 of one size, decoded on demand (subclasses say how)."""

    info: SequenceInfo

    def __init__(self, cache: FrameCache | None = None) -> None:
        self.cache = cache if cache is not None else FrameCache()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.info.frame_count

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every frame."""
        return self.info.height, self.info.width

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` as a read-only RGB uint8 (H, W, 3) array."""
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} is outside 0..{len(self) - 1}")
        with self._lock:
            frame = self.cache.get(index)
            if frame is None:
                frame = self._decode(index)
                frame.flags.writeable = False
                self.cache.put(index, frame)
            return frame

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) for start..stop-1 in order (each decoded once)."""
        stop = len(self) if stop is None else min(stop, len(self))
        for index in range(start, stop):
            yield index, self.frame(index)

    def frame_name(self, index: int) -> str:
        """A stable name for frame `index` (a file name for folders)."""
        raise NotImplementedError

    def _decode(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        self.cache.clear()

    def __enter__(self) -> Sequence:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FolderSequence(Sequence):
    """Image files of a folder in natural order, all of the first one's size."""

    def __init__(self, folder: Path, cache: FrameCache | None = None) -> None:
        super().__init__(cache)
        self.folder = folder
        name = show_path(folder)
        try:
            self.paths = list_images(folder)
        except ImageLoadError as error:
            raise SequenceError(str(error)) from None
        if not self.paths:
            raise SequenceError(f"{name}: no image files, so no frames")
        if len(self.paths) > MAX_FRAMES:
            raise SequenceError(f"{name}: {len(self.paths)} frames, more than {MAX_FRAMES}")
        sizes = []
        for path in self.paths:
            try:
                sizes.append(image_size(path, max_pixels=MAX_FRAME_PIXELS))
            except ImageLoadError as error:
                raise SequenceError(f"frame {len(sizes)} of {name}: {error}") from None
        first = sizes[0]
        for i, size in enumerate(sizes):
            if size != first:
                raise SequenceError(
                    f"{name}: mixed frame sizes ({show_path(self.paths[0].name)} is "
                    f"{first.width}x{first.height}, {show_path(self.paths[i].name)} is "
                    f"{size.width}x{size.height}); a sequence needs one size"
                )
        self.info = SequenceInfo(
            str(folder), "folder", len(self.paths), first.width, first.height, None
        )

    def frame_name(self, index: int) -> str:
        return self.paths[index].relative_to(self.folder).as_posix()

    def _decode(self, index: int) -> np.ndarray:
        try:
            frame = load_image(self.paths[index], max_pixels=MAX_FRAME_PIXELS)
        except ImageLoadError as error:
            raise SequenceError(f"frame {index}: {error}") from None
        if frame.shape[:2] != self.size:
            raise SequenceError(f"{show_path(self.paths[index])}: changed size since it was opened")
        return frame


def _rotation_steps(degrees: float) -> int:
    """Quarter turns counterclockwise that display a frame upright (PyAV's `frame.rotation` is the
    display matrix's counterclockwise angle); other angles are rounded to the nearest quarter."""
    return int(round(float(degrees) / 90.0)) % 4


class VideoSequence(Sequence):
    """A video file's first video stream, through PyAV."""

    def __init__(self, path: Path, cache: FrameCache | None = None) -> None:
        super().__init__(cache)
        self.path = path
        self.name = show_path(path)
        self._container = None
        self._decoder: Iterator | None = None
        self._next_index = -1  # the index the running decoder yields next
        self.pts: list[int] = []
        self.keyframes: list[int] = []
        self._rotation = 0
        self._scan()

    # ------------------------------------------------------------------------------- opening
    def _open(self):
        import av

        try:
            container = av.open(str(self.path), "r")
        except Exception as error:  # noqa: BLE001 - every FFmpeg error is the file's fault here
            raise SequenceError(
                f"{self.name}: not a readable video ({_first_line(error)})"
            ) from None
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            container.close()
            raise SequenceError(
                f"{self.name}: no video stream (holds {', '.join(kinds)}), so no frames"
            )
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return container, stream

    def _scan(self) -> None:
        """Decode once (no colour conversion): frame count, timestamps, keyframes, rotation."""
        container, stream = self._open()
        try:
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            if width * height > MAX_FRAME_PIXELS:
                raise SequenceError(
                    f"{self.name}: frames of {width}x{height} are larger than "
                    f"{MAX_FRAME_PIXELS // 1_000_000} MP"
                )
            stamps: list[tuple[int, bool]] = []
            rotation = None
            try:
                for frame in container.decode(stream):
                    if rotation is None:
                        rotation = getattr(frame, "rotation", 0) or 0
                        width, height = frame.width, frame.height
                    elif (frame.width, frame.height) != (width, height):
                        raise SequenceError(
                            f"{self.name}: frame {len(stamps)} changes size to "
                            f"{frame.width}x{frame.height}; a sequence needs one size"
                        )
                    pts = frame.pts if frame.pts is not None else len(stamps)
                    stamps.append((pts, bool(frame.key_frame)))
                    if len(stamps) > MAX_FRAMES:
                        raise SequenceError(f"{self.name}: more than {MAX_FRAMES} frames")
            except SequenceError:
                raise
            except Exception as error:  # noqa: BLE001 - FFmpeg decode errors
                raise SequenceError(
                    f"{self.name}: truncated or corrupt video after {len(stamps)} frames "
                    f"({_first_line(error)})"
                ) from None
            if not stamps:
                raise SequenceError(f"{self.name}: the video stream has 0 frames")
            order = sorted(range(len(stamps)), key=lambda i: stamps[i][0])
            self.pts = [stamps[i][0] for i in order]
            if len(set(self.pts)) != len(self.pts):
                raise SequenceError(f"{self.name}: two frames share a timestamp (corrupt stream)")
            self.keyframes = [p for p, key in stamps if key] or [self.pts[0]]
            self._rotation = _rotation_steps(rotation or 0)
            base = stream.time_base
            deltas = np.diff(np.asarray(self.pts, dtype=np.float64))
            fps = None
            variable = False
            if len(deltas) and base is not None:
                seconds = float(deltas.sum() * base)
                fps = (len(deltas) / seconds) if seconds > 0 else None
                variable = bool(deltas.max() > 1.5 * deltas.min())
            elif stream.average_rate:
                fps = float(stream.average_rate)
            if self._rotation % 2:
                width, height = height, width
            self.info = SequenceInfo(
                str(self.path), "video", len(self.pts), width, height, fps, variable
            )
        finally:
            container.close()

    # ------------------------------------------------------------------------------ decoding
    def frame_name(self, index: int) -> str:
        return f"{self.path.name}#{index:06d}"

    def _restart(self, index: int) -> None:
        """Position the decoder so that its next frame is `index`."""
        if self._container is None:
            self._container, self._stream = self._open()
        target = self.pts[index]
        key = max((k for k in self.keyframes if k <= target), default=self.pts[0])
        try:
            self._container.seek(key, backward=True, any_frame=False, stream=self._stream)
        except Exception:  # noqa: BLE001 - some files cannot seek: decode from the start
            self._container.close()
            self._container, self._stream = self._open()
        self._decoder = self._container.decode(self._stream)
        self._next_index = None  # unknown until a frame's pts is seen

    def _decode(self, index: int) -> np.ndarray:
        if self._decoder is None or self._next_index != index:
            self._restart(index)
        target = self.pts[index]
        try:
            for frame in self._decoder:
                pts = frame.pts
                if pts is None or pts < target:
                    continue
                if pts > target:
                    break
                self._next_index = index + 1
                return self._to_rgb(frame)
        except Exception as error:  # noqa: BLE001
            self._decoder = None
            raise SequenceError(
                f"{self.name}: cannot decode frame {index} ({_first_line(error)})"
            ) from None
        self._decoder = None
        raise SequenceError(f"{self.name}: frame {index} not found when seeking (corrupt index?)")

    def _to_rgb(self, frame) -> np.ndarray:
        array = frame.to_ndarray(format="rgb24")
        if self._rotation:
            array = np.rot90(array, self._rotation)
        return np.ascontiguousarray(array)

    def close(self) -> None:
        super().close()
        if self._container is not None:
            self._container.close()
            self._container = None
        self._decoder = None


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def open_sequence(source: str | os.PathLike, cache: FrameCache | None = None) -> Sequence:
    """A video file or a folder of frames as a `Sequence`; `SequenceError` (one line) otherwise."""
    path = Path(source)
    if path.is_dir():
        return FolderSequence(path, cache)
    if not path.exists():
        raise SequenceError(f"{show_path(path)}: file not found")
    if not path.is_file():
        raise SequenceError(f"{show_path(path)}: not a regular file")
    if not is_video(path):
        raise SequenceError(
            f"{show_path(path)}: not a video file ({', '.join(sorted(VIDEO_EXTENSIONS))}) "
            "or a folder of frames"
        )
    return VideoSequence(path, cache)
