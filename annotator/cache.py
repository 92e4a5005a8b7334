"""On-disk cache of per-image embeddings, so an image is encoded once per model.

The SAM part and the CLIP part are stored in separate files, each keyed by the image's content hash and the
identity of the model that produced it. Switching the CLIP model or the region head therefore reuses the
(expensive) SAM embedding, and vice versa. Files are uncompressed ``.npz`` archives written atomically; the zip
CRC-32 of every member is checked on read, so a truncated or corrupted file is detected, deleted and recomputed.

The cache is an optimisation, so a cache that cannot be written (a read-only folder, a full disk, a
corrupt file that cannot be deleted) only costs recomputation: the embedding is computed in memory and
ONE warning per cause is logged, never a traceback. Only a cache root that is not a folder at all is an
error (`check_cache_root`), since then nothing could ever be cached and the user named a wrong path.
The bytes of a file depend only on the arrays: members are written in order with a fixed zip timestamp (numpy's
`savez` stamps the current time), so a cache filled by a cluster (`annotator embed --ray`) is byte-identical to
one filled by a single process and copies can be compared or deduplicated by content.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import zipfile
from pathlib import Path
from typing import IO

import numpy as np
import platformdirs

try:  # ISA-L's CRC-32: ~6x zlib's on the cache's 5-20 MB members (wheels for all major platforms)
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - an install without the wheel still reads its cache
    from zlib import crc32 as _crc32

from annotator.atomic import atomic_write_with
from annotator.errors import CacheError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ZIP_EPOCH = (
    1980,
    1,
    1,
    0,
    0,
    0,
)  # the earliest zip timestamp: fixed, so equal arrays give equal bytes


def default_cache_dir() -> Path:
    """`$ANNOTATOR_CACHE` if set, else the platform's user cache dir."""
    env = os.environ.get("ANNOTATOR_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("annotator"))


def _slug(model_id: str) -> str:
    """A short file-system-safe folder name for a model identity."""
    digest = hashlib.sha256(model_id.encode()).hexdigest()[:16]
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)[:48]
    return f"{readable}-{digest}"


def check_cache_root(root: Path) -> Path:
    """`root` if it is a folder or can become one; CacheError when it or a parent is a file."""
    root = Path(root)
    for folder in (root, *root.parents):
        try:
            if folder.is_dir():
                return root
            if folder.exists():
                raise CacheError(f"{os.fsdecode(folder)}: the cache path is a file, not a folder")
        except OSError as error:
            raise CacheError(
                f"{os.fsdecode(folder)}: cannot use the cache folder ({error.strerror})"
            ) from error
    return root


def write_npz(handle: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed `.npz` (what `np.load` reads) whose bytes depend only on `arrays`."""
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def model_folder(model_id: str) -> str:
    """The folder name a model identity's files live under (what `annotator cache` checks)."""
    return _slug(model_id)


def read_npy_header(handle: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of the `.npy` stream at `handle`, header only (bounded)."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(handle)
    raise ValueError(f"unknown .npy version {version}")


# Where a zip member's data starts: a 30-byte local header (signature, ..., name and extra lengths).
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_LOCAL_SIGNATURE = 0x04034B50
MAX_MEMBERS = 64  # a cache file holds a handful of arrays; more is not ours


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed `.npz`, as `np.load` gives them, read with bounds first.

    Why not `np.load`: a cached re-open must take milliseconds (issue 13: <= 10 ms for a 16.8 MB
    SAM 2 embedding), and np.load copies every member twice and checks its CRC with zlib (8 ms on
    16.8 MB here); and it allocates what a member's `.npy` header claims before reading, so a
    crafted file could ask for terabytes. Here each member's declared size must equal shape x
    itemsize and lie inside the file before anything is allocated; the data is `readinto` a fresh
    array (one copy) and the zip CRC-32 of every member is still checked, by ISA-L where the
    `isal` package is present (1.4 ms on 16.8 MB), zlib otherwise. Object dtypes and compressed
    members are refused. Raises ValueError/OSError/zipfile.BadZipFile on any problem."""
    size = path.stat().st_size
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise ValueError(f"{len(members)} members")
        handle = archive.fp
        for info in members:
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise ValueError(f"member {info.filename!r} is compressed")
            if not info.filename.endswith(".npy"):
                raise ValueError(f"member {info.filename!r} is not an array")
            handle.seek(info.header_offset)
            fields = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
            if fields[0] != _LOCAL_SIGNATURE:
                raise zipfile.BadZipFile(f"bad local header for {info.filename!r}")
            start = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
            if start + info.file_size > size:
                raise ValueError(f"member {info.filename!r} runs past the end of the file")
            handle.seek(start)
            shape, fortran, dtype = read_npy_header(handle)
            header = handle.tell() - start
            if dtype.hasobject:
                raise ValueError(f"member {info.filename!r} holds Python objects")
            count = math.prod(shape)
            if count * dtype.itemsize != info.file_size - header:
                raise ValueError(f"member {info.filename!r} is not the size its header says")
            array = np.empty(shape, dtype, order="F" if fortran else "C")
            data = memoryview(array.reshape(-1, order="A")).cast("B") if count else b""
            if count and handle.readinto(data) != len(data):
                raise ValueError(f"member {info.filename!r} is truncated")
            handle.seek(start)
            crc = _crc32(data, _crc32(handle.read(header)))
            if crc != info.CRC:
                raise zipfile.BadZipFile(f"bad CRC-32 for member {info.filename!r}")
            arrays[info.filename[: -len(".npy")]] = array
    return arrays


def read_meta(path: Path) -> dict:
    """The `__meta__` record of a cache file, reading only that member (for reports and imports)."""
    with zipfile.ZipFile(path) as archive, archive.open("__meta__.npy") as member:
        shape, _, dtype = read_npy_header(member)
        if dtype != np.uint8 or len(shape) != 1 or shape[0] > 65536:
            raise ValueError("not a cache metadata record")
        return json.loads(member.read(shape[0]).decode())


class ArrayCache:
    """Named groups of numpy arrays keyed by (content hash, model identity)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir() / "embeddings"
        self._warned: set[str] = set()  # causes already logged once (read-only, full disk...)
        self._unusable: set[Path] = set()  # files known bad that could not be removed

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def path(self, kind: str, model_id: str, content_hash: str) -> Path:
        return self.root / kind / _slug(model_id) / content_hash[:2] / f"{content_hash}.npz"

    def load(self, kind: str, model_id: str, content_hash: str) -> dict[str, np.ndarray] | None:
        """The stored arrays, or None when absent or unreadable (an unreadable file is removed)."""
        path = self.path(kind, model_id, content_hash)
        if path in self._unusable or not path.is_file():
            return None
        try:
            arrays = read_npz(path)
            meta = json.loads(arrays.pop("__meta__").tobytes().decode())
            if meta.get("version") != FORMAT_VERSION or meta.get("model_id") != model_id:
                raise ValueError(f"written for {meta.get('model_id')!r} v{meta.get('version')}")
            return arrays
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            reason = " ".join(str(error).split()) or type(error).__name__
            try:
                path.unlink(missing_ok=True)
            except OSError as cannot:
                self._unusable.add(path)
                self._warn_once(
                    f"stuck:{path}",
                    "unreadable cache file %s (%s) cannot be removed (%s): recomputing in memory",
                    path,
                    reason,
                    cannot.strerror,
                )
                return None
            log.warning("discarding unreadable cache file %s: %s", path, reason)
            return None

    def save(
        self, kind: str, model_id: str, content_hash: str, arrays: dict[str, np.ndarray]
    ) -> None:
        """Write atomically; a failure to write only costs a recomputation later."""
        path = self.path(kind, model_id, content_hash)
        if path in self._unusable:
            return  # already reported: the folder refused to remove its bad copy
        meta = json.dumps({"version": FORMAT_VERSION, "model_id": model_id}).encode()
        payload = {"__meta__": np.frombuffer(meta, dtype=np.uint8), **arrays}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_with(path, lambda handle: write_npz(handle, payload))
        except OSError as error:
            self._warn_once(
                f"write:{error.errno}",
                "could not write to the cache %s (%s): embeddings are computed in memory",
                self.root,
                error.strerror or error,
            )

    def contains(self, kind: str, model_id: str, content_hash: str) -> bool:
        return self.path(kind, model_id, content_hash).is_file()
