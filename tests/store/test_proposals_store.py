"""The pending-proposals store: one transaction per image, idempotent done marks, accept <-> annotation."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.store import Project
from annotator.store.proposals import NewProposal, ProposalStore, parse_classes


def square(h: int, w: int, x0: int, y0: int, size: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[y0 : y0 + size, x0 : x0 + size] = True
    return mask


@pytest.fixture
def project(tmp_path):
    with Project(tmp_path / ".annotator" / "project.db") as p:
        p.add_image("a.png", 40, 30)
        p.add_image("b.png", 40, 30)
        yield p


def test_finish_image_is_one_idempotent_transaction(project):
    store = ProposalStore(project)
    found = [
        NewProposal(square(30, 40, 1, 1, 5), "dog", 0.9),
        NewProposal(square(30, 40, 9, 9, 4), "cat", 0.4),
    ]
    assert store.finish_image(1, "run1", "proposals", found) == 2
    assert store.finish_image(1, "run1", "proposals", found) is None  # done: nothing written twice
    assert store.finish_image(1, "run2", "proposals", found[:1]) == 1  # another run's settings
    assert store.done_images("run1") == {1} and len(store.proposals()) == 3
    # a failure inside the transaction leaves neither the proposals nor the done mark
    original = project.write

    def fail_on_done(sql, params=()):
        if "autolabel_done" in sql:
            raise RuntimeError("killed")
        return original(sql, params)

    project.write = fail_on_done
    with pytest.raises(RuntimeError):
        store.finish_image(2, "run1", "proposals", found)
    project.write = original
    assert store.proposals(image_id=2) == [] and not store.is_done(2, "run1")
    with pytest.raises(ValueError, match="does not fit"):
        store.finish_image(2, "run1", "proposals", [NewProposal(np.ones((5, 5), bool), "x", 1.0)])
    empty = NewProposal(np.zeros((30, 40), bool), "dog", 1.0)
    assert store.finish_image(2, "run1", "proposals", [empty]) == 0  # an empty mask is no proposal
    assert store.summary() == {
        "pending": 3, "accepted": 0, "rejected": 0, "images_done": 2, "images": 2
    }  # fmt: skip


def test_accept_creates_an_annotation_and_unaccept_takes_it_back(project):
    store = ProposalStore(project)
    mask = square(30, 40, 3, 4, 6)
    store.finish_image(1, "r", "sam3", [NewProposal(mask, "dog", 0.8)])
    [p] = store.proposals()
    ann_id = store.accept(p.id, "puppy")
    ann = project.annotation(ann_id)
    assert ann.category == "puppy" and np.array_equal(ann.mask(), mask) and ann.score == 0.8
    assert store.get(p.id).status == "accepted" and store.get(p.id).annotation_id == ann_id
    with pytest.raises(ValueError):
        store.accept(p.id)
    with pytest.raises(ValueError):
        store.set_status(p.id, "rejected")
    store.unaccept(p.id)
    assert project.annotations() == [] and store.get(p.id).status == "pending"
    store.set_status(p.id, "rejected")
    assert store.summary()["rejected"] == 1


def test_tables_are_part_of_the_schema_and_reopen(tmp_path):
    from annotator.store.schema import SCHEMA_VERSION

    db = tmp_path / ".annotator" / "project.db"
    with Project(db) as p:
        p.add_image("a.png", 8, 8)
        assert p.schema_version == SCHEMA_VERSION >= 6  # step 6 holds the proposals tables
        ProposalStore(p).finish_image(
            1, "r", "proposals", [NewProposal(np.ones((8, 8), bool), "x", 1)]
        )
    with Project(db) as p:
        assert len(ProposalStore(p).proposals()) == 1
        assert p.integrity_ok()


def test_parse_classes():
    assert parse_classes(" person, car,,dog , car,  traffic   light ") == [
        "person", "car", "dog", "traffic light"
    ]  # fmt: skip
    assert parse_classes(" , ") == []
