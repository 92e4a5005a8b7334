"""Several annotators on one PostgreSQL project (ADR 0011): concurrent accepts, a killed client,
claims, the change feed, undo that never undoes someone else's change, authorship, and copying
projects between SQLite and PostgreSQL. Needs a PostgreSQL server (conftest.pg_url)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from annotator.cli import main
from annotator.errors import ProjectError
from annotator.io.formats.coco import export_coco
from annotator.store import Project
from annotator.store.backend import parse_url, translate
from annotator.store.copy import copy_project
from annotator.store.embeddings import ANNOTATION, EmbeddingTable

CLIENT = Path(__file__).resolve().parents[1] / "team_client.py"


def _mask(y: int = 2, x: int = 3, h: int = 24, w: int = 32) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[y : y + 5, x : x + 6] = True
    return mask


def _client(url: str, journal: Path, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CLIENT), url, "shared.png", str(count), str(journal)]
    )


def _journal(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


# ------------------------------------------------------------------------------- the dialect layer
def test_store_sql_is_translated_for_postgresql():
    text, values, returning = translate(
        "INSERT INTO images (id, file_name) VALUES (?, CAST(? AS TEXT))", (None, b"a/b.png")
    )
    assert text == "INSERT INTO images (id, file_name) VALUES (%s, %s) RETURNING id"
    assert values == [None, "a/b.png"] and returning
    text, _, returning = translate(
        "INSERT OR REPLACE INTO embeddings (kind, ref_id, model_id, vector) VALUES (?, ?, ?, ?)",
        ("image", 1, "m", b"\0"),
    )
    assert text.endswith(
        "ON CONFLICT (kind, model_id, ref_id) DO UPDATE SET vector = EXCLUDED.vector"
    )
    assert not returning
    assert translate("SELECT '%' || name FROM t WHERE a = ?", (1,))[0] == (
        "SELECT '%%' || name FROM t WHERE a = %s"
    )


@pytest.mark.parametrize(
    "url, problem",
    [
        ("postgresql://u@h:5432/?project=x", "names no database"),
        ("postgresql://u@h:5432/db?project=a;drop", "must be 1-48 letters"),
    ],
)
def test_bad_project_urls_are_one_line(url, problem):
    with pytest.raises(ProjectError, match=problem) as error:
        parse_url(url)
    assert "\n" not in str(error.value)


def test_a_password_never_shows_in_messages():
    assert "secret" not in parse_url("postgresql://u:secret@h:1/db?project=p").shown


def test_without_psycopg_a_url_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    code = main(
        ["export", "postgresql://u@127.0.0.1:1/db?project=p", "-o", str(tmp_path / "x.json")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert 'pip install "annotator[team]"' in err


def test_sqlite_has_the_same_team_api(tmp_path):
    with Project.open_folder(tmp_path) as project:
        image_id = project.add_image("a.png", 32, 24)
        project.claim(image_id)
        assert project.claims() == {}
        start = project.changes_since().token
        ann = project.add_annotation(image_id, _mask(), "cat")
        changes = project.changes_since(start)
        assert [a.id for a in changes.upserted] == [ann] and changes.images == {image_id}
        project.release(image_id)


# -------------------------------------------------------------------------------- several writers
def test_four_processes_accepting_200_each_give_800(pg_project_url, tmp_path):
    journals = [tmp_path / f"j{k}" for k in range(4)]
    clients = [_client(pg_project_url, journal, 200) for journal in journals]
    for client in clients:
        assert client.wait(timeout=300) == 0
    with Project(pg_project_url) as project:
        stored = project.annotations()
        assert len(stored) == 800 and project.integrity_ok()
        assert len(project.images()) == 1 and len(project.categories()) == 7
        assert sorted(a.id for a in stored) == sorted(i for j in journals for i in _journal(j))
        assert all(a.area == 16 and a.bbox[2:] == (4.0, 4.0) for a in stored)


def test_sigkill_of_one_client_loses_nothing_it_committed(pg_project_url, tmp_path):
    victim_journal, other_journal = tmp_path / "victim", tmp_path / "other"
    victim = _client(pg_project_url, victim_journal, 100000)
    other = _client(pg_project_url, other_journal, 150)
    deadline = time.monotonic() + 120
    while len(_journal(victim_journal)) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert other.wait(timeout=300) == 0
    committed = _journal(victim_journal)
    assert len(committed) >= 40
    with Project(pg_project_url) as project:
        assert project.integrity_ok()
        ids = {a.id for a in project.annotations()}
    assert set(committed) <= ids and set(_journal(other_journal)) <= ids
    # only the save in flight at the kill may have committed without being journaled
    assert len(ids) - len(committed) - 150 in (0, 1)


# ----------------------------------------------------------------------------------------- claims
def test_two_windows_claiming_one_image_exactly_one_gets_it(pg_project_url):
    with Project(pg_project_url) as setup:
        image_id = setup.add_image("a.png", 32, 24)
    windows = [Project(pg_project_url) for _ in range(2)]
    barrier, results = threading.Barrier(2), []

    def open_image(project: Project) -> None:
        barrier.wait()
        try:
            project.claim(image_id)
            results.append("got it")
        except ProjectError as error:
            results.append(str(error))

    threads = [threading.Thread(target=open_image, args=(w,)) for w in windows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert results.count("got it") == 1
        refusal = next(r for r in results if r != "got it")
        assert "a.png: being edited by" in refusal and "\n" not in refusal
        winner, loser = windows if image_id in windows[0]._claimed else windows[::-1]
        assert loser.claims() == {image_id: winner.holder}
        with pytest.raises(ProjectError, match="being edited by .*; not saved"):
            loser.add_annotation(image_id, _mask(), "cat")
        assert loser.annotations() == []
        winner.add_annotation(image_id, _mask(), "cat")  # the holder edits freely
        winner.release(image_id)
        loser.claim(image_id)  # free again once released
    finally:
        for window in windows:
            window.close()


def test_a_claim_ends_with_its_process(pg_project_url):
    with Project(pg_project_url) as project:
        image_id = project.add_image("a.png", 32, 24)
        code = (
            "import sys, time; sys.path.insert(0, sys.argv[2]);"
            "from annotator.store import Project;"
            "p = Project(sys.argv[1]); p.claim(int(sys.argv[3])); print('claimed', flush=True);"
            "time.sleep(600)"
        )
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                pg_project_url,
                str(Path(__file__).parents[2]),
                str(image_id),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "claimed"
            with pytest.raises(ProjectError, match="being edited by"):
                project.claim(image_id)
            assert list(project.claims()) == [image_id]
        finally:
            holder.kill()
            holder.wait()
        deadline = time.monotonic() + 10
        while project.claims() and time.monotonic() < deadline:
            time.sleep(0.05)
        project.claim(image_id)
        assert project.claims() == {}


# ------------------------------------------------------------------- change feed, undo, authorship
def test_others_accepted_work_shows_up_without_a_restart(pg_project_url, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_USER", "alice")
    alice = Project(pg_project_url)
    monkeypatch.setenv("ANNOTATOR_USER", "bob")
    bob = Project(pg_project_url)
    try:
        image_id = alice.add_image("a.png", 32, 24)
        token = bob.changes_since().token
        first = alice.add_annotation(image_id, _mask(), "cat")
        second = alice.add_annotation(image_id, _mask(9, 9), "dog")
        changes = bob.changes_since(token)
        assert [a.id for a in changes.upserted] == [first, second]
        assert {a.created_by for a in changes.upserted} == {"alice"}
        alice.delete_annotation(first)
        later = bob.changes_since(changes.token)
        assert later.deleted == [first] and later.upserted == [] and later.images == {image_id}
        assert bob.changes_since(later.token).upserted == []
    finally:
        alice.close()
        bob.close()


def test_undo_never_undoes_another_persons_change(pg_project_url, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_USER", "alice")
    alice = Project(pg_project_url)
    monkeypatch.setenv("ANNOTATOR_USER", "bob")
    bob = Project(pg_project_url)
    try:
        image_id = alice.add_image("a.png", 32, 24)
        ann = alice.add_annotation(image_id, _mask(), "cat")
        alice.check_undo(ann)  # nobody touched it: alice may undo her accept
        alice.update_annotation(ann, mask=_mask(4, 4))
        alice.check_undo(ann)  # her own later edits (and undos) keep it hers
        with pytest.raises(ProjectError, match="not changed here"):
            bob.check_undo(ann)
        changed = bob.update_annotation(ann, category="dog")
        assert (changed.created_by, changed.updated_by) == ("alice", "bob")
        with pytest.raises(ProjectError, match="changed by bob .*undo would undo their change"):
            alice.check_undo(ann)
        bob.delete_annotation(ann)
        with pytest.raises(ProjectError, match="deleted by someone else"):
            alice.check_undo(ann)
    finally:
        alice.close()
        bob.close()


def test_authorship_is_exported_as_extra_coco_fields(store_location, tmp_path, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_USER", "carol")
    out = tmp_path / "coco.json"
    with Project(store_location) as project:
        ann = project.add_annotation(project.add_image("a.png", 32, 24), _mask(), "cat")
        export_coco(project, out)
        record = project.annotation(ann)
    entry = json.loads(out.read_text())["annotations"][0]
    assert entry["created_by"] == entry["updated_by"] == "carol"
    assert entry["created"] == record.created and entry["updated"] == record.updated


# ----------------------------------------------------------------------------------------- copying
def _big_sqlite_project(folder: Path, n: int) -> None:
    rng = np.random.default_rng(7)
    with Project.open_folder(folder) as project, project.transaction():
        images = [project.add_image(f"img/{k:03d}.png", 64, 48) for k in range(50)]
        table = EmbeddingTable(project)
        for k in range(n):
            mask = np.zeros((48, 64), bool)
            y, x = int(rng.integers(0, 40)), int(rng.integers(0, 56))
            mask[y : y + 1 + k % 7, x : x + 1 + k % 5] = True
            ann = project.add_annotation(
                images[k % 50], mask, f"class {k % 40}", float(rng.random()), {"points": [[x, y]]}
            )
            if k % 100 == 0:
                table.put(ANNOTATION, ann, "clip|pool", rng.standard_normal(8).astype(np.float32))


def test_copy_sqlite_postgresql_sqlite_of_10000_annotations_is_lossless(pg_project_url, tmp_path):
    _big_sqlite_project(tmp_path, 10_000)
    back = tmp_path / "back.db"
    assert main(["project", "copy", str(tmp_path), pg_project_url]) == 0
    assert main(["project", "copy", pg_project_url, str(back)]) == 0
    exports = []
    for k, location in enumerate((str(tmp_path), pg_project_url, str(back))):
        out = tmp_path / f"export{k}.json"
        assert main(["export", location, "-o", str(out)]) == 0
        doc = json.loads(out.read_text())
        doc.pop("info")
        exports.append(doc)
    assert len(exports[0]["annotations"]) == 10_000
    assert exports[0] == exports[1] == exports[2]
    with Project.open_folder(tmp_path) as a, Project(pg_project_url) as b, Project(back) as c:
        vectors = [EmbeddingTable(p).matrix(ANNOTATION, "clip|pool") for p in (a, b, c)]
        assert all(np.array_equal(vectors[0][0], v[0]) for v in vectors)
        assert all(np.array_equal(vectors[0][1], v[1]) for v in vectors)
        assert [x.prompts for x in a.annotations()] == [x.prompts for x in c.annotations()]
        assert b.folder == tmp_path.resolve() and c.integrity_ok() and b.integrity_ok()


def test_copy_is_all_or_nothing_into_an_empty_target(pg_project_url, tmp_path, capsys):
    with Project.open_folder(tmp_path) as project:
        project.add_annotation(project.add_image("a.png", 32, 24), _mask(), "cat")
    with Project(pg_project_url) as target:
        target.add_category("already here")
    assert main(["project", "copy", str(tmp_path), pg_project_url]) == 2
    assert "not empty" in capsys.readouterr().err
    with Project(pg_project_url) as target:
        assert [c.name for c in target.categories()] == ["already here"]
        assert target.annotations() == [] and target.images() == []


def test_segment_save_import_and_export_take_a_project_url(
    engine_args, photo_path, pg_project_url, tmp_path, capsys, monkeypatch
):
    from tests.conftest import cli_flags

    monkeypatch.setenv("ANNOTATOR_USER", "dana")
    folder = tmp_path / "photos"
    folder.mkdir()
    image = folder / photo_path.name
    image.write_bytes(photo_path.read_bytes())
    url = f"{pg_project_url}&images={folder}"
    flags = cli_flags(engine_args)
    code = main(["segment", str(image), "--point", "120,90", "--top-k", "1", "--save", url, *flags])
    assert code == 0, capsys.readouterr().err
    saved = json.loads(capsys.readouterr().out)
    out = tmp_path / "coco.json"
    assert main(["export", pg_project_url, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [i["file_name"] for i in doc["images"]] == [photo_path.name]
    (entry,) = doc["annotations"]
    assert entry["id"] == saved["annotation_id"] and entry["created_by"] == "dana"
    # and back in through import, into another project of the same database
    other = pg_project_url + "x"
    assert main(["import", str(out), "--images", str(folder), "--project", other]) == 0
    with Project(other) as project:
        (record,) = project.annotations()
        assert record.created_by == "dana" and project.folder == folder.resolve()


def test_boxes_and_extras_work_on_both_backends_and_survive_a_copy(
    store_location, pg_project_url, tmp_path
):
    from annotator.store import extras

    with Project(store_location) as project:
        image_id = project.add_image("a.png", 32, 24)
        category = project.category_id("car")
        box = extras.add_box(project, image_id, category, (1, 2, 5, 6), score=0.5, box_id=7)
        extras.set_extra(project, "box", box, {"occluded": True})
        ann = project.add_annotation(image_id, _mask(), "car")
        assert box == 7 and ann > 7  # one id space
        target = pg_project_url if store_location.startswith("/") else str(tmp_path / "c.db")
        with Project(target) as copy:
            copy_project(project, copy)
            assert [b.bbox for b in extras.boxes(copy)] == [(1.0, 2.0, 5.0, 6.0)]
            assert extras.extras(copy, "box") == {7: {"occluded": True}}
            assert copy.add_annotation(image_id, _mask(), "car") > ann


def test_autolabel_proposals_on_a_postgresql_project(pg_project_url):
    """The review queue's tables exist on both backends (schema step 6)."""
    import numpy as np

    from annotator.store.proposals import NewProposal, ProposalStore

    with Project(pg_project_url) as project:
        image_id = project.add_image("a.png", 8, 8)
        store = ProposalStore(project)
        assert (
            store.finish_image(
                image_id, "run", "proposals", [NewProposal(np.ones((8, 8), bool), "cat", 0.9)]
            )
            == 1
        )
        assert store.summary()["pending"] == 1
        (p,) = store.proposals()
        store.accept(p.id)
        assert [a.category for a in project.annotations()] == ["cat"]
