"""Image files in, RGB uint8 arrays out: the pixels the user sees, or a clear `ImageLoadError`.

Decisions (so that masks line up with the picture on screen):
- EXIF orientation is applied (`ImageOps.exif_transpose`): the array is the upright picture.
- Transparency (RGBA, LA, palette or colour-key transparency) is composited on WHITE, the way the image
  looks on a page; dropping alpha would show whatever colour an editor left under transparent pixels
  (often black), which is not what the user sees and confuses both SAM and CLIP.
- 16-bit greyscale is scaled to 8 bits with v * 255 / 65535 (rounded), so white stays white; 32-bit
  integer images are treated the same when their values exceed 255; float images are taken as 0..1 when
  their maximum is at most 1, else clipped to 0..255. CMYK is converted by Pillow (no ICC colour
  management). Multi-frame files (GIF, TIFF) give their first frame.
- A size guard: more than `MAX_PIXELS` pixels is refused from the header alone, before decoding.
- Files are decoded by content, never by extension, and only by the raster decoders in
  `RASTER_FORMATS` (plus AVIF/HEIF when a plugin provides them): Pillow would otherwise hand a
  PostScript file named `x.jpg` to its EPS plugin, which runs Ghostscript on it (a PostScript program
  can write files or loop forever). EPS/PS/PDF are named and refused; Ghostscript is also switched off
  process-wide, in case any other code calls `Image.open` without a format list.
- Only regular files are opened, with O_NONBLOCK so that a named pipe or a device cannot block the
  open itself; pipes, devices and sockets are refused, naming what they are.
- File names in messages are printable and one line (`show_path`): undecodable bytes and control
  characters (a newline in a file name would split the error line) are escaped.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import EpsImagePlugin, Image, ImageOps, UnidentifiedImageError

from annotator.errors import ImageLoadError
from annotator.io.files import NotARegularFile, open_regular, show_path

MAX_PIXELS = 150_000_000
"""Largest image accepted (width * height): 150 MP is 450 MB as RGB. Kept below Pillow's own
decompression-bomb limit (2 * `Image.MAX_IMAGE_PIXELS`, about 179 MP), which still applies above it."""

RASTER_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF", "PPM")
"""Pillow format names the application decodes: plain raster decoders that never run other programs."""

OPTIONAL_FORMATS = ("AVIF", "HEIF")
"""Decoded too when a plugin registered them (Pillow's AVIF build, pillow-heif's opener)."""

# Never run Ghostscript, whoever calls Image.open: `has_ghostscript()` is False from now on.
EpsImagePlugin.gs_binary = False

IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".bmp",
        ".tif",
        ".tiff",
        ".webp",
        ".gif",
        ".ppm",
        ".pgm",
        ".avif",  # decoded when a plugin registered AVIF (Pillow's own build does); else named
        ".heic",
        ".heif",
    }
)

_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees

# Our guard replaces Pillow's warning between 89 MP and MAX_PIXELS; it is noise for a viewer of photos.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageSize(NamedTuple):
    """Size of the upright image (after EXIF orientation)."""

    width: int
    height: int


def decodable_formats() -> tuple[str, ...]:
    """`RASTER_FORMATS` plus the optional ones a plugin has registered in this process."""
    Image.init()
    return RASTER_FORMATS + tuple(f for f in OPTIONAL_FORMATS if f in Image.OPEN)


def _sniff(head: bytes) -> str | None:
    """Names the document formats that are refused on purpose, for a clearer message."""
    if head.startswith((b"%!", b"\xc5\xd0\xd3\xc6")):
        return "a PostScript/EPS file"
    if head.lstrip().startswith(b"%PDF"):
        return "a PDF file"
    if head.lstrip()[:5].lower() in (b"<?xml", b"<svg "):
        return "an XML/SVG file"
    return None


class _Opened(NamedTuple):
    image: Image.Image
    handle: BinaryIO


def _open(path: Path, max_pixels: int | None) -> _Opened:
    """Open lazily (header only) and apply the checks that need no decoding; the caller closes both."""
    name = show_path(path)
    try:
        handle = open_regular(path)
    except FileNotFoundError:
        raise ImageLoadError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{name}: is a folder, not an image") from None
    except NotARegularFile as error:
        if str(error).startswith("a folder"):
            raise ImageLoadError(f"{name}: is a folder, not an image") from None
        raise ImageLoadError(f"{name}: {error}; only image files are read") from None
    except OSError as error:
        raise ImageLoadError(f"{name}: cannot read the file ({error.strerror or error})") from error
    except ValueError:  # "embedded null byte"
        raise ImageLoadError(f"{name}: the file name contains a NUL byte") from None
    try:
        image = _open_handle(handle, name, max_pixels)
    except BaseException:
        handle.close()
        raise
    return _Opened(image, handle)


def _open_handle(handle: BinaryIO, name: str, max_pixels: int | None) -> Image.Image:
    if os.fstat(handle.fileno()).st_size == 0:
        raise ImageLoadError(f"{name}: the file is empty (0 bytes)")
    formats = decodable_formats()
    try:
        image = Image.open(handle, formats=formats)
    except UnidentifiedImageError:
        handle.seek(0)
        kind = _sniff(handle.read(64))
        if kind is not None:
            raise ImageLoadError(
                f"{name}: {kind}; only raster images ({', '.join(formats)}) are read"
            ) from None
        raise ImageLoadError(
            f"{name}: not an image, or not one of the formats read ({', '.join(formats)})"
        ) from None
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{name}: image too large to load safely ({error})") from error
    except OSError as error:
        raise ImageLoadError(f"{name}: truncated or corrupt image ({error})") from error
    except Exception as error:  # a corrupt header can make any decoder raise anything
        raise ImageLoadError(
            f"{name}: corrupt image header ({type(error).__name__}: {error})"
        ) from error
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    width, height = image.size
    if width * height > limit:
        image.close()
        raise ImageLoadError(
            f"{name}: image too large ({width}x{height} = {width * height / 1e6:.1f} MP, "
            f"the limit is {limit / 1e6:.1f} MP)"
        )
    if width == 0 or height == 0:
        image.close()
        raise ImageLoadError(f"{name}: image has no pixels ({width}x{height})")
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB, following the decisions in the module docstring."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image)
        if mode == "F":
            values = values.astype(np.float64)
            values = values * 255.0 if np.nanmax(values) <= 1.0 else values
            grey = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
        elif mode == "I" and values.max(initial=0) <= 255:
            grey = np.clip(values, 0, 255).astype(np.uint8)
        else:
            values = np.clip(values.astype(np.int64), 0, 65535)
            grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def load_image(
    path: str | os.PathLike, max_pixels: int | None = None, orient: bool = True
) -> np.ndarray:
    """RGB uint8 (H, W, 3) C-contiguous array of the upright image at `path` (with `orient=False`:
    the stored pixels, EXIF orientation not applied — what COCO-style datasets annotate).

    Raises ImageLoadError (naming the file) for a missing, empty, truncated, corrupt, non-image or too
    large file. `max_pixels` overrides `MAX_PIXELS` for this call.
    """
    path = Path(path)
    name = show_path(path)
    image, handle = _open(path, max_pixels)
    try:
        with handle, image:
            image.load()
            upright = ImageOps.exif_transpose(image) if orient else image
    except MemoryError as error:
        raise ImageLoadError(f"{name}: not enough memory to decode the image") from error
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{name}: image too large to load safely ({error})") from error
    except (
        Exception
    ) as error:  # truncated data, broken chunks: decoders raise OSError, ValueError...
        raise ImageLoadError(
            f"{name}: truncated or corrupt image ({type(error).__name__}: {error})"
        ) from error
    try:
        array = np.asarray(_to_rgb(upright), dtype=np.uint8)
    except Exception as error:
        raise ImageLoadError(
            f"{name}: cannot convert colour mode {upright.mode} to RGB ({error})"
        ) from error
    if array.ndim != 3 or array.shape[2] != 3:  # pragma: no cover - convert("RGB") guarantees it
        raise ImageLoadError(f"{name}: decoded to an unexpected shape {array.shape}")
    return np.ascontiguousarray(array)


def image_size(path: str | os.PathLike, max_pixels: int | None = None) -> ImageSize:
    """(width, height) of the upright image from the header alone (EXIF rotation swaps them).

    For PNG only an eXIf chunk before the pixel data is read (where the PNG specification puts it);
    other formats keep EXIF in the header. Same errors as `load_image` for unreadable headers.
    """
    image, handle = _open(Path(path), max_pixels)
    with handle, image:
        width, height = image.size
        try:
            if image.format == "PNG" and "exif" not in image.info:
                orientation = 1
            else:
                orientation = image.getexif().get(_ORIENTATION_TAG, 1)
        except Exception:  # a broken EXIF block: exif_transpose would ignore it too
            orientation = 1
    if orientation in _SWAPS_AXES:
        width, height = height, width
    return ImageSize(int(width), int(height))


def _natural_key(part: str) -> list[int | str]:
    pieces = re.split(r"(\d+)", part)
    return [int(p) if i % 2 else p.casefold() for i, p in enumerate(pieces)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under `folder` (recursively), in natural order ("img2" before "img10").

    Chosen by extension (case-insensitive, `IMAGE_EXTENSIONS`); hidden files and folders are skipped,
    which skips the project's own `.annotator/` folder and macOS "._name" sidecar files.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageLoadError(f"{show_path(root)}: not a folder")
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for file in files:
            if not file.startswith(".") and os.path.splitext(file)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(directory, file))

    def key(path: Path) -> tuple:
        rel = path.relative_to(root)
        return (tuple(_natural_key(p) for p in rel.parts), rel.as_posix())

    return sorted(found, key=key)


def sha256_pixels(image: np.ndarray) -> str:
    """Hex sha256 of decoded pixels, shape and dtype included: the image's identity for caches."""
    array = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{array.dtype.str}:{'x'.join(map(str, array.shape))}:".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()
