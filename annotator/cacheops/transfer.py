"""Export the cached embeddings one folder (or project) needs into a tar; import such a tar.

The archive is for copying a cluster-filled cache onto an annotator's machine, so an import must be
safe against a hostile or damaged file: nothing is extracted by tarfile; every member must be a
regular file whose name is exactly a cache path (`embeddings/KIND/MODEL/HH/HASH.npz` or
`text/text-….npz`: no `..`, no absolute path, no link, no device), within size bounds, and a valid
uncompressed `.npz` whose metadata names the model its folder is for (no pickles, no compressed
members, hence no decompression bombs). Members are staged in a hidden folder inside the cache and
moved into place only when the whole archive has passed: an import is all or nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotator.atomic import atomic_open, fsync_dir
from annotator.cache import FORMAT_VERSION, model_folder, read_meta, read_npy_header
from annotator.cacheops.inventory import iter_files
from annotator.errors import AnnotatorError
from annotator.hashing import sha256_file

MANIFEST = "annotator-cache.json"
ARCHIVE_FORMAT = "annotator-cache-subset"
MEMBER = re.compile(
    r"^(?:embeddings/(?P<kind>[a-z0-9_]{1,32})/(?P<folder>[A-Za-z0-9._-]{1,80})/"
    r"(?P<prefix>[0-9a-f]{2})/(?P<hash>[0-9a-f]{64})\.npz"
    r"|text/text-[A-Za-z0-9._-]{1,160}\.npz)$"
)
MAX_MEMBER_BYTES = 2 << 30  # a text index of a huge vocabulary is the largest legitimate file
MAX_MEMBERS = 10_000_000
NPY_MEMBER = re.compile(r"^[A-Za-z0-9_]{1,64}\.npy$")


@dataclass
class ExportResult:
    images: int
    files: int
    size: int
    missing: int  # images with no cached embedding (of the selected models)


@dataclass
class ImportResult:
    added: int
    present: int  # already in the cache
    size: int


def _images_of(target: Path) -> tuple[Path, list[Path]]:
    """A project (its folder, or its .db file) or a plain folder -> (folder, its image files)."""
    from annotator.io.images import list_images

    folder = target.parent.parent if target.suffix == ".db" and target.is_file() else target
    if not folder.is_dir():
        raise AnnotatorError(f"{target}: not a folder or a project")
    return folder, list_images(folder)


def export_subset(
    target: Path,
    root: Path,
    out: Path,
    model: str | None = None,
    with_text: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write into `out` (a tar, atomically) the cache files of `target`'s images (by content hash),
    for every cached model or those whose identity contains `model`, and optionally the text
    indexes. Images are hashed, never decoded."""
    from annotator.cacheops.prune import matches

    folder, images = _images_of(target)
    if not images:
        raise AnnotatorError(f"{target}: no images found")
    from annotator.io.outputs import check_output

    # the one output check (issue 22): never the project database, any SQLite file, .annotator/,
    # or one of the images being exported
    check_output(out, False, [*images, folder / ".annotator" / "project.db"], [folder])
    hashes = {}
    for i, image in enumerate(images):
        try:
            hashes[sha256_file(image)] = image
        except OSError:
            pass
        if progress is not None:
            progress(i + 1, len(images))
    models: list[tuple[Path, str, str]] = []  # (folder, kind, folder name)
    embeddings = root / "embeddings"
    seen_folders = set()
    for file in iter_files(root):
        if file.kind == "text" or (file.kind, file.folder) in seen_folders:
            continue
        seen_folders.add((file.kind, file.folder))
        if matches(file, model, None, None):
            models.append((embeddings / file.kind / file.folder, file.kind, file.folder))
    members: list[tuple[Path, str]] = []
    covered = set()
    for folder, kind, name in models:
        for digest in hashes:
            path = folder / digest[:2] / f"{digest}.npz"
            if path.is_file() and not path.is_symlink():
                members.append((path, f"embeddings/{kind}/{name}/{digest[:2]}/{digest}.npz"))
                covered.add(digest)
    if with_text:
        for entry in sorted((root / "text").glob("text-*.npz")):
            if entry.is_file() and not entry.is_symlink() and MEMBER.match(f"text/{entry.name}"):
                members.append((entry, f"text/{entry.name}"))
    size = sum(path.stat().st_size for path, _ in members)
    manifest = json.dumps(
        {"format": ARCHIVE_FORMAT, "version": 1, "files": len(members), "bytes": size},
        sort_keys=True,
    ).encode()
    if out.exists() and out.is_dir():
        raise AnnotatorError(f"{out}: is a folder; give a file name for the archive")
    if not out.parent.is_dir():
        raise AnnotatorError(f"{out.parent}: no such folder")
    mode = "w:gz" if out.name.endswith((".tar.gz", ".tgz")) else "w"
    with atomic_open(out, "wb") as handle, tarfile.open(fileobj=handle, mode=mode) as tar:
        tar.addfile(_info(MANIFEST, len(manifest), time.time()), io.BytesIO(manifest))
        for path, name in members:
            st = path.stat()
            with open(path, "rb") as data:
                tar.addfile(_info(name, st.st_size, st.st_mtime), data)
    return ExportResult(len(images), len(members), size, len(hashes) - len(covered))


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


MAX_EXTENDED_HEADER = 64 << 10
"""Largest pax or GNU long-name header read (ours are under 1 KiB: a long member name, an mtime)."""


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses, from the 512-byte header alone, an extended header (pax, GNU long
    name) larger than MAX_EXTENDED_HEADER and GNU sparse members: tarfile reads an extended header
    whole into memory, so a small .tar.gz whose header declares gigabytes (of well-compressed zeros)
    would be buffered before any size check of ours could run."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise tarfile.HeaderError("a GNU sparse member (never written by `cache export`)")
        extended = (
            tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
            tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
        )  # fmt: skip
        if self.type in extended and self.size > MAX_EXTENDED_HEADER:
            raise tarfile.HeaderError(
                f"an extended header of {self.size} bytes (at most {MAX_EXTENDED_HEADER})"
            )
        return super()._proc_member(tarfile_)


def _hostile(archive: Path, name: str, why: str) -> AnnotatorError:
    return AnnotatorError(f"{archive}: member {name!r} {why}; nothing was imported")


def import_subset(archive: Path, root: Path, max_bytes: int | None = None) -> ImportResult:
    """Add an exported archive's files to the cache at `root` (all or nothing; see module doc).
    `max_bytes`: refuse archives whose files add up to more (default: the free disk space)."""
    if not archive.is_file():
        raise AnnotatorError(f"{archive}: no such file")
    root.mkdir(parents=True, exist_ok=True)
    if max_bytes is None:
        max_bytes = shutil.disk_usage(root).free
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    staged: list[tuple[Path, str, float]] = []
    total = 0
    expected: int | None = None
    try:
        try:
            tar = tarfile.open(archive, mode="r|*", tarinfo=_BoundedTarInfo)
        except (tarfile.TarError, OSError) as error:
            raise AnnotatorError(f"{archive}: not a tar archive ({error})") from None
        with tar:
            names: set[str] = set()
            for index, member in enumerate(_members(tar, archive)):
                name = member.name
                if index == 0:
                    if name != MANIFEST or not member.isreg() or member.size > 4096:
                        raise AnnotatorError(
                            f"{archive}: not an archive written by `annotator cache export`"
                        )
                    expected = _check_manifest(archive, tar.extractfile(member).read(4096))
                    continue
                if index > MAX_MEMBERS or (expected is not None and index > expected):
                    raise _hostile(
                        archive, name, "is past the number of files the archive declares"
                    )
                if not member.isreg() or member.issparse():
                    raise _hostile(
                        archive, name, "is not a regular file (a link, folder or device)"
                    )
                if not MEMBER.match(name):
                    raise _hostile(archive, name, "is not a cache file path")
                if name in names:
                    raise _hostile(archive, name, "appears twice")
                names.add(name)
                if member.size > MAX_MEMBER_BYTES:
                    raise _hostile(archive, name, f"is larger than {MAX_MEMBER_BYTES >> 30} GiB")
                total += member.size
                if total > max_bytes:
                    raise AnnotatorError(
                        f"{archive}: its files add up to more than {max_bytes} bytes "
                        "(the free space, or --max-size); nothing was imported"
                    )
                target = staging / f"{len(staged)}.npz"
                _copy_exactly(tar.extractfile(member), target, member.size, archive, name)
                problem = _check_npz(target, name)
                if problem:
                    raise _hostile(archive, name, problem)
                staged.append((target, name, min(float(member.mtime), time.time())))
        if not names and expected is None:
            raise AnnotatorError(f"{archive}: empty archive")
        if expected != len(staged):
            raise AnnotatorError(
                f"{archive}: truncated: {len(staged)} of its {expected} files are there; "
                "nothing was imported"
            )
        added = present = 0
        for target, name, mtime in staged:
            final = root / name
            if final.is_file():
                present += 1
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            os.utime(target, (mtime, mtime))
            os.replace(target, final)
            fsync_dir(final.parent)
            added += 1
        return ImportResult(added, present, total)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _members(tar: tarfile.TarFile, archive: Path):
    try:
        yield from tar
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as error:
        raise AnnotatorError(f"{archive}: damaged tar archive ({error})") from None


def _check_manifest(archive: Path, data: bytes) -> int:
    """The number of files the archive says it holds (to detect a truncated copy)."""
    try:
        manifest = json.loads(data.decode())
        files = manifest.get("files")
        ok = (
            manifest.get("format") == ARCHIVE_FORMAT
            and manifest.get("version") == 1
            and isinstance(files, int)
            and 0 <= files <= MAX_MEMBERS
        )
    except (ValueError, AttributeError):
        ok = False
    if not ok:
        raise AnnotatorError(f"{archive}: not an archive written by `annotator cache export`")
    return files


def _copy_exactly(source, target: Path, size: int, archive: Path, name: str) -> None:
    remaining = size
    with open(target, "wb") as out:
        while remaining:
            try:
                block = source.read(min(remaining, 1 << 20))
            except (tarfile.TarError, EOFError, OSError) as error:
                raise AnnotatorError(f"{archive}: damaged at {name!r} ({error})") from None
            if not block:
                raise AnnotatorError(f"{archive}: truncated at {name!r}; nothing was imported")
            out.write(block)
            remaining -= len(block)


def _check_npz(path: Path, name: str) -> str:
    """'' when `path` is a cache file fit for `name`'s place; else what is wrong with it."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not infos or len(infos) > 256:
                return "is not a cache file (member count)"
            for info in infos:
                if not NPY_MEMBER.match(info.filename):
                    return "is not a cache file (member names)"
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
                    return "is not a cache file (compressed or oversized members)"
                with archive.open(info) as member:
                    _, _, dtype = read_npy_header(member)
                    if dtype.hasobject:
                        return "holds Python objects (pickles are never loaded)"
            if archive.testzip() is not None:
                return "is damaged (CRC mismatch)"
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, SyntaxError):
        return "is not a readable .npz file"
    match = MEMBER.match(name)
    if match and match.group("kind"):
        if match.group("prefix") != match.group("hash")[:2]:
            return "is filed under the wrong hash prefix"
        try:
            meta = read_meta(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, SyntaxError):
            return "has no readable cache metadata"
        if meta.get("version") != FORMAT_VERSION:
            return f"is cache format {meta.get('version')!r}, not {FORMAT_VERSION}"
        if model_folder(str(meta.get("model_id"))) != match.group("folder"):
            return "is filed under another model's folder than its metadata names"
    return ""
