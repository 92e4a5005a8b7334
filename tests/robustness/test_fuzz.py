"""Property-based hostile input (issue 11): random bytes and random JSON values into image decoding,
COCO import and vocabulary parsing.

For every example: the only exception is an `AnnotatorError` with a one-line message; it finishes in
bounded time (hypothesis' deadline, and a hard SIGALRM that turns a real hang into a failure instead
of a stuck suite); and nothing is written outside the example's own temporary folder (an audit hook
sees every file opened for writing, renamed, removed or created by Python code, Pillow and
pycocotools included). Model-config loading is fuzzed next to the model loaders (annotator/models).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from annotator.errors import AnnotatorError
from annotator.io.formats.coco import import_coco
from annotator.io.images import image_size, load_image
from annotator.store import Project
from annotator.vocab.vocabulary import Vocabulary

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "setitimer"), reason="the hard time limit uses SIGALRM"
)

HARD_LIMIT_S = 20.0
FUZZ = settings(
    max_examples=120,
    deadline=3000,  # ms per example; generous for a loaded 2-core machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)


# ------------------------------------------------------------------------------- write watching
class _Writes:
    """An audit hook (installed once per process, switched on per example) that records every path
    written outside the allowed folder."""

    allowed: str | None = None
    outside: list[str] = []
    installed = False
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    @classmethod
    def install(cls) -> None:
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        allowed = cls.allowed
        if allowed is None or threading.current_thread() is not threading.main_thread():
            return
        paths: list[object] = []
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & cls._WRITE_FLAGS
            )
            if writes:
                paths.append(path)
        elif event in ("os.rename", "os.replace", "os.link", "os.symlink"):
            paths.extend(args[:2])
        elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod"):
            paths.append(args[0])
        elif event == "sqlite3.connect":
            paths.append(args[0])
        for path in paths:
            if isinstance(path, int):  # a descriptor already opened (and checked) by path
                continue
            text = os.path.realpath(os.fsdecode(path))
            inside = text.startswith(allowed) or text == allowed.rstrip(os.sep)  # mkdir(exist_ok)
            if text != ":memory:" and not inside:
                cls.outside.append(f"{event}: {text}")


@contextlib.contextmanager
def hostile_example():
    """A fresh folder for one example, with the write watch and a hard time limit around it."""
    _Writes.install()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        real = os.path.realpath(folder)

        def hang(signum, frame):
            raise TimeoutError(f"an example ran longer than {HARD_LIMIT_S} s (a hang)")

        previous = signal.signal(signal.SIGALRM, hang)
        signal.setitimer(signal.ITIMER_REAL, HARD_LIMIT_S)
        _Writes.allowed, _Writes.outside = real + os.sep, []
        try:
            yield Path(real)
        finally:
            _Writes.allowed = None
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert not _Writes.outside, _Writes.outside


def _one_line(error: AnnotatorError) -> None:
    message = str(error)
    assert message and "\n" not in message and "\r" not in message, repr(message)


# ------------------------------------------------------------------------------------- images
def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (9, 13, 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


SEEDS = [_encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP", "PPM")]
MAGIC = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"P6\n",
    b"%!PS-Adobe-3.0 EPSF-3.0\n",
    b"%PDF-1.4\n",
    b"\x00\x00\x01\x00",  # ICO
    b"8BPS",  # PSD
]


@st.composite
def image_bytes(draw) -> bytes:
    """Random bytes, random bytes behind a real magic number, or a real small file mutated."""
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=1024))
    if choice == 1:
        return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=1024))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


@FUZZ
@given(data=image_bytes(), name=st.sampled_from(["x.jpg", "x.png", "x", ".x.tif"]))
def test_random_bytes_as_an_image(data, name):
    with hostile_example() as folder:
        path = folder / name
        path.write_bytes(data)
        for read in (image_size, load_image):
            try:
                result = read(path, max_pixels=4_000_000)
            except AnnotatorError as error:
                _one_line(error)
                assert str(path) in str(error)
                event("refused")
            else:
                event("decoded")
                if read is load_image:
                    assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3


# ------------------------------------------------------------------------------------------ COCO
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, 10**40])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e300, -1e300, 0.5, 1.0, 1e-320])
    | st.text(max_size=12)
    | st.sampled_from(["", " ", "a\nb", "\x00", "./", "..", "/etc/passwd", "im0.png", "cat"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _valid_doc() -> dict:
    return {
        "images": [{"id": 10, "file_name": "im0.png", "width": 16, "height": 12}],
        "categories": [{"id": 3, "name": "cat", "supercategory": "animal"}],
        "annotations": [
            {
                "id": 7,
                "image_id": 10,
                "category_id": 3,
                "segmentation": [[2.0, 1.0, 8.0, 1.0, 8.0, 6.0, 2.0, 6.0]],
                "bbox": [2, 1, 6, 5],
                "area": 30,
                "score": 0.5,
                "iscrowd": 0,
            },
            {
                "id": 8,
                "image_id": 10,
                "category_id": 3,
                "segmentation": {"size": [12, 16], "counts": [20, 5, 167]},
            },
        ],
    }


_PLACES = [
    ("images", 0, "id"),
    ("images", 0, "file_name"),
    ("images", 0, "width"),
    ("images", 0, "height"),
    ("categories", 0, "id"),
    ("categories", 0, "name"),
    ("categories", 0, "supercategory"),
    *[
        ("annotations", k, key)
        for k in (0, 1)
        for key in (
            "id",
            "image_id",
            "category_id",
            "segmentation",
            "bbox",
            "area",
            "score",
            "iscrowd",
        )
    ],
]


@st.composite
def coco_documents(draw) -> str:
    """A valid document with random values put in random places, or any JSON value at all."""
    if draw(st.integers(0, 4)) == 0:
        doc: object = draw(json_values)
    else:
        doc = _valid_doc()
        places = st.lists(st.sampled_from(_PLACES), max_size=3)
        for section, index, key in draw(st.just([]) | places):
            doc[section][index][key] = draw(json_values)  # type: ignore[index]
        if draw(st.integers(0, 3)) == 0:
            seg = doc["annotations"][1]["segmentation"]  # type: ignore[index]
            if isinstance(seg, dict):
                seg["counts"] = draw(
                    st.text(
                        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30
                    )
                )
    return json.dumps(doc, allow_nan=True)  # NaN and Infinity are what Python's json accepts


@FUZZ
@given(text=coco_documents(), check_files=st.booleans())
def test_random_json_values_as_a_coco_file(text, check_files):
    with hostile_example() as folder:
        Image.new("RGB", (16, 12)).save(folder / "im0.png")
        path = folder / "in.json"
        path.write_text(text)
        with Project(folder / "p.db") as project:
            try:
                import_coco(path, folder, project, check_files=check_files)
            except AnnotatorError as error:
                _one_line(error)
                assert project.annotations() == [] and project.images() == []
                event(f"refused: {type(error).__name__}")
                return
            event("imported")
            for annotation in project.annotations():
                assert annotation.score is None or math.isfinite(annotation.score)
                assert 0 <= annotation.id < 2**31 and annotation.area > 0
            project.add_image("later.png", 3, 3)  # the id space is still usable


# ------------------------------------------------------------------------------------ vocabulary
vocab_text = st.text(
    alphabet=st.sampled_from(list("ab ,#\\\t\r\n\x00\x1b\u00e9\u2028\ufeff")), max_size=80
) | st.text(max_size=80)


@FUZZ
@given(data=st.binary(max_size=300) | vocab_text.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_random_bytes_as_a_vocabulary_file(data):
    with hostile_example() as folder:
        path = folder / "v.txt"
        path.write_bytes(data)
        try:
            vocabulary = Vocabulary.load(path)
        except AnnotatorError as error:
            _one_line(error)
            return
        assert len(vocabulary) > 0
        # A loaded file saves back (in place) to a file that loads to the same entries.
        vocabulary.save(path)
        assert Vocabulary.load(path) == vocabulary


names = st.text(alphabet=st.sampled_from(list("abc ,#\\")), min_size=1, max_size=6).filter(
    lambda s: s.strip() and not s.strip().startswith("#")
)


@FUZZ
@given(
    before=st.lists(names, max_size=6, unique_by=lambda s: s.strip().casefold()),
    after=st.lists(names, min_size=1, max_size=6, unique_by=lambda s: s.strip().casefold()),
    comments=st.lists(st.sampled_from(["# one", "", "  # two", "#"]), max_size=6),
    crlf=st.booleans(),
)
def test_in_place_edits_keep_every_comment_and_give_exactly_the_entries(
    before, after, comments, crlf
):
    """Whatever the old file held, the edited file loads to exactly the new vocabulary, and every
    comment and blank line of the old file is still there, in order."""
    old_vocabulary = Vocabulary()
    for name in before:
        with contextlib.suppress(AnnotatorError):
            old_vocabulary.add(name)
    new_vocabulary = Vocabulary()
    for name in after:
        with contextlib.suppress(AnnotatorError):
            new_vocabulary.add(name)
    if not len(new_vocabulary):
        return
    entry_lines = old_vocabulary.dumps().splitlines()
    lines: list[str] = []
    for k in range(max(len(entry_lines), len(comments))):
        if k < len(comments):
            lines.append(comments[k])
        if k < len(entry_lines):
            lines.append(entry_lines[k])
    newline = "\r\n" if crlf else "\n"
    with hostile_example() as folder:
        path = folder / "v.txt"
        path.write_bytes(newline.join(lines).encode() + newline.encode())
        new_vocabulary.save(path)
        text = path.read_bytes().decode()
        assert Vocabulary.loads(text) == new_vocabulary
        kept = [
            line for line in text.split(newline) if not line.strip() or line.strip().startswith("#")
        ]
        old_comments = [c for c in lines if not c.strip() or c.strip().startswith("#")]
        it = iter(kept)
        assert all(any(c == k for k in it) for c in old_comments)  # a subsequence, in order
