"""What moved out of the window into the app layer (issue 23): the change feed (another process's
accepted annotations and proposals, polled) and the exemplars kept in step with the session.
Two real SQLite connections stand for two processes; no Qt."""

from __future__ import annotations

import numpy as np

from annotator.app.change_feed import ChangeFeed
from annotator.app.exemplars import ExemplarKeeper
from annotator.app.session import ImageRow, Session
from annotator.store import Project
from annotator.store.embeddings import ANNOTATION, EmbeddingTable
from annotator.store.proposals import NewProposal, ProposalStore


def _mask(x=5):
    mask = np.zeros((24, 32), bool)
    mask[4:12, x : x + 10] = True
    return mask


def _session(project: Project, image_ids: list[int]) -> Session:
    session = Session()
    rows = [ImageRow(i, f"{i}.png", f"/nowhere/{i}.png") for i in image_ids]
    session.set_folder(project, None, rows)
    return session


def test_the_feed_names_the_listed_images_another_process_changed(tmp_path):
    db = tmp_path / "project.db"
    with Project(db) as window_side, Project(db) as other:
        listed = other.add_image("a.png", 32, 24)
        unlisted = other.add_image("b.png", 32, 24)
        session = _session(window_side, [listed])
        feed = ChangeFeed(session)
        assert feed.poll().images == []  # not started: no project news yet
        feed.start(window_side, ProposalStore(window_side))
        assert feed.poll().images == [] and not feed.poll().proposals
        ann = other.add_annotation(listed, _mask(), "cat")
        other.add_annotation(unlisted, _mask(), "dog")  # not in the window's list
        changed = feed.poll()
        assert changed.images == [listed] and not changed.proposals
        assert feed.poll().images == []  # nothing new since
        other.delete_annotation(ann)
        assert feed.poll().images == [listed]
        ProposalStore(other).finish_image(
            listed, "run", "proposals", [NewProposal(_mask(), "cat", 0.7)]
        )
        changed = feed.poll()
        assert changed.proposals and changed.images == []
        assert not feed.poll().proposals


class _ModelThread:
    """The model port's one method the keeper calls (the worker's `set_exemplars`)."""

    def __init__(self) -> None:
        self.sent: list = []

    def set_exemplars(self, exemplars) -> None:
        self.sent.append(exemplars)


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(8).astype(np.float32)
    return v / np.linalg.norm(v)


def test_exemplars_follow_the_sessions_annotations(tmp_path):
    with Project(tmp_path / "project.db") as project:
        image_id = project.add_image("a.png", 32, 24)
        table = EmbeddingTable(project)
        first = project.add_annotation(image_id, _mask(), "cat")
        table.put(ANNOTATION, first, "m1", _vector(1))
        model = _ModelThread()
        session = Session()
        keeper = ExemplarKeeper(session, model)
        session.set_folder(project, None, [ImageRow(image_id, "a.png", "/nowhere/a.png")])
        assert model.sent == [None]  # a project but no region model yet: nothing to send
        keeper.set_model_id("m1")
        exemplars = model.sent[-1]
        assert exemplars is not None and exemplars.counts() == {"cat": 1}
        second = project.add_annotation(image_id, _mask(15), "dog")
        table.put(ANNOTATION, second, "m1", _vector(2))
        other_model = project.add_annotation(image_id, _mask(20), "bird")
        table.put(ANNOTATION, other_model, "m2", _vector(3))  # another region model's vector
        session.annotations_changed(image_id)  # an accept: the keeper re-reads the image
        assert exemplars.counts() == {"cat": 1, "dog": 1}
        project.delete_annotation(first)
        session.annotations_changed(image_id)  # an undo or delete
        assert exemplars.counts() == {"dog": 1}
        keeper.set_model_id("m2")  # the models were reloaded with another head
        assert model.sent[-1].counts() == {"bird": 1}
