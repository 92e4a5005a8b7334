"""Small synthetic clips for the sequence and tracking tests: a textured background with two
moving discs, written as a video (PyAV) or a folder of PNG frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def frames(count: int = 8, height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """(count, H, W, 3) uint8: a smooth colour background, a red disc moving right and a blue
    disc moving down, and a numbered bar (frame i has i+1 white pixels in row 0)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            80 + 40 * np.sin(xx / 9.0),
            90 + 40 * np.cos(yy / 7.0),
            70 + 30 * np.sin((xx + yy) / 11.0),
        ],
        axis=-1,
    )
    base = base + rng.normal(0, 4, base.shape)
    out = np.empty((count, height, width, 3), dtype=np.uint8)
    r = max(4, min(height, width) // 6)
    for i in range(count):
        img = base.copy()
        cx, cy = width * 0.25 + i * width * 0.03, height * 0.4
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (230, 30, 30)
        bx, by = width * 0.7, height * 0.25 + i * height * 0.03
        img[(xx - bx) ** 2 + (yy - by) ** 2 <= (r * 0.8) ** 2] = (30, 40, 220)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def write_video(
    path: Path,
    images: np.ndarray,
    codec: str = "libx264",
    fps: int = 10,
    rotation: float | None = None,
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
) -> Path:
    """Encode `images` (T, H, W, 3 uint8) into `path` with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = images.shape[1:3]
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image in images:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_lossless(path: Path, images: np.ndarray, fps: int = 10) -> Path:
    """An mkv with FFV1 in RGB: decoded frames equal `images` exactly."""
    return write_video(path, images, codec="ffv1", fps=fps, pix_fmt="bgr0")


def write_folder(folder: Path, images: np.ndarray, stem: str = "f") -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{stem}{i}.png")
    return folder
