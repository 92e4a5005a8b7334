"""The review queue's change feed (issue 24): one connection's poll sees the proposals another
connection (another process in real use) committed. SQLite, no Qt."""

from __future__ import annotations

import numpy as np

from annotator.app.review_feed import ReviewFeed
from annotator.store import Project
from annotator.store.proposals import NewProposal, ProposalStore


def test_a_poll_picks_up_another_connections_proposals(tmp_path):
    db = tmp_path / "project.db"
    with Project(db) as window_side, Project(db) as autolabel_side:
        image_id = autolabel_side.add_image("a.png", 32, 24)
        feed = ReviewFeed(ProposalStore(window_side))
        assert feed.poll() is False
        mask = np.zeros((24, 32), bool)
        mask[4:12, 5:20] = True
        ProposalStore(autolabel_side).finish_image(
            image_id, "run", "proposals", [NewProposal(mask, "dog", 0.7)]
        )
        assert feed.poll() is True
        assert feed.poll() is False  # nothing new since
        [p] = ProposalStore(window_side).proposals()
        ProposalStore(autolabel_side).set_status(p.id, "rejected")
        assert feed.poll() is True
