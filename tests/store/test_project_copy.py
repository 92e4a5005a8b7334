"""`annotator project copy` copies every table (issue 22): the review queue included, and a table
added later cannot be forgotten (the tables are enumerated from sqlite_master, not listed here)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from annotator.cli import main
from annotator.store import Project, extras
from annotator.store.copy import _TABLES, NOT_COPIED
from annotator.store.embeddings import EmbeddingTable
from annotator.store.proposals import NewProposal, ProposalStore


def _mask(y: int, x: int) -> np.ndarray:
    mask = np.zeros((24, 32), bool)
    mask[y : y + 5, x : x + 7] = True
    return mask


def _full_project(folder: Path) -> Path:
    """A project with rows in every table, and a change log with updates and deletes."""
    folder.mkdir()
    with Project.open_folder(folder) as project:
        images = [project.add_image(f"im{k}.png", 32, 24) for k in range(3)]
        anns = [
            project.add_annotation(images[k % 3], _mask(k, k), f"class {k % 2}", 0.5, {"k": k})
            for k in range(6)
        ]
        project.update_annotation(anns[0], category="class 1")
        project.delete_annotation(anns[5])  # the sequence stays past it
        table = EmbeddingTable(project)
        for ann in anns[:3]:
            table.put("annotation", ann, "clip|pool", np.arange(4, dtype=np.float32) + ann)
        table.put("image", images[0], "clip", np.ones(4, np.float32))
        box = extras.add_box(project, images[1], project.category_id("class 0"), (1, 2, 5, 6), 0.3)
        extras.set_extra(project, "box", box, {"note": "kept"})
        extras.set_extra(project, "image", images[0], {"flags": {"ok": True}})
        queue = ProposalStore(project)
        found = [NewProposal(_mask(3, 4), "dog", 0.9), NewProposal(_mask(10, 10), "cat", 0.4)]
        queue.finish_image(images[0], "run-a", "proposals", found)
        queue.finish_image(images[1], "run-a", "proposals", [])
        pending = queue.proposals()
        queue.accept(pending[0].id)
        # a sequence whose frames are the three images, one track with a pending and an accepted
        # mask (issue 25's tables; rows written directly: the copy must carry them verbatim)
        with project.transaction():
            project.write(
                "INSERT INTO sequences (source, kind, frame_count, width, height, fps, added)"
                " VALUES ('clip.mp4', 'video', 3, 32, 24, 25.0, '2026-12-06T00:00:00Z')"
            )
            (seq,) = project.read("SELECT id FROM sequences")[0]
            for k, image in enumerate(images):
                project.write(
                    "INSERT INTO sequence_frames (image_id, sequence_id, frame_index)"
                    " VALUES (?, ?, ?)",
                    (image, seq, k),
                )
            project.write(
                "INSERT INTO tracks (sequence_id, object_id, category, prompts)"
                " VALUES (?, 1, 'dog', '{}')",
                (seq,),
            )
            (track,) = project.read("SELECT id FROM tracks")[0]
            project.write(
                "INSERT INTO track_proposals (proposal_id, track_id, frame_index) VALUES (?, ?, 0)",
                (pending[1].id, track),
            )
            project.write(
                "INSERT INTO track_annotations (annotation_id, track_id, frame_index)"
                " VALUES (?, ?, 1)",
                (anns[1], track),
            )
        path = project.path
    return Path(path)


def _tables(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        con.close()


def _rows(db: Path, table: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(f"SELECT * FROM {table}").fetchall()
        columns = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
    finally:
        con.close()
    if table == "embeddings":  # its own row id is not part of the data (the vector's key is)
        rows = [r[1:] for r in rows]
        columns = columns[1:]
    return sorted(rows, key=repr), columns


def _sequences(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    finally:
        con.close()


def _assert_same_tables(source: Path, copy: Path) -> None:
    tables = _tables(source)
    unknown = [t for t in tables if t not in _TABLES and t not in NOT_COPIED]
    assert not unknown, f"tables project copy does not know about: {unknown}"
    for table in tables:
        if table in NOT_COPIED:
            continue
        expected, columns = _rows(source, table)
        got, got_columns = _rows(copy, table)
        assert expected, f"{table}: the test project must have rows in every table"
        assert columns == got_columns and got == expected, table
    before, after = _sequences(source), _sequences(copy)
    assert all(after.get(name, 0) >= seq for name, seq in before.items()), (before, after)
    assert set(_tables(copy)) == set(tables)


def test_every_table_is_copied_sqlite_to_sqlite(tmp_path, capsys):
    db = _full_project(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    assert main(["project", "copy", str(tmp_path / "src"), str(tmp_path / "dst")]) == 0, (
        capsys.readouterr().err
    )
    copy = tmp_path / "dst" / ".annotator" / "project.db"
    _assert_same_tables(db, copy)
    with Project(copy) as project:  # the queue reads back: the pending proposal and done marks
        queue = ProposalStore(project)
        assert [p.category for p in queue.proposals()] == ["cat"]
        assert queue.done_images("run-a") == {1, 2}
        assert project.integrity_ok()


def test_every_table_survives_sqlite_postgresql_sqlite(tmp_path, pg_project_url, capsys):
    db = _full_project(tmp_path / "src")
    back = tmp_path / "back.db"
    assert main(["project", "copy", str(tmp_path / "src"), pg_project_url]) == 0, (
        capsys.readouterr().err
    )
    assert main(["project", "copy", pg_project_url, str(back)]) == 0, capsys.readouterr().err
    _assert_same_tables(db, back)


def test_a_table_nobody_copies_fails_the_check(tmp_path):
    """The enumeration is real: a table added to a project without a rule in copy.py is caught."""
    db = _full_project(tmp_path / "src")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE new_feature (x INTEGER)")
    con.execute("INSERT INTO new_feature VALUES (1)")
    con.commit()
    con.close()
    with pytest.raises(AssertionError, match="new_feature"):
        _assert_same_tables(db, db)


def test_copy_refuses_the_source_itself_and_a_non_project_file(tmp_path, capsys):
    db = _full_project(tmp_path / "src")
    before = db.read_bytes()
    assert main(["project", "copy", str(tmp_path / "src"), str(db)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert db.read_bytes() == before
    other = tmp_path / "notes.db"
    other.write_text("my notes\n")
    assert main(["project", "copy", str(tmp_path / "src"), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert other.read_text() == "my notes\n"
