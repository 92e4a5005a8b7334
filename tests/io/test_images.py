"""Image loading: every colour mode to upright RGB, the size guard, and clear errors naming the file."""

from __future__ import annotations

import io
import os
import struct
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from annotator.errors import ImageLoadError
from annotator.io.images import (
    IMAGE_EXTENSIONS,
    image_size,
    list_images,
    load_image,
    sha256_pixels,
    show_path,
)
from tests.conftest import shared_data


def _pattern(height: int = 20, width: int = 32) -> np.ndarray:
    """An asymmetric RGB pattern: any flip or rotation changes it."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + 2 * y) % 256], -1
    )
    image[:3, :5] = (255, 0, 0)
    return image.astype(np.uint8)


def _check_rgb(array: np.ndarray, height: int, width: int) -> None:
    assert array.dtype == np.uint8
    assert array.shape == (height, width, 3)
    assert array.flags.c_contiguous


# --------------------------------------------------------------------------------- real photos
def test_real_photographs_decode_like_pillow_and_sizes_agree():
    folders = [shared_data(name) for name in ("grabcut", "berkeley", "coco_mval80")]
    checked = 0
    for folder in folders:
        for path in list_images(folder)[:6]:
            if "mask" in path.parent.name or path.parent.name == "gt":
                continue
            array = load_image(path)
            with Image.open(path) as reference:
                expected = np.asarray(
                    reference.convert("RGB")
                )  # these files carry no EXIF rotation
            np.testing.assert_array_equal(array, expected)
            width, height = image_size(path)
            _check_rgb(array, height, width)
            checked += 1
    assert checked >= 6


def test_list_images_finds_every_real_image():
    folder = shared_data("grabcut") / "images"
    expected = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    found = list_images(folder)
    assert sorted(p.name for p in found) == expected
    assert len(found) == 50  # includes the upper-case .JPG files and the .bmp ones


# ------------------------------------------------------------------------------------ EXIF
# Expected upright pixels for each EXIF orientation, written independently of Pillow.
_ORIENTED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),  # stored image is shown turned 90 degrees clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", sorted(_ORIENTED))
def test_exif_rotated_jpeg_comes_out_upright(tmp_path, orientation):
    path = tmp_path / f"rotated{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_pattern()).save(path, quality=95, exif=exif)
    with Image.open(path) as raw:
        stored = np.asarray(raw.convert("RGB"))  # the pixels as stored, before orientation
    upright = load_image(path)
    np.testing.assert_array_equal(upright, _ORIENTED[orientation](stored))
    assert image_size(path) == (upright.shape[1], upright.shape[0])
    if orientation >= 5:
        assert upright.shape[:2] == (32, 20)


# ------------------------------------------------------------------------------ colour modes
def test_cmyk_jpeg_to_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    cmyk = Image.new("CMYK", (16, 8), (255, 0, 0, 0))  # pure cyan
    cmyk.paste((0, 0, 0, 255), (8, 0, 16, 8))  # black on the right half
    cmyk.save(path, quality=100)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    rgb = load_image(path)
    _check_rgb(rgb, 8, 16)
    assert np.abs(rgb[:, :6].astype(int) - (0, 255, 255)).max() <= 3
    assert rgb[:, 10:].max() <= 3


def test_16_bit_grey_png_is_scaled_not_truncated(tmp_path):
    path = tmp_path / "grey16.png"
    values = np.linspace(0, 65535, 64 * 8).astype(np.uint16).reshape(8, 64)
    values[0, 0], values[0, 1] = 0, 65535
    Image.fromarray(values).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    rgb = load_image(path)
    _check_rgb(rgb, 8, 64)
    expected = np.round(values.astype(np.float64) * 255 / 65535).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)
    assert rgb[0, 1].tolist() == [255, 255, 255]


def test_palette_png_with_and_without_transparency(tmp_path):
    indices = np.array([[0, 1, 2, 1]], dtype=np.uint8).repeat(3, axis=0)
    palette = [10, 20, 30, 200, 100, 50, 0, 0, 0] + [0] * (256 * 3 - 9)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette)
    plain, transparent = tmp_path / "p.png", tmp_path / "pt.png"
    image.save(plain)
    image.save(transparent, transparency=2)  # index 2 (black) is transparent
    rgb = load_image(plain)
    assert rgb[0].tolist() == [[10, 20, 30], [200, 100, 50], [0, 0, 0], [200, 100, 50]]
    rgb = load_image(transparent)
    assert rgb[0].tolist() == [[10, 20, 30], [200, 100, 50], [255, 255, 255], [200, 100, 50]]


def test_rgba_and_la_are_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 128)  # half-transparent red
    rgba[0, 2] = (0, 0, 0, 0)  # fully transparent black: must look white
    rgba[1] = (0, 0, 255, 255)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png").astype(int)
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 2].tolist() == [255, 255, 255]
    assert out[1, 0].tolist() == [0, 0, 255]
    half = 255 - round(255 * 128 / 255)  # white * (1 - a) + 0 * a
    assert out[0, 1, 0] == 255 and abs(out[0, 1, 1] - half) <= 1 and abs(out[0, 1, 2] - half) <= 1

    la = np.array([[[0, 255], [0, 0]]], dtype=np.uint8)  # opaque black, transparent black
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_grey_and_bilevel_and_one_pixel(tmp_path):
    Image.fromarray(np.array([[0, 128, 255]], dtype=np.uint8), mode="L").save(tmp_path / "l.png")
    assert load_image(tmp_path / "l.png").tolist() == [
        [[0, 0, 0], [128, 128, 128], [255, 255, 255]]
    ]
    Image.new("1", (2, 1), 1).save(tmp_path / "b.png")
    assert load_image(tmp_path / "b.png").tolist() == [[[255, 255, 255]] * 2]
    Image.new("RGB", (1, 1), (1, 2, 3)).save(tmp_path / "one.bmp")
    one = load_image(tmp_path / "one.bmp")
    _check_rgb(one, 1, 1)
    assert one.tolist() == [[[1, 2, 3]]]
    assert image_size(tmp_path / "one.bmp") == (1, 1)


def test_wrong_extension_is_decoded_by_content(tmp_path):
    pattern = _pattern()
    path = tmp_path / "actually_png.jpg"
    Image.fromarray(pattern).save(path, format="PNG")
    np.testing.assert_array_equal(load_image(path), pattern)


# ------------------------------------------------------------------------------------ errors
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR claiming width x height and no pixel data: a bomb made cheaply."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(30000, 30000))
    with pytest.raises(ImageLoadError, match="bomb.png: image too large") as error:
        load_image(path)
    assert "900000000" in str(error.value)
    with pytest.raises(ImageLoadError, match="too large"):
        image_size(path)


def test_size_guard_names_the_size(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(5000, 4000))  # 20 MP, below Pillow's own limit
    with pytest.raises(
        ImageLoadError,
        match=r"big.png: image too large \(5000x4000 = 20.0 MP, the limit is 10.0 MP\)",
    ):
        load_image(path, max_pixels=10_000_000)
    # under the limit, the header is fine but there are no pixels: a clear decoding error
    with pytest.raises(ImageLoadError, match="big.png: truncated or corrupt"):
        load_image(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"this is not an image at all", "not an image"),
        (None, "file not found"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message) as error:
        load_image(path)
    assert str(path) in str(error.value)
    with pytest.raises(ImageLoadError, match=message):
        image_size(path)


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(_pattern(64, 64)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) * 3 // 4])
    assert image_size(path) == (64, 64)  # the header is intact
    with pytest.raises(ImageLoadError, match="cut.jpg: truncated or corrupt"):
        load_image(path)
    path.write_bytes(data[:40])  # cut inside the header
    with pytest.raises(ImageLoadError, match="cut.jpg: truncated or corrupt"):
        image_size(path)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageLoadError, match="is a folder"):
        load_image(tmp_path)


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes only on Linux")
def test_non_utf8_file_name(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    path = tmp_path / name
    Image.fromarray(_pattern()).save(path)
    np.testing.assert_array_equal(load_image(path), _pattern())
    assert path in list_images(tmp_path)
    missing = tmp_path / os.fsdecode(b"gon\xe9.png")
    with pytest.raises(ImageLoadError) as error:
        load_image(missing)
    message = str(error.value)
    message.encode("utf-8")  # printable: the bad byte is shown as an escape
    assert "gon\\xe9.png" in message
    assert show_path(missing).endswith("gon\\xe9.png")


# ------------------------------------------------------------------------------- list, hash
def test_list_images_natural_order_and_skips(tmp_path):
    for name in [
        "img10.png",
        "img2.PNG",
        "img1.jpg",
        "notes.txt",
        ".hidden.png",
        "sub/a3.webp",
        "sub/a20.tif",
    ]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".annotator").mkdir()
    (tmp_path / ".annotator" / "thumb.png").write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["img1.jpg", "img2.PNG", "img10.png", "sub/a3.webp", "sub/a20.tif"]
    with pytest.raises(ImageLoadError, match="not a folder"):
        list_images(tmp_path / "img1.jpg")


def test_sha256_pixels_tracks_pixels_and_shape():
    image = _pattern()
    same = image.copy()
    assert sha256_pixels(image) == sha256_pixels(same)
    same[5, 5, 0] ^= 1
    assert sha256_pixels(image) != sha256_pixels(same)
    flat = np.zeros((2, 3, 3), np.uint8)
    assert sha256_pixels(flat) != sha256_pixels(flat.reshape(3, 2, 3))
    assert sha256_pixels(image[:, ::-1]) == sha256_pixels(np.ascontiguousarray(image[:, ::-1]))


# ----------------------------------------------------------------- issue 11: hostile image files
_EPS_HEADER = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"


@pytest.fixture
def fake_ghostscript(tmp_path, monkeypatch):
    """A `gs` first on PATH that records every call and then hangs: if anything ran Ghostscript on
    a data file, the log says so (and the call would block for 30 s)."""
    from PIL import EpsImagePlugin

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gs-calls.log"
    script = bin_dir / "gs"
    script.write_text(
        f'#!/bin/sh\necho "$@" >> "{log}"\n[ "$1" = --version ] && exit 0\nsleep 30\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # as in a fresh process: look it up
    return log


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for gs")
def test_fake_ghostscript_would_be_run_by_plain_pillow(fake_ghostscript, tmp_path):
    """The control for the two tests below: plain `Image.open(...).load()` does call `gs`."""
    from PIL import EpsImagePlugin

    eps = tmp_path / "x.jpg"
    eps.write_bytes(_EPS_HEADER + b"showpage\n")
    with Image.open(eps) as image:
        assert image.format == "EPS"  # Pillow picks the EPS plugin by content
        assert EpsImagePlugin.has_ghostscript()  # ...and would run our `gs`
    assert fake_ghostscript.read_text().startswith("--version")


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for gs")
@pytest.mark.parametrize(
    "program",
    [b"(/tmp/MARKER) (w) file closefile\nshowpage\n", b"{ } loop\nshowpage\n"],
    ids=["writes-a-file", "loops-forever"],
)
def test_postscript_named_jpg_never_runs_ghostscript(fake_ghostscript, tmp_path, program):
    marker = tmp_path / "MARKER"
    eps = tmp_path / "x.jpg"
    eps.write_bytes(_EPS_HEADER + program.replace(b"/tmp/MARKER", str(marker).encode()))
    start = time.monotonic()
    for read in (load_image, image_size):
        with pytest.raises(ImageLoadError) as error:
            read(eps)
        message = str(error.value)
        assert "\n" not in message and str(eps) in message
        assert "PostScript/EPS" in message and "only raster images" in message
    assert time.monotonic() - start < 60  # fails fast: nothing waits on the hanging `gs`
    assert not marker.exists()
    assert not fake_ghostscript.exists()  # `gs` was not even asked for its version


def test_ghostscript_is_off_for_the_whole_process():
    from PIL import EpsImagePlugin

    import annotator.io.images  # noqa: F401  (importing it is what switches Ghostscript off)

    assert EpsImagePlugin.has_ghostscript() is False


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF file"),
        (b"\xc5\xd0\xd3\xc6" + b"\0" * 40, "PostScript/EPS"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "XML/SVG"),
    ],
)
def test_documents_are_refused_by_content(tmp_path, content, kind):
    path = tmp_path / "doc.png"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=kind):
        load_image(path)


def test_formats_outside_the_list_are_refused(tmp_path):
    """ICO, PSD-like and TGA files decode in Pillow, but only the listed raster formats are read."""
    path = tmp_path / "icon.jpg"
    Image.fromarray(_pattern(16, 16)).save(path, format="ICO")
    with Image.open(path) as image:
        assert image.format == "ICO"  # plain Pillow would decode it
    with pytest.raises(ImageLoadError, match="not one of the formats read .*JPEG, PNG"):
        load_image(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF", "PPM"])
def test_every_listed_format_decodes(tmp_path, fmt):
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(_pattern(12, 18)).save(path, format=fmt)
    _check_rgb(load_image(path), 12, 18)
    assert image_size(path) == (18, 12)


def test_avif_decodes_when_a_plugin_provides_it(tmp_path):
    from PIL import features

    from annotator.io.images import decodable_formats

    if not features.check("avif"):
        assert "AVIF" not in decodable_formats()
        pytest.skip("this Pillow has no AVIF plugin")
    assert "AVIF" in decodable_formats()
    path = tmp_path / "x.avif"
    Image.fromarray(_pattern(12, 18)).save(path, format="AVIF", quality=100)
    _check_rgb(load_image(path), 12, 18)
    assert path in list_images(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # nobody ever writes to it: a plain open() would block forever
    start = time.monotonic()
    for read in (load_image, image_size):
        with pytest.raises(ImageLoadError, match="a named pipe, not a regular file"):
            read(fifo)
    assert time.monotonic() - start < 30  # an open() of the pipe would block forever


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_are_refused(tmp_path):
    with pytest.raises(ImageLoadError, match="/dev/zero: a character device"):
        load_image("/dev/zero")  # would otherwise be read forever


@pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")
def test_socket_is_refused(tmp_path):
    import socket

    path = tmp_path / "s.png"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
    except OSError as error:  # pragma: no cover - a path too long for AF_UNIX
        pytest.skip(f"cannot bind a socket here: {error}")
    with server, pytest.raises(ImageLoadError, match="a socket"):
        load_image(path)


def test_extreme_shapes(tmp_path):
    for height, width in [(1, 3000), (3000, 1), (1, 1), (2, 1)]:
        path = tmp_path / f"{width}x{height}.png"
        Image.fromarray(_pattern(height, width)).save(path)
        _check_rgb(load_image(path), height, width)
        assert image_size(path) == (width, height)


@pytest.mark.skipif(sys.platform == "win32", reason="such names are POSIX")
def test_control_characters_in_names_stay_on_one_line(tmp_path):
    path = tmp_path / "evil\nname\x1b[31m.png"
    path.write_bytes(b"not an image")
    with pytest.raises(ImageLoadError) as error:
        load_image(path)
    message = str(error.value)
    assert "\n" not in message and "\x1b" not in message
    assert "evil\\x0aname\\x1b[31m.png" in message
    assert show_path("a\nb") == "a\\x0ab"


def test_nul_byte_in_a_name_is_a_clear_error():
    with pytest.raises(ImageLoadError, match=r"a\\x00b.png: the file name contains a NUL byte"):
        load_image("a\0b.png")
