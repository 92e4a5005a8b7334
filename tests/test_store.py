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
from annotator.store import KEEP, Annotation, Project
from annotator.store.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]


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
def project(tmp_path):
    with Project.open_folder(tmp_path) as p:
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
