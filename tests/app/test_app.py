"""The Qt-free application layer: session events, store operations, the folder and COCO jobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator.app import operations as ops
from annotator.app.folder import open_folder_job, scan_folder
from annotator.app.longjob import Cancelled, JobControl, run_here
from annotator.app.session import ImageRow, Session
from annotator.app.transfer import export_coco_file, export_coco_job
from annotator.errors import AnnotatorError
from annotator.store import Project
from annotator.store.embeddings import ANNOTATION, EmbeddingTable


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((6, 8, 3), i, np.uint8)).save(folder / f"img_{i}.png")


def _mask(y: int = 1) -> np.ndarray:
    mask = np.zeros((6, 8), bool)
    mask[y : y + 3, 2:5] = True
    return mask


def test_session_events_follow_every_change(tmp_path):
    session = Session()
    seen: list[tuple] = []
    for name in ("folder", "image", "selection", "annotations", "status", "navigate"):
        getattr(session.events, name).connect(lambda *a, n=name: seen.append((n, *a)))
    rows = [ImageRow(1, "a.png", "/a.png"), ImageRow(2, "b.png", "/b.png")]
    session.set_folder(None, tmp_path, rows)
    assert session.set_row(1) and not session.set_row(1) and not session.set_row(5)
    assert session.image_id == 2 and session.image_path() == "/b.png"
    session.set_records({7: object()})
    session.select(7)
    session.select(99)  # not on this image: nothing selected
    session.annotations_changed(2)
    session.request_row(0)
    session.status("hello", 10)
    assert seen == [
        ("folder",),
        ("image", 2),
        ("selection", 7),
        ("selection", None),
        ("annotations", 2),
        ("navigate", 0),
        ("status", "hello", 10),
    ]
    assert session.next_id() < session.next_id()


def test_edits_wait_while_a_job_writes_the_store(tmp_path):
    session = Session()
    messages = []
    session.events.status.connect(lambda text, _ms: messages.append(text))
    with Project(tmp_path / "p.db") as project:
        session.set_folder(project, tmp_path, [])
        assert session.can_edit()
        session.set_busy("Importing x.json")
        assert not session.can_edit() and "Importing x.json" in messages[-1]
        session.project = None


def test_accept_restore_delete_relabel(tmp_path):
    with Project(tmp_path / "p.db") as project:
        image_id = project.add_image("a.png", 8, 6)
        vector = ("model-x", np.ones(4, np.float32) / 2)
        ann_id = ops.accept(project, image_id, _mask(), "cat", 0.9, {"points": []}, vector)
        table = EmbeddingTable(project)
        assert np.allclose(table.get(ANNOTATION, ann_id, "model-x"), vector[1])
        record = ops.find_record(project, image_id, ann_id)
        ops.delete(project, ann_id)
        assert project.annotations(image_id) == []
        assert ops.restore(project, record, vector) == ann_id
        ops.relabel(project, ann_id, "dog")
        ops.edit_mask(project, ann_id, _mask(2))
        (again,) = project.annotations(image_id)
        assert again.category == "dog" and np.array_equal(again.mask(), _mask(2))


def test_accept_for_file_is_one_transaction_and_refuses_bad_masks(tmp_path):
    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (8, 6), (1, 2, 3)).save(image)
    with Project(tmp_path / "p.db") as project:
        with pytest.raises(AnnotatorError, match="empty"):
            ops.accept_for_file(project, image, np.zeros((6, 8), bool), "cat", None, None)
        with pytest.raises(AnnotatorError, match="--category"):
            ops.accept_for_file(project, image, _mask(), "", None, None)
        assert project.images() == []  # nothing was written for a refused mask
        ann_id = ops.accept_for_file(project, image, _mask(), "cat", 0.5, {"box": None})
        (record,) = project.annotations()
        assert record.id == ann_id and project.image(record.image_id).file_name == "a.png"


def test_seeded_categories_keep_their_ids_and_used_ones_stay(tmp_path):
    with Project(tmp_path / "p.db") as project:
        added = ops.add_categories(project, ["cat", "dog"], {})
        image_id = project.add_image("a.png", 8, 6)
        ops.accept(project, image_id, _mask(), "dog", None, None)
        assert ops.remove_unused_categories(project, added.values()) == [added["cat"]]
        assert ops.add_categories(project, ["cat", "dog"], added) == {"cat": added["cat"]}


def test_opening_a_folder_adds_new_images_in_one_transaction(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    _images(folder, 5)
    (folder / "broken.png").write_bytes(b"nope")
    depths, outer = [], []
    add_image, transaction = Project.add_image, Project.transaction

    def recording_add(self, *args, **kwargs):
        depths.append(self._depth)  # 0: the call would open (and fsync) its own transaction
        return add_image(self, *args, **kwargs)

    def recording_transaction(self):
        if self._depth == 0:
            outer.append(1)
        return transaction(self)

    monkeypatch.setattr(Project, "add_image", recording_add)
    monkeypatch.setattr(Project, "transaction", recording_transaction)
    opened = run_here(open_folder_job(folder))
    assert depths == [1] * 5, "each new image was added in its own transaction"
    assert len(outer) <= 2  # the schema's creation, then the images
    assert [r.name for r in opened.image_rows] == [f"img_{i}.png" for i in range(5)]
    assert len(opened.unreadable) == 1 and "broken.png" in opened.unreadable[0]
    again = run_here(open_folder_job(folder))  # known images: same ids, nothing added
    assert again.rows == opened.rows


def test_a_cancelled_folder_open_adds_nothing(tmp_path):
    folder = tmp_path / "images"
    _images(folder, 30)
    steps = []

    def cancel_late(done, total, text):
        steps.append(done)

    control = JobControl(lambda: len(steps) > 0 and steps[-1] >= 20, cancel_late, interval_s=0)
    with pytest.raises(Cancelled):
        scan_folder(control, folder)
    with Project.open_folder(folder) as project:
        assert project.images() == []  # sizes were read, nothing was inserted


def test_a_cancelled_export_leaves_the_old_file(tmp_path):
    with Project(tmp_path / "p.db") as project:
        image_id = project.add_image("a.png", 8, 6)
        ops.accept(project, image_id, _mask(), "cat", None, None)
    out = tmp_path / "out.json"
    out.write_text('{"old": true}')
    # cancel arrives once the export is written to its staging file, before the rename
    control = JobControl(lambda: (tmp_path / ".out.json.partial").exists())
    with pytest.raises(Cancelled):
        export_coco_file(control, str(tmp_path / "p.db"), str(out), False)
    assert json.loads(out.read_text()) == {"old": True}
    assert not list(tmp_path.glob(".out.json.partial*"))
    summary = run_here(export_coco_job(str(tmp_path / "p.db"), out, False))
    assert summary["annotations"] == 1 and len(json.loads(out.read_text())["annotations"]) == 1


def test_an_export_reports_reading_the_project_before_writing_and_cancels_there(tmp_path):
    """Issue 24: a big export showed "reading the project" without a percentage for minutes."""
    from annotator.app.transfer import export_file
    from annotator.io.formats._common import READING

    with Project(tmp_path / "p.db") as project:
        image_id = project.add_image("a.png", 8, 6)
        for _ in range(5):
            ops.accept(project, image_id, _mask(), "cat", None, None)
    steps: list[tuple[int, int, str]] = []
    control = JobControl(lambda: False, lambda *s: steps.append(s), interval_s=0)
    export_file(control, str(tmp_path / "p.db"), "yolo", str(tmp_path / "yolo"))
    assert steps[0] == (0, 0, READING)  # the job's first line, before the project is open
    reading = [s for s in steps[1:] if s[2] == READING]
    assert reading[0][:2] == (0, 5) and reading[-1][:2] == (5, 5)
    first_write = next(i for i, s in enumerate(steps) if s[2].startswith("writing"))
    assert all(s[2] != READING for s in steps[first_write:])  # reading ends before writing
    assert (tmp_path / "yolo" / "data.yaml").is_file()

    seen: list[tuple] = []
    stop = JobControl(lambda: bool(seen), lambda *s: seen.append(s), interval_s=0)
    with pytest.raises(Cancelled):
        export_file(stop, str(tmp_path / "p.db"), "yolo", str(tmp_path / "yolo2"))
    assert seen and all(s[2] in ("reading the project", READING) for s in seen)
    assert not (tmp_path / "yolo2").exists()
