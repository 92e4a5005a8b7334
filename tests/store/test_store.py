"""The SQLite project store: round trips, undo support, one transaction per call, durability, errors."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from annotator.errors import ProjectError
from annotator.store import KEEP, Annotation, Project, files
from annotator.store.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]


def _box_mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _numpy_bbox(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return (
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    )


@pytest.fixture
def project(store_location):
    """Runs each test on SQLite and on PostgreSQL (conftest.store_location)."""
    with Project(store_location) as p:
        yield p


def test_open_folder_layout_and_pragmas(tmp_path):
    (tmp_path / "new").mkdir()
    with Project.open_folder(tmp_path) as p:
        assert p.path == tmp_path / ".annotator" / "project.db"
        assert p.folder == tmp_path
        assert p.schema_version == SCHEMA_VERSION
        assert p.journal_mode == "wal"
        assert p._con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert p._con.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert p.integrity_ok()
        p.set_meta("vocabulary", "/data/vocab.txt")
        p.set_meta("vocabulary", "default")
    with Project(tmp_path / "new" / ".annotator" / "project.db") as by_path:
        assert by_path.folder == tmp_path / "new"  # .annotator/ made, the folder known
    with Project.open_folder(tmp_path) as again:  # reopening an existing project
        assert again.schema_version == SCHEMA_VERSION
        assert again.get_meta("vocabulary") == "default" and again.get_meta("nothing", "x") == "x"


def test_round_trip_through_reopen(tmp_path):
    masks = [_box_mask(30, 40, 2, 9, 3, 20), _box_mask(30, 40, 10, 30, 0, 40)]
    masks[1][15, 5] = False  # a hole
    with Project.open_folder(tmp_path) as p:
        image_id = p.add_image("sub/photo.jpg", 40, 30, sha256="ab" * 32)
        ids = [
            p.add_annotation(
                image_id, masks[0], "cat", score=0.75, prompts={"points": [[5.5, 4.0, True]]}
            ),
            p.add_annotation(image_id, masks[1], "grass"),
        ]
    with Project.open_folder(tmp_path) as p:
        (image,) = p.images()
        assert (image.id, image.file_name, image.width, image.height) == (
            image_id,
            "sub/photo.jpg",
            40,
            30,
        )
        assert p.image_by_name("sub/photo.jpg") == image == p.image(image_id)
        stored = p.annotations(image_id)
        assert [a.id for a in stored] == ids
        for annotation, mask in zip(stored, masks, strict=True):
            np.testing.assert_array_equal(annotation.mask(), mask)
            assert annotation.area == int(mask.sum())  # pixel count, not the box area
            assert annotation.bbox == _numpy_bbox(mask)
        assert stored[0].category == "cat" and stored[0].score == 0.75
        assert stored[0].prompts == {"points": [[5.5, 4.0, True]]}
        assert stored[1].score is None and stored[1].prompts is None
        assert masks[1].sum() == 20 * 40 - 1 and stored[1].bbox == (0.0, 10.0, 40.0, 20.0)
        assert p.counts() == {image_id: 2}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mask=arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24))))
def test_any_mask_round_trips_with_pycocotools_bbox_and_area(project, mask):
    if not mask.any():
        return
    h, w = mask.shape
    image_id = project.add_image(f"m{h}x{w}.png", w, h)
    annotation = project.annotation(project.add_annotation(image_id, mask, "thing"))
    np.testing.assert_array_equal(annotation.mask(), mask)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert annotation.area == int(mask_utils.area(rle)) == int(mask.sum())
    assert annotation.bbox == tuple(mask_utils.toBbox(rle).tolist()) == _numpy_bbox(mask)


def test_add_image_is_idempotent_and_refuses_a_changed_size(project):
    first = project.add_image("a.png", 10, 5)
    assert project.add_image("a.png", 10, 5) == first
    assert project.add_image(Path("a.png"), 10, 5, sha256="f" * 64) == first
    assert project.image(first).sha256 == "f" * 64
    with pytest.raises(
        ProjectError, match=r"a.png: the image is now 11x5 but the project has it as 10x5"
    ):
        project.add_image("a.png", 11, 5)
    with pytest.raises(ValueError, match="relative"):
        project.add_image("/abs/a.png", 10, 5)
    with pytest.raises(ValueError, match="relative"):
        project.add_image("../a.png", 10, 5)
    assert len(project.images()) == 1
    assert project.image_by_name("missing.png") is None
    with pytest.raises(KeyError):
        project.image(999)


def test_categories_are_stable(project):
    cat = project.category_id("cat")
    dog = project.category_id(" dog ")
    assert project.category_id("cat") == cat and project.category_id("dog", create=False) == dog
    with pytest.raises(KeyError):
        project.category_id("horse", create=False)
    with pytest.raises(ValueError):
        project.category_id("  ")
    project.rename_category(cat, "kitten")
    assert project.category(cat).name == "kitten"
    with pytest.raises(ProjectError, match="already exists"):
        project.rename_category(cat, "dog")
    assert [(c.id, c.name) for c in project.categories()] == [(cat, "kitten"), (dog, "dog")]


def test_only_unused_categories_can_be_deleted_and_come_back_with_their_id(project):
    image_id = project.add_image("a.png", 20, 10)
    cat, bird = project.category_id("cat"), project.category_id("bird")
    project.add_annotation(image_id, _box_mask(10, 20, 0, 5, 0, 5), "cat")
    with pytest.raises(ProjectError, match="'cat' is used by 1 annotation"):
        project.delete_category(cat)
    assert project.delete_category(bird).name == "bird"
    assert [c.name for c in project.categories()] == ["cat"]
    assert project.add_category("bird", category_id=bird) == bird  # redo keeps the COCO id
    assert project.category_id("fish") > bird  # ids are never reused otherwise


def test_update_delete_restore_support_undo(project):
    image_id = project.add_image("a.png", 20, 10)
    first = _box_mask(10, 20, 0, 5, 0, 5)
    second = _box_mask(10, 20, 2, 10, 4, 20)
    ann_id = project.add_annotation(
        image_id, first, "cat", score=0.5, prompts={"box": [0, 0, 5, 5]}
    )
    before = project.annotation(ann_id)

    after = project.update_annotation(ann_id, mask=second, category="dog")
    np.testing.assert_array_equal(after.mask(), second)
    assert (after.area, after.bbox, after.category) == (
        int(second.sum()),
        _numpy_bbox(second),
        "dog",
    )
    assert after.score == 0.5 and after.prompts == {"box": [0, 0, 5, 5]}  # KEEP by default
    assert after.created == before.created and after.updated >= before.updated
    assert project.update_annotation(ann_id, score=None).score is None
    assert project.update_annotation(ann_id, score=KEEP, prompts=None).prompts is None

    project.restore_annotation(before)  # undo of the updates: exactly the old record
    assert project.annotation(ann_id) == before

    deleted = project.delete_annotation(ann_id)
    assert deleted == before and project.annotations() == []
    newer = project.add_annotation(image_id, first, "cat")
    assert newer != ann_id  # ids are never reused, so the undo stack's ids stay valid
    assert project.restore_annotation(deleted) == ann_id
    assert project.annotation(ann_id) == before
    assert [a.id for a in project.annotations(image_id)] == sorted([ann_id, newer])
    with pytest.raises(KeyError):
        project.delete_annotation(12345)
    assert project.integrity_ok()


def test_bad_masks_are_refused_and_change_nothing(project):
    image_id = project.add_image("a.png", 20, 10)
    with pytest.raises(ValueError, match="does not match"):
        project.add_annotation(image_id, np.ones((20, 10), bool), "cat")
    with pytest.raises(ValueError, match="empty"):
        project.add_annotation(image_id, np.zeros((10, 20), bool), "cat")
    with pytest.raises(KeyError):
        project.add_annotation(999, np.ones((10, 20), bool), "cat")
    assert (
        project.annotations() == [] and project.categories() == []
    )  # the category was rolled back


def test_transaction_groups_calls_all_or_nothing(project):
    image_id = project.add_image("a.png", 8, 8)
    with pytest.raises(RuntimeError):
        with project.transaction():
            project.add_annotation(image_id, np.ones((8, 8), bool), "cat")
            project.add_image("b.png", 8, 8)
            raise RuntimeError("user cancelled")
    assert project.annotations() == [] and len(project.images()) == 1 and project.categories() == []
    with project.transaction():
        project.add_annotation(image_id, np.ones((8, 8), bool), "cat")
        project.add_annotation(image_id, np.eye(8, dtype=bool), "cat")
    assert project.counts() == {image_id: 2}


def test_committed_change_is_visible_to_a_second_connection(tmp_path):
    with Project.open_folder(tmp_path) as writer, Project.open_folder(tmp_path) as reader:
        image_id = writer.add_image("a.png", 6, 4)
        ann_id = writer.add_annotation(image_id, _box_mask(4, 6, 1, 3, 1, 5), "cat")
        assert reader.annotation(ann_id) == writer.annotation(ann_id)
        # and through plain sqlite3, as any other program would read it
        with sqlite3.connect(writer.path) as raw:
            assert raw.execute(
                "SELECT area FROM annotations WHERE id = ?", (ann_id,)
            ).fetchone() == (8,)


def test_accepted_change_survives_kill_9(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        import numpy as np
        from annotator.store import Project
        p = Project.open_folder({str(tmp_path)!r})
        image_id = p.add_image("a.png", 6, 4)
        mask = np.zeros((4, 6), bool); mask[1:3, 2:5] = True
        ann_id = p.add_annotation(image_id, mask, "cat", score=0.5)
        print(ann_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close(), no checkpoint, no atexit
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == -9, done.stderr
    ann_id = int(done.stdout.strip())
    assert (tmp_path / ".annotator" / "project.db-wal").exists()  # the change lives in the WAL
    with Project.open_folder(tmp_path) as p:
        assert p.integrity_ok()
        annotation = p.annotation(ann_id)
        assert (annotation.area, annotation.score, annotation.category) == (6, 0.5, "cat")


def test_a_busy_writer_gives_a_clear_error(tmp_path):
    with (
        Project.open_folder(tmp_path) as first,
        Project.open_folder(tmp_path, timeout=0.2) as second,
    ):
        image_id = first.add_image("a.png", 4, 4)
        with first.transaction():
            first.add_annotation(image_id, np.ones((4, 4), bool), "cat")
            with pytest.raises(ProjectError, match="locked by another program"):
                second.add_image("b.png", 4, 4)
            assert second.annotations() == []  # readers are never blocked, and see only commits
        assert len(second.annotations()) == 1
        second.add_image("b.png", 4, 4)  # free again
        assert len(first.images()) == 2


def test_threads_share_one_project(project):
    image_id = project.add_image("a.png", 16, 16)

    def work(k: int) -> None:
        for j in range(10):
            mask = np.zeros((16, 16), bool)
            mask[k, j] = True
            project.add_annotation(image_id, mask, f"c{k % 2}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert project.counts() == {image_id: 40}
    assert {a.bbox[:2] for a in project.annotations()} == {
        (float(j), float(k)) for k in range(4) for j in range(10)
    }


def test_non_sqlite_corrupt_foreign_and_newer_files(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("this is not a database\n" * 100)
    with pytest.raises(ProjectError, match=r"notes.db: not an SQLite project file"):
        Project(text)

    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE t (x)")
    with pytest.raises(ProjectError, match="not an annotator project"):
        Project(foreign)

    newer = tmp_path / "newer.db"
    with Project(newer):
        pass
    with sqlite3.connect(newer) as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ProjectError, match="made by a newer annotator"):
        Project(newer)

    with pytest.raises(ProjectError, match="not a folder"):
        Project.open_folder(tmp_path / "missing")
    with pytest.raises(ProjectError, match="does not exist"):
        Project(tmp_path / "missing" / "p.db")


def test_corrupted_pages_are_detected(tmp_path):
    path = tmp_path / "p.db"
    with Project(path) as p:
        image_id = p.add_image("a.png", 64, 64)
        rng = np.random.default_rng(0)
        for _ in range(60):
            p.add_annotation(image_id, rng.random((64, 64)) < 0.5, "noise")
        p._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[3 * page : 5 * page] = os.urandom(2 * page)  # garbage over two b-tree pages
    path.write_bytes(bytes(data))
    try:
        with Project(path) as broken:
            assert not broken.integrity_ok()
            with pytest.raises(ProjectError, match="corrupt|not an SQLite"):
                broken.annotations()
    except ProjectError as error:  # also fine: refused at open
        assert "p.db" in str(error)


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes only on Linux")
def test_non_utf8_file_name_is_kept_byte_for_byte(project):
    name = os.fsdecode(b"dir/caf\xe9.png")
    if project.journal_mode == "postgresql":  # PostgreSQL text is UTF-8: refused in one line
        with pytest.raises(ProjectError, match="not valid UTF-8") as error:
            project.add_image(name, 3, 2)
        assert "\n" not in str(error.value) and project.images() == []
        return
    image_id = project.add_image(name, 3, 2)
    assert project.image(image_id).file_name == name
    assert project.image_by_name(name).id == image_id
    assert project.add_image(name, 3, 2) == image_id
    assert project.image_by_name("dir/café.png") is None  # the UTF-8 spelling is another file
    assert project.integrity_ok()


def test_annotation_record_is_plain_frozen_data(project):
    image_id = project.add_image("a.png", 4, 4)
    record = project.annotation(project.add_annotation(image_id, np.eye(4, dtype=bool), "cat"))
    assert isinstance(record, Annotation)
    with pytest.raises(AttributeError):
        record.area = 3  # type: ignore[misc]
    assert hash(record) == hash(project.annotation(record.id))
    assert record.rle == {"size": [4, 4], "counts": record.counts}
    assert (
        project.add_annotation(image_id, np.eye(4, dtype=bool), record.category_id) > record.id
    )  # by id


# ------------------------------------------------------------------ hardening (issue #11, ADR 0005)
def _first_save(folder: str, index: int, barrier, results) -> None:
    """One process's first save into a new project: the store calls under `save_mask`."""
    try:
        image = Path(folder) / f"img{index}.png"
        barrier.wait(timeout=60)
        with Project(Path(folder) / ".annotator" / "project.db") as store:
            with store.transaction():
                image_id = store.add_image_file(image, 8, 6)
                store.add_annotation(image_id, _box_mask(6, 8, 1, 4, 1, 5), f"cat{index}")
        results.put((index, "ok"))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put((index, f"{type(error).__name__}: {error}"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (POSIX)")
@pytest.mark.parametrize("round_", range(3))
def test_sixteen_concurrent_first_saves_into_a_new_folder(tmp_path, round_):
    import multiprocessing

    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(16):
        (folder / f"img{i}.png").write_bytes(f"pixels {i}".encode())
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(16), ctx.Queue()
    workers = [
        ctx.Process(target=_first_save, args=(str(folder), i, barrier, results)) for i in range(16)
    ]
    for worker in workers:
        worker.start()
    outcome = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert outcome == {i: "ok" for i in range(16)}
    with Project.open_folder(folder) as p:
        assert p.integrity_ok()
        assert sorted(a.category for a in p.annotations()) == sorted(f"cat{i}" for i in range(16))
        assert len(p.images()) == 16
    assert [f.name for f in (folder / ".annotator").iterdir() if f.name.endswith(".tmp")] == []


def test_a_killed_creator_leaves_a_temp_file_that_the_next_open_removes(tmp_path):
    project_dir = tmp_path / ".annotator"
    project_dir.mkdir()
    orphan = project_dir / ".project.db.0123.tmp"
    orphan.write_bytes(b"half a database")
    (project_dir / ".project.db.0123.tmp-wal").write_bytes(b"its WAL")
    (project_dir / ".project.db.gone.tmp-shm").write_bytes(b"a WAL index without its database")
    (project_dir / ".coco.json.99.tmp").write_bytes(b"a killed export")
    with Project.open_folder(tmp_path) as p:
        assert p.integrity_ok()
    assert sorted(f.name for f in project_dir.iterdir()) == ["project.db"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock semantics (POSIX)")
def test_a_temp_file_being_written_by_a_live_process_is_kept(tmp_path):
    import fcntl

    project_dir = tmp_path / ".annotator"
    project_dir.mkdir()
    busy = project_dir / ".project.db.busy.tmp"
    with open(busy, "wb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        # a second open file description: flock conflicts with it as with another process
        with Project.open_folder(tmp_path):
            pass
        assert busy.exists()


def _png(path: Path, seed: int, size: tuple[int, int] = (8, 6)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_a_different_picture_with_the_same_name_and_size_is_refused(tmp_path):
    project_folder, other = tmp_path / "P", tmp_path / "Q"
    project_folder.mkdir(), other.mkdir()
    own = _png(project_folder / "a.png", 1)
    stranger = _png(other / "a.png", 2)
    mask = _box_mask(6, 8, 1, 4, 1, 5)
    with Project.open_folder(project_folder) as p:
        own_id = p.add_image("a.png", 8, 6)  # as the window adds it: no hash given
        p.add_annotation(own_id, mask, "mine")
        with pytest.raises(ProjectError, match="a different image under this name"):
            p.add_image_file(stranger, 8, 6)
        assert p.image(own_id).sha256 is None  # the refused save changed nothing
        # the project's own file, from anywhere: same image, hash filled in lazily
        assert p.add_image_file(own, 8, 6) == own_id
        assert p.image(own_id).sha256 == files.file_sha256(own)
        with pytest.raises(ProjectError, match="a different image under this name"):
            p.add_image_file(stranger, 8, 6)  # now refused by the stored hash
        # an identical copy outside the project is the project's image, whatever its name
        copy = other / "copy.png"
        copy.write_bytes(own.read_bytes())
        assert p.add_image_file(copy, 8, 6) == own_id
        # edited in place (same size): the project's file is the judge, the hash follows it
        _png(own, 3)
        assert p.add_image_file(own, 8, 6) == own_id
        assert p.image(own_id).sha256 == files.file_sha256(own)
        assert len(p.images()) == 1 and [a.category for a in p.annotations()] == ["mine"]
        with pytest.raises(ValueError, match="64 hex"):
            p.add_image("b.png", 8, 6, sha256="not a hash")


def _version_2_project(folder: Path) -> Path:
    """A project as schema 2 wrote it, with a (meaningless) sha256 and an id at 2**63 - 1."""
    from annotator.store import schema

    db = folder / ".annotator" / "project.db"
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    for migration in schema.MIGRATIONS[:2]:
        for statement in migration:
            con.execute(statement)
    con.execute("PRAGMA user_version = 2")
    rle = mask_utils.encode(np.asfortranarray(_box_mask(6, 8, 1, 4, 1, 5).astype(np.uint8)))
    counts = rle["counts"].decode()
    con.execute("INSERT INTO images VALUES (?, 'a.png', 8, 6, 'pixels-hash', 'now')", (2**63 - 1,))
    con.execute("INSERT INTO categories (id, name) VALUES (?, 'cat')", (2**63 - 1,))
    for annotation_id in (5, 2**63 - 1):
        con.execute(
            "INSERT INTO annotations VALUES (?, ?, ?, ?, 6, 8, 1, 1, 4, 3, 12, NULL, NULL, 'n', 'n')",
            (annotation_id, 2**63 - 1, 2**63 - 1, counts),
        )
    con.execute(
        "INSERT INTO embeddings (kind, ref_id, model_id, vector) VALUES ('annotation', ?, 'm', ?)",
        (2**63 - 1, np.ones(4, "<f4").tobytes()),
    )
    con.close()
    return db


def test_a_version_2_project_is_migrated_ids_renumbered_and_saves_work_again(tmp_path):
    db = _version_2_project(tmp_path)
    with sqlite3.connect(db) as con:  # the bug being fixed: every later save fails
        with pytest.raises(sqlite3.OperationalError, match="full"):
            con.execute("INSERT INTO categories (name) VALUES ('dog')")
    _png(tmp_path / "a.png", 4)
    with Project.open_folder(tmp_path) as p:
        assert p.schema_version == SCHEMA_VERSION >= 3 and p.integrity_ok()
        (image,) = p.images()
        assert image.id == 1 and image.sha256 is None  # the old value meant something else
        assert [(a.id, a.image_id, a.category) for a in p.annotations()] == [
            (5, 1, "cat"),
            (6, 1, "cat"),
        ]
        from annotator.store.embeddings import EmbeddingTable

        assert EmbeddingTable(p).get("annotation", 6, "m") is not None  # followed its annotation
        new = p.add_annotation(
            p.add_image_file(tmp_path / "a.png", 8, 6), _box_mask(6, 8, 0, 2, 0, 2), "dog"
        )
        assert new == 7 and p.image(1).sha256 == files.file_sha256(tmp_path / "a.png")


@pytest.mark.parametrize("bad", [2**63 - 1, 2**64, -1, 0, True, "7", 2**53])
def test_ids_from_files_cannot_exhaust_the_id_space(project, bad):
    image_id = project.add_image("a.png", 8, 6, image_id=bad)
    category_id = project.add_category("cat", category_id=bad)
    mask = _box_mask(6, 8, 1, 4, 1, 5)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    first = project.add_annotation_rle(image_id, rle, category_id, annotation_id=bad)
    assert max(image_id, category_id, first) < 2**53
    assert project.add_annotation(image_id, mask, "dog") == first + 1  # later saves still work
    record = project.annotation(first)
    with pytest.raises(ValueError, match="outside"):
        project.restore_annotation(Annotation(**{**record.__dict__, "id": 2**63 - 1}))
    assert project.add_image("b.png", 8, 6, image_id=2**53 - 1) == 2**53 - 1  # the largest kept


def test_dot_annotator_being_a_file_is_one_line(tmp_path):
    (tmp_path / ".annotator").write_text("not a folder")
    for opener in (
        lambda: Project.open_folder(tmp_path),
        lambda: Project(tmp_path / ".annotator" / "project.db"),
    ):
        with pytest.raises(ProjectError, match=r"\.annotator: is a file, not the project folder"):
            opener()
    assert (tmp_path / ".annotator").read_text() == "not a folder"


@pytest.mark.skipif(
    os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root ignores modes"
)
def test_a_read_only_project_is_one_line_and_keeps_its_data(tmp_path):
    with Project.open_folder(tmp_path) as p:
        p.add_annotation(p.add_image("a.png", 8, 6), _box_mask(6, 8, 1, 4, 1, 5), "cat")
    project_dir = tmp_path / ".annotator"
    (project_dir / "project.db").chmod(0o444)
    project_dir.chmod(0o555)
    try:
        with pytest.raises(ProjectError) as caught:
            with Project.open_folder(tmp_path) as p:
                p.add_annotation(p.add_image("a.png", 8, 6), _box_mask(6, 8, 0, 2, 0, 2), "dog")
        assert "read-only" in str(caught.value) and "\n" not in str(caught.value)
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        fresh.chmod(0o555)
        with pytest.raises(ProjectError, match="cannot create the project folder"):
            Project.open_folder(fresh)
    finally:
        project_dir.chmod(0o755)
        (project_dir / "project.db").chmod(0o644)
    with Project.open_folder(tmp_path) as p:
        assert [a.category for a in p.annotations()] == ["cat"] and p.integrity_ok()


FULL_DISK = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    import numpy as np
    from annotator.errors import AnnotatorError
    from annotator.store import Project
    folder = Path(sys.argv[1])
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # every growing write fails: EFBIG
    mask = np.zeros((600, 800), bool)
    mask[::2, ::3] = True  # a large RLE: the WAL must grow
    try:
        with Project.open_folder(folder) as p:
            p.add_annotation(p.add_image("big.png", 800, 600), mask, "x" * 200)
    except AnnotatorError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("mode", ["create", "write"])
def test_every_write_failing_is_one_line_and_loses_nothing(tmp_path, mode):
    limit = 4096  # smaller than a new database: creating it fails
    if mode == "write":
        with Project.open_folder(tmp_path) as p:
            p.add_annotation(p.add_image("a.png", 8, 6), _box_mask(6, 8, 1, 4, 1, 5), "cat")
        limit = (tmp_path / ".annotator" / "project.db").stat().st_size  # no growth allowed
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    print(result.stderr)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ("disk" in lines[0] or "too large" in lines[0]), lines
    assert "nothing was saved" in lines[0] or "cannot create" in lines[0]
    with Project.open_folder(tmp_path) as p:
        assert p.integrity_ok()
        assert [a.category for a in p.annotations()] == (["cat"] if mode == "write" else [])
    leftovers = [f.name for f in (tmp_path / ".annotator").iterdir() if f.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("target", "inside"),
    [
        (".annotator/project.db", True),
        (".annotator/project.db-wal", True),
        (".annotator/new.json", True),
        (".annotator", True),
        ("out/.annotator/../.annotator/x.json", True),
        ("coco.json", False),
        ("sub/coco.json", False),
        (".annotatorx/coco.json", False),
    ],
)
def test_is_inside_project_dir(tmp_path, target, inside):
    with Project.open_folder(tmp_path):
        pass
    assert files.is_inside_project_dir(tmp_path / target) is inside
    assert (files.export_target_problem(tmp_path / target) is not None) is inside


def test_export_target_refuses_a_symlink_into_the_project_and_any_sqlite_file(tmp_path):
    with Project.open_folder(tmp_path):
        pass
    link = tmp_path / "looks-harmless.json"
    link.symlink_to(tmp_path / ".annotator" / "project.db")
    assert "into a project" in files.export_target_problem(link)
    with Project(tmp_path / "elsewhere.db"):
        pass
    assert "SQLite database" in files.export_target_problem(tmp_path / "elsewhere.db")
    assert files.export_target_problem(tmp_path / "missing.json") is None


def test_a_read_only_database_even_for_root_is_one_line_and_keeps_its_data(tmp_path, monkeypatch):
    """Root ignores file modes, so the read-only open is simulated with SQLite's own mode=ro."""
    import annotator.store.project as project_module

    with Project.open_folder(tmp_path) as p:
        p.add_annotation(p.add_image("a.png", 8, 6), _box_mask(6, 8, 1, 4, 1, 5), "cat")
    real_connect = sqlite3.connect

    def read_only(path, **kwargs):
        return real_connect(f"file:{path}?mode=ro", uri=True, **kwargs)

    monkeypatch.setattr(project_module.sqlite3, "connect", read_only)
    with pytest.raises(ProjectError) as caught:
        with Project.open_folder(tmp_path) as p:
            assert [a.category for a in p.annotations()] == ["cat"]  # reading works
            p.add_annotation(p.add_image("a.png", 8, 6), _box_mask(6, 8, 0, 2, 0, 2), "dog")
    message = str(caught.value)
    assert "read-only" in message and "nothing was saved" in message and "\n" not in message
    monkeypatch.undo()
    with Project.open_folder(tmp_path) as p:
        assert [a.category for a in p.annotations()] == ["cat"] and p.integrity_ok()


def test_annotation_pages_read_everything_once_in_id_order(project):
    image_id = project.add_image("a.png", 8, 6)
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    ids = [project.add_annotation(image_id, mask, "cat") for _ in range(7)]
    project.delete_annotation(ids[3])  # a gap in the ids: keyset pages step over it
    pages = list(project.annotation_pages(size=2))
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [a.id for p in pages for a in p] == [a.id for a in project.annotations()]
    assert project.annotation_count() == 6
    assert list(project.annotation_pages(size=6))[0] == project.annotations()
    with pytest.raises(ValueError, match="page size"):
        list(project.annotation_pages(size=0))
