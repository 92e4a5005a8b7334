"""Issue 22, outputs: one check for every command that writes, and outputs that appear whole.

- The one output check (`annotator/io/outputs.py`): no command writes into `.annotator/`, over an
  SQLite file, over its inputs (the images folder, an image, the database) or through a symbolic
  link out of a folder target — `export` in every format, `--upright-copies`, `cache export`,
  `project copy`.
- kill -9 at controlled points (`tests/kill_driver.py` kills the process at its N-th file-system
  step) of `export` (every format), `cache export`, `import` and `project copy` leaves the old state
  or the complete new one, and `import` never reads a half-written export.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from annotator.cli import main
from annotator.io.outputs import MARKER
from annotator.store import Project
from tests.formats_data import make_project

ROOT = Path(__file__).resolve().parents[2]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("annotator: error: "), err
    assert "Traceback" not in err
    return err


def _tree(folder: Path) -> dict[str, bytes]:
    if folder.is_file():
        return {"": folder.read_bytes()}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


# ------------------------------------------------------------------------ the one output check
@pytest.fixture
def project_folder(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    make_project(folder).close()
    return folder


def test_cache_export_never_replaces_a_database_or_an_image(project_folder, tmp_path, capsys):
    db = project_folder / ".annotator" / "project.db"
    other_db = tmp_path / "other.db"
    sqlite3.connect(other_db).execute("CREATE TABLE t (x)").connection.close()
    image = project_folder / "a.png"
    for target in (db, other_db, image, project_folder / ".annotator" / "new.tar", project_folder):
        before = target.read_bytes() if target.is_file() else None
        code = main(["cache", "export", str(project_folder), "-o", str(target), "--cache-dir",
                     str(tmp_path / "cache")])  # fmt: skip
        assert code == 2, target
        _one_line_error(capsys)
        if before is not None:
            assert target.read_bytes() == before
    with Project(db) as project:
        assert project.integrity_ok() and project.annotations()


def test_upright_copies_never_over_the_images(project_folder, tmp_path, capsys):
    originals = _tree(project_folder)
    for target in (project_folder, project_folder.parent, project_folder / "sub"):
        code = main(["export", str(project_folder), "-o", str(tmp_path / "x.json"),
                     "--upright-copies", str(target)])  # fmt: skip
        assert code == 2, target
        assert re.search("images folder|inputs|other files", _one_line_error(capsys))
    assert _tree(project_folder) == originals
    assert not (tmp_path / "x.json").exists()
    # a new folder works, and an earlier copy is replaced whole
    upright = tmp_path / "upright"
    for _ in range(2):
        assert main(["export", str(project_folder), "-o", str(tmp_path / "x.json"),
                     "--upright-copies", str(upright)]) == 0  # fmt: skip
    assert sorted(_tree(upright)) == ["a.png", "c.png", "sub/b.png"]


@pytest.mark.parametrize("fmt", ["yolo", "voc", "labelme", "masks", "cvat"])
def test_folder_exports_refuse_inputs_other_folders_and_symlinks(
    fmt, project_folder, tmp_path, capsys
):
    originals = _tree(project_folder)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    targets = [project_folder, project_folder / "sub", project_folder / ".annotator", mine, link,
               a_file, project_folder.parent]  # fmt: skip
    for target in targets:
        assert main(["export", str(project_folder), "--format", fmt, "-o", str(target)]) == 2
        _one_line_error(capsys)
    assert _tree(project_folder) == originals
    assert (mine / "notes.txt").read_text() == "keep me" and list(elsewhere.iterdir()) == []
    assert a_file.read_text() == "x"
    # an empty folder and an earlier export of ours are fine
    empty = tmp_path / "empty"
    empty.mkdir()
    for _ in range(2):
        assert main(["export", str(project_folder), "--format", fmt, "-o", str(empty)]) == 0
    assert (empty / MARKER).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_no_write_leaves_a_staged_folder(tmp_path):
    """Stored names cannot hold `..` (the store refuses them); as a second guard every format write
    inside a staged folder must resolve inside it, symbolic links included."""
    from annotator.errors import ProjectError
    from annotator.io.formats._common import write_atomic
    from annotator.io.outputs import staged_folder

    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ProjectError, match="outside the export folder"):
        with staged_folder(tmp_path / "out") as stage:
            write_atomic(stage / "ok.txt", b"fine")
            write_atomic(stage / ".." / "escape.txt", b"no")
    with pytest.raises(ProjectError, match="outside the export folder"):
        with staged_folder(tmp_path / "out") as stage:
            (stage / "sub").symlink_to(tmp_path / "elsewhere")
            write_atomic(stage / "sub" / "escape.txt", b"no")
    assert not (tmp_path / "escape.txt").exists() and not list((tmp_path / "elsewhere").iterdir())
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_import_refuses_a_half_written_export(project_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(project_folder), "--format", "labelme", "-o", str(out)]) == 0
    capsys.readouterr()
    marker = json.loads((out / MARKER).read_text())
    assert marker["complete"] is True
    (out / MARKER).write_text(json.dumps({**marker, "complete": False}))
    new = tmp_path / "new"
    new.mkdir()
    assert main(["import", str(out), "--project", str(new)]) == 2
    assert "did not finish" in _one_line_error(capsys)
    stage = tmp_path / ".out.export-0123abcd.tmp"
    shutil.copytree(out, stage)
    assert main(["import", str(stage), "--project", str(new)]) == 2
    assert "did not finish" in _one_line_error(capsys)
    assert (
        not (new / ".annotator" / "project.db").exists()
        or not Project(new / ".annotator" / "project.db").annotations()
    )


# ---------------------------------------------------------------------------------- kill -9
def _run(kill_at: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tests.kill_driver", str(kill_at), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def _steps(*args: str) -> int:
    done = _run(0, *args)
    assert done.returncode == 0, done.stderr
    return int(re.search(r"steps=(\d+)", done.stderr)[1])


def _points(total: int) -> list[int]:
    return sorted({1, max(1, total // 3), max(1, 2 * total // 3), max(1, total - 1), total})


def _normalised(tree: dict[str, bytes], folder: Path) -> dict[str, bytes]:
    out = {}
    for name, data in tree.items():
        data = data.replace(str(folder).encode(), b"OUT")
        out[name] = re.sub(rb'"date_created": ?"[^"]*"', b"", data)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "labelme", "masks", "cvat"])
def test_kill_9_during_export_leaves_the_old_export_or_the_new_one(fmt, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    make_project(folder).close()
    name = "out.json" if fmt == "coco" else "out"
    target = tmp_path / "x" / name
    saved = tmp_path / "saved"
    args = ("export", folder, "--format", fmt, "-o", target)
    assert main([str(a) for a in args]) == 0
    old = _normalised(_tree(target), target)
    (shutil.copy if target.is_file() else shutil.copytree)(target, saved)
    with Project.open_folder(folder) as project:  # the new state differs
        project.delete_annotation(project.annotations()[0].id)
    total = _steps(*args)
    new = _normalised(_tree(target), target)
    assert new != old
    seen = set()
    for point in _points(total):
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        (shutil.copy if saved.is_file() else shutil.copytree)(saved, target)
        done = _run(point, *args)
        assert done.returncode == -9, (point, done.stderr)
        state = _normalised(_tree(target), target)
        assert state in (old, new), f"kill at step {point} of {total} left a mixed {fmt} export"
        seen.add("old" if state == old else "new")
        # whatever a killed export left beside it is never imported as complete
        for leftover in target.parent.glob(".out*"):
            if leftover.is_dir():
                assert main(["import", str(leftover), "--project", str(tmp_path / "p.db")]) == 2
    assert seen == {"old", "new"}  # the kill points reach both sides of the publish


@pytest.mark.slow
def test_kill_9_during_import_and_project_copy_is_all_or_nothing(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    make_project(folder).close()
    dataset = tmp_path / "data.json"
    assert main(["export", str(folder), "-o", str(dataset)]) == 0
    project = tmp_path / "imported.db"
    args = ("import", dataset, "--images", folder, "--project", project)
    total = _steps(*args)
    with Project(project) as p:
        full = len(p.annotations())
    assert full
    for point in _points(total)[:-1]:
        project.unlink(missing_ok=True)
        for side in ("-wal", "-shm"):
            Path(f"{project}{side}").unlink(missing_ok=True)
        assert _run(point, *args).returncode == -9
        if project.exists():
            with Project(project) as p:
                assert len(p.annotations()) in (0, full) and p.integrity_ok()
    copy_args = ("project", "copy", folder, tmp_path / "copy.db")
    total = _steps(*copy_args)
    reference = (tmp_path / "copy.db").read_bytes()
    assert reference
    for point in _points(total)[:-1]:
        (tmp_path / "copy.db").unlink(missing_ok=True)
        assert _run(point, *copy_args).returncode == -9
        if (tmp_path / "copy.db").exists():
            with Project(tmp_path / "copy.db") as p:
                assert len(p.annotations()) == full and p.integrity_ok()
        # the hidden half-built copy is removed by the next copy
        assert main([str(a) for a in copy_args]) in (0, 2)
        assert not [p for p in tmp_path.iterdir() if ".copy-" in p.name]


@pytest.mark.slow
def test_kill_9_during_cache_export_leaves_the_old_archive_or_the_new_one(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    make_project(folder).close()
    archive = tmp_path / "cache.tar"
    args = ("cache", "export", folder, "-o", archive, "--cache-dir", tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    total = _steps(*args)
    new = archive.read_bytes()
    for point in _points(total):
        archive.write_bytes(b"OLD")
        assert _run(point, *args).returncode == -9
        data = archive.read_bytes()
        if data != b"OLD":  # else the complete new archive (its header times differ per run)
            assert len(data) == len(new)
            with tarfile.open(archive) as tar:
                assert [m.name for m in tar.getmembers()] == ["annotator-cache.json"]


# ------------------------------------------------------------------------------ failed writes
def _limited(limit: int, *args) -> subprocess.CompletedProcess:
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it: EFBIG

    return subprocess.run(
        [sys.executable, "-m", "annotator", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=120,
        preexec_fn=cap,
    )


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "labelme", "masks", "cvat"])
def test_a_write_failing_half_way_is_one_line_and_keeps_the_old_export(fmt, tmp_path):
    """A full disk simulated with RLIMIT_FSIZE (every write past 300 bytes fails with EFBIG)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    make_project(folder).close()
    target = tmp_path / ("out.json" if fmt == "coco" else "out")
    assert main(["export", str(folder), "--format", fmt, "-o", str(target)]) == 0
    old = _tree(target)
    done = _limited(300, "export", folder, "--format", fmt, "-o", target)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert _tree(target) == old
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_read_only_target_folder_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "photos"
    folder.mkdir()
    make_project(folder).close()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for fmt in ("coco", "labelme"):
            out = locked / ("x.json" if fmt == "coco" else "x")
            done = _limited(2**40, "export", folder, "--format", fmt, "-o", out)
            assert done.returncode == 2 and "Traceback" not in done.stderr
    finally:
        locked.chmod(0o700)


def test_every_other_writer_takes_the_same_check(project_folder, tmp_path, capsys):
    """`eval --json/--plot`, `tag -o` and `vocab add/remove --vocabulary` write files too:
    refused before any model is loaded."""
    db = project_folder / ".annotator" / "project.db"
    before = db.read_bytes()
    masks = tmp_path / "masks"
    masks.mkdir()
    for argv in (
        ["eval", "clicks", "--images", str(project_folder), "--masks", str(masks), "--json", str(db)],
        ["eval", "labels", "--images", str(project_folder), "--masks", str(masks), "--plot",
         str(project_folder / "a.png")],
        ["eval", "labels", "--images", str(project_folder), "--masks", str(masks), "--json",
         str(masks)],
        ["tag", str(project_folder), "--seed-labels", "3", "-o", str(db)],
        ["vocab", "add", "cat", "--vocabulary", str(db)],
        ["vocab", "add", "cat", "--vocabulary", str(project_folder / ".annotator" / "v.txt")],
        ["tag", str(project_folder / "a.png"), "--seed-labels", "3", "-o",
         str(project_folder / "a.png")],
    ):  # fmt: skip
        assert main(argv) == 2, argv
        assert re.search("project files|images|inputs|folder", _one_line_error(capsys)), argv
    assert db.read_bytes() == before


def test_without_rename_exchange_an_earlier_export_is_still_replaced_whole(
    project_folder, tmp_path, monkeypatch
):
    """Where renameat2(RENAME_EXCHANGE) is missing, two renames publish the new folder."""
    from annotator.io import outputs

    out = tmp_path / "out"
    assert main(["export", str(project_folder), "--format", "masks", "-o", str(out)]) == 0
    (out / "stale-from-before.txt").write_text("old")
    calls = []
    monkeypatch.setattr(outputs, "_exchange", lambda a, b: calls.append((a, b)) or False)
    assert main(["export", str(project_folder), "--format", "masks", "-o", str(out)]) == 0
    assert calls and not (out / "stale-from-before.txt").exists() and (out / MARKER).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_rename_exchange_swaps_two_folders(tmp_path):
    from annotator.io.outputs import _exchange

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a")
    (b / "y").write_text("b")
    if not _exchange(a, b):
        pytest.skip("no renameat2 RENAME_EXCHANGE here")
    assert (a / "y").read_text() == "b" and (b / "x").read_text() == "a"
