"""The cache's bounded `.npz` reader: what `np.load` gives, integrity checked, nothing allocated that
the file does not hold, and quick enough for a cached re-open (issue 13: <= 10 ms per image)."""

from __future__ import annotations

import io
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from annotator.cache import ArrayCache, read_npz, write_npz
from tests.timing import record


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as handle:
        write_npz(handle, arrays)
    return path


def _same_as_np_load(path: Path) -> None:
    ours = read_npz(path)
    with np.load(path, allow_pickle=False) as theirs:
        assert list(ours) == list(theirs.files)
        for name in ours:
            a, b = ours[name], theirs[name]
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert a.flags.f_contiguous == b.flags.f_contiguous, name
            np.testing.assert_array_equal(a, b)


def test_it_reads_what_np_load_reads(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "features": rng.standard_normal((8, 16, 16)).astype(np.float32),
        "fortran": np.asfortranarray(rng.standard_normal((5, 7))),
        "big_endian": np.arange(12, dtype=">i4").reshape(3, 4),
        "empty": np.zeros((0, 4), np.float32),
        "scalar": np.array(3.5),
        "bools": rng.random((9, 11)) < 0.5,
        "text": np.frombuffer(b'{"a": 1}', np.uint8),
    }
    _same_as_np_load(_write(tmp_path / "ours.npz", arrays))
    np.savez(tmp_path / "numpys.npz", **arrays)  # numpy's own writer, with its timestamps
    _same_as_np_load(tmp_path / "numpys.npz")


def test_a_flipped_byte_is_a_crc_error(tmp_path):
    path = _write(tmp_path / "a.npz", {"x": np.arange(1000, dtype=np.float32)})
    raw = bytearray(path.read_bytes())
    raw[raw.index(np.arange(1000, dtype=np.float32).tobytes()[400:408]) + 3] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(zipfile.BadZipFile, match="CRC"):
        read_npz(path)


@pytest.mark.parametrize("keep", [0.3, 0.7, 0.99])
def test_a_truncated_file_is_refused(tmp_path, keep):
    path = _write(tmp_path / "a.npz", {"x": np.arange(5000, dtype=np.float64)})
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises((ValueError, OSError, zipfile.BadZipFile)):
        read_npz(path)


def _with_header(shape: tuple[int, ...], payload: bytes, descr: str = "<f4") -> bytes:
    """A stored zip with one `.npy` member whose header claims `shape` over `payload`."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("x.npy", npy)
    return buffer.getvalue()


def test_a_header_claiming_terabytes_is_refused_before_any_allocation(tmp_path):
    path = tmp_path / "huge.npz"
    path.write_bytes(_with_header((10**12,), b"\0" * 64))
    with pytest.raises(ValueError, match="not the size its header says"):
        read_npz(path)  # np.load would first try to allocate 4 TB


def test_object_arrays_and_compressed_members_are_refused(tmp_path):
    objects = tmp_path / "objects.npz"
    objects.write_bytes(_with_header((1,), b"\0" * 8, descr="|O"))
    with pytest.raises(ValueError, match="Python objects"):
        read_npz(objects)
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, x=np.zeros(100))
    with pytest.raises(ValueError, match="compressed"):
        read_npz(compressed)


def test_a_damaged_cache_file_is_deleted_and_reported_absent(tmp_path):
    cache = ArrayCache(tmp_path)
    cache.save("sam", "model-a", "ab" * 32, {"x": np.arange(100, dtype=np.float32)})
    path = cache.path("sam", "model-a", "ab" * 32)
    np.testing.assert_array_equal(cache.load("sam", "model-a", "ab" * 32)["x"], np.arange(100))
    raw = bytearray(path.read_bytes())
    raw[-200] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert cache.load("sam", "model-a", "ab" * 32) is None
    assert not path.exists()


def test_a_sam2_sized_embedding_reopens_in_milliseconds_and_faster_than_np_load(tmp_path):
    """SAM 2.1's three feature levels (32x256x256, 64x128x128, 256x64x64 float32: 16.8 MB)."""
    rng = np.random.default_rng(0)
    arrays = {
        "high_res_0": rng.standard_normal((32, 256, 256), dtype=np.float32),
        "high_res_1": rng.standard_normal((64, 128, 128), dtype=np.float32),
        "features": rng.standard_normal((256, 64, 64), dtype=np.float32),
    }
    path = _write(tmp_path / "sam2.npz", arrays)

    def with_np_load() -> None:
        with np.load(path, allow_pickle=False) as archive:
            {name: archive[name] for name in archive.files}

    ours, theirs = [], []
    for _ in range(2):  # warm the page cache and both code paths
        read_npz(path)
        with_np_load()
    for i in range(20):  # interleaved, so a busy moment of the machine hits both alike
        pair = [(lambda: read_npz(path), ours), (with_np_load, theirs)]
        for run, times in pair if i % 2 == 0 else pair[::-1]:
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
    ours_ms, theirs_ms = 1e3 * np.median(ours), 1e3 * np.median(theirs)
    print(f"read_npz {ours_ms:.2f} ms, np.load {theirs_ms:.2f} ms (p50 of 20)")
    record("read_npz 16.8 MB vs np.load", ours_ms=ours_ms, np_load_ms=theirs_ms, bound_was=10)
    again = read_npz(path)  # speed is a benchmark (tests/timing.py); the contents are checked here
    assert sorted(again) == sorted(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(again[name], array)
