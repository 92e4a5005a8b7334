"""Proposals written by another process appear in the review panel (issue 24): the window's 2 s
change poll picks them up from the SQLite project, without moving the user to another image."""

from __future__ import annotations

import numpy as np

from annotator.store import Project
from annotator.store.proposals import NewProposal, ProposalStore
from tests.gui.test_keyboard import manual_window


def test_another_connections_proposals_show_up_on_the_next_poll(qtbot, tmp_path, image_folder):
    window = manual_window(qtbot, tmp_path, image_folder)
    assert window.change_timer.interval() <= 2000 and window.change_timer.isActive()
    shown = window.image_id
    assert window.review.list.count() == 0
    other_image = window.images.model_.rows[2].image_id
    with Project(window.project.path) as other:  # `annotator autolabel` in another process
        mask = np.zeros((240, 320), bool)
        mask[50:120, 60:200] = True
        ProposalStore(other).finish_image(
            other_image, "run", "proposals", [NewProposal(mask, "dog", 0.8)] * 1
        )
    window.poll_changes()  # what the timer runs every 2 s
    assert window.review.list.count() == 1
    assert "pending 1" in window.review.counts.text()
    assert window.image_id == shown  # the user stays where they are
    window.poll_changes()
    assert window.review.list.count() == 1
