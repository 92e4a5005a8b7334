"""Where a command may write, and folder outputs that appear whole or not at all (ADR 0017).

One check for every writer (`export` in each format, `--upright-copies`, `cache export`,
`project copy`): `output_problem` says why a target must not be written, or None. Refused:
- anything inside a project's `.annotator/` folder and any existing SQLite file (the store's own
  check, `io.targets.export_target_problem`);
- an input: the project's database, its images folder (or a folder holding it), one of its image
  files, or a folder that holds one of them;
- a folder target that is a symbolic link (a file target is written through, ADR 0008: the
  checks above apply to the file it points to);
- for a folder output, an existing file, or a non-empty folder that is not an earlier export of
  ours (replacing it would delete the user's files).

Folder outputs are staged (`staged_folder`): built in a hidden sibling `.NAME.export-XXXXXXXX.tmp`
that carries a marker `.annotator-export` saying `"complete": false`, the marker is rewritten
`true` at the end, and the folder is then renamed into place (an older export is swapped out with
one `renameat2(RENAME_EXCHANGE)` where Linux offers it). A kill -9 at any point leaves the old
target or the new one whole; what it leaves behind is a hidden `.tmp` folder, removed by the next
export to the same target, which `import` refuses (`check_not_partial`). While a folder is staged,
every file a format writes must resolve inside it (`check_inside`), so no name with `..` and no
symbolic link can carry a write out of the target.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import ctypes.util
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from annotator.errors import AnnotatorError, ProjectError
from annotator.io.files import show_path

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MARKER = ".annotator-export"  # JSON, no .json: labelme reads every *.json
_STAGE = re.compile(r"\.(?P<name>.+)\.(?:export|old)-[0-9a-f]{8}\.tmp")
_CURRENT: contextvars.ContextVar[tuple[Path, Path] | None] = contextvars.ContextVar(
    "annotator_staged_folder", default=None
)


# ------------------------------------------------------------------------------------ the check
def _real(path: str | os.PathLike) -> Path:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return Path(os.path.abspath(path))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def project_inputs(project: object) -> tuple[list[Path], list[Path]]:
    """(files, folders) a command must never write over: the project's database and image files,
    its images folder."""
    files: list[Path] = []
    folders: list[Path] = []
    path = getattr(project, "path", None)
    if path is not None and not getattr(project, "url", None):
        files.append(Path(path))
    folder = getattr(project, "folder", None)
    if folder is not None:
        folders.append(Path(folder))
        images = getattr(project, "images", None)
        if callable(images):
            files.extend(Path(folder) / record.file_name for record in images())
    return files, folders


def output_problem(
    path: str | os.PathLike,
    folder: bool = False,
    files: Iterable[str | os.PathLike] = (),
    folders: Iterable[str | os.PathLike] = (),
) -> str | None:
    """Why `path` must not be written (one line without the path), or None. `folder`: the output
    is a folder; `files` and `folders`: the command's inputs, never to be replaced."""
    from annotator.io.targets import export_target_problem

    try:
        os.fspath(path)
        if "\x00" in os.fspath(path):
            return "the path contains a NUL byte"
    except TypeError:
        return "not a path"
    problem = export_target_problem(path, single_file=not folder)
    if problem is not None:
        return problem
    if folder and os.path.islink(path):  # a file target is written through (ADR 0008)
        return "is a symbolic link; give the real folder as the output"
    target = _real(path)
    for entry in folders:
        source = _real(entry)
        if _inside(source, target):
            return (
                "is (or holds) the images folder the command reads; writing there would "
                "replace the user's pictures; choose another output"
            )
        if source in target.parents and target.exists():
            from annotator.io.images import IMAGE_EXTENSIONS

            if target.suffix.lower() in IMAGE_EXTENSIONS:
                return "is one of the images the command reads; choose another output"
    for entry in files:
        source = _real(entry)
        if source == target:
            return "is one of the command's inputs (an image or the project database)"
        if folder and target in source.parents:
            return "holds the command's inputs (images or the project database)"
    if folder:
        if os.path.lexists(path) and not os.path.isdir(path):
            return "is a file; a folder is written here; choose a folder"
        if os.path.isdir(path) and not _replaceable(Path(path)):
            return (
                "is a folder that holds other files and is not an earlier export; "
                "choose a new or empty folder"
            )
    return None


def check_output(
    path: str | os.PathLike,
    folder: bool = False,
    files: Iterable[str | os.PathLike] = (),
    folders: Iterable[str | os.PathLike] = (),
) -> None:
    """`output_problem` as a one-line ProjectError naming the path."""
    problem = output_problem(path, folder, files, folders)
    if problem is not None:
        raise ProjectError(f"{show_path(path)}: {problem}")


def _replaceable(folder: Path) -> bool:
    """An empty folder, or one whose marker says an export of ours wrote it."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return not names or MARKER in names and _marker(folder) is not None


def _marker(folder: Path) -> dict | None:
    from annotator.io.files import open_regular

    try:
        with open_regular(folder / MARKER) as handle:
            data = json.loads(handle.read(4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("writer") == "annotator" else None


# ---------------------------------------------------------------------------- staged folders
def check_inside(path: str | os.PathLike) -> None:
    """While a folder is staged: refuse a write that would land outside it (`..` in a stored
    name, a symbolic link); a no-op otherwise."""
    current = _CURRENT.get()
    if current is None:
        return
    stage = current[0]
    if not _inside(_real(Path(path).parent) / Path(path).name, stage) or os.path.islink(path):
        raise ProjectError(
            f"{show_path(path)}: would be written outside the export folder; refusing"
        )


def published(path: str | os.PathLike) -> Path:
    """Where a path inside the folder being staged will be once published (a YOLO data.yaml
    names its own folder); unchanged outside staging."""
    current = _CURRENT.get()
    path = Path(path)
    if current is None:
        return path
    stage, final = current
    try:
        return final / path.relative_to(stage)
    except ValueError:
        return path


def _write_marker(folder: Path, complete: bool, kind: str) -> None:
    from annotator.atomic import atomic_write_text

    atomic_write_text(
        folder / MARKER,
        json.dumps({"writer": "annotator", "kind": kind, "complete": complete}) + "\n",
    )


def _lock(fd: int, wait: bool) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def clean_stale_stages(target: Path) -> list[Path]:
    """Remove the hidden staging folders that killed writers of `target` left (only unlocked ones:
    a live writer holds a lock on its folder)."""
    removed: list[Path] = []
    parent = target.parent
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        match = _STAGE.fullmatch(name)
        if not match or match["name"] != target.name:
            continue
        candidate = parent / name
        try:
            fd = os.open(candidate, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            if _lock(fd, wait=False):
                shutil.rmtree(candidate, ignore_errors=True)
                removed.append(candidate)
        finally:
            os.close(fd)
    return removed


_RENAME_EXCHANGE = 2
_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    global _libc
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            return False
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _publish(stage: Path, target: Path) -> None:
    from annotator.atomic import fsync_dir

    try:
        os.rename(stage, target)  # no target, or an empty folder: replaced in one step
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        if not _replaceable(target):
            raise ProjectError(
                f"{show_path(target)}: a folder with other files appeared there meanwhile; "
                "the export was not written"
            ) from None
        if _exchange(stage, target):
            shutil.rmtree(stage, ignore_errors=True)  # now the old export
        else:  # two renames: a kill between them leaves the old export at a hidden name
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}.tmp"
            os.rename(target, old)
            os.rename(stage, target)
            shutil.rmtree(old, ignore_errors=True)
    fsync_dir(target.parent)


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike, kind: str = "export") -> Iterator[Path]:
    """Build a folder output in a hidden sibling and publish it whole at the end (see module
    docstring); yields the folder to write into. On any error the sibling is removed and
    `target` is untouched."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ProjectError(
            f"{show_path(target.parent)}: cannot create the folder ({error.strerror or error})"
        ) from None
    parent = _real(target.parent)
    final = parent / target.name
    clean_stale_stages(final)
    stage = parent / f".{target.name}.export-{uuid.uuid4().hex[:8]}.tmp"
    try:
        os.mkdir(stage)
        fd = os.open(stage, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        raise ProjectError(
            f"{show_path(target)}: cannot write the export ({error.strerror or error})"
        ) from None
    token = _CURRENT.set((stage, final))
    try:
        _lock(fd, wait=True)
        _write_marker(stage, False, kind)
        yield stage
        _write_marker(stage, True, kind)
        _publish(stage, final)
    except OSError as error:
        shutil.rmtree(stage, ignore_errors=True)
        raise ProjectError(
            f"{show_path(target)}: cannot write the export ({error.strerror or error})"
        ) from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        _CURRENT.reset(token)
        os.close(fd)


# --------------------------------------------------------------------------------- import side
def check_not_partial(path: str | os.PathLike) -> None:
    """Refuse to import an export that did not finish: a staging folder (or a file in one), or a
    folder whose marker says incomplete."""
    p = Path(os.path.abspath(path))
    for part in (p, *p.parents):
        if _STAGE.fullmatch(part.name):
            raise AnnotatorError(
                f"{show_path(path)}: an export that did not finish (a killed or failed export "
                "leaves this hidden folder); export again"
            )
    folder = p if p.is_dir() else p.parent
    data = _marker(folder)
    if data is not None and data.get("complete") is not True:
        raise AnnotatorError(f"{show_path(folder)}: an export that did not finish; export again")


__all__ = [
    "MARKER",
    "check_inside",
    "check_not_partial",
    "check_output",
    "clean_stale_stages",
    "output_problem",
    "project_inputs",
    "published",
    "staged_folder",
]
