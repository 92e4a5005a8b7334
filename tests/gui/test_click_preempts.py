"""Clicks preempt batch work in the window (issue 24): a click made while auto-label runs is
served before the next image of the run, and the image that gave way is labelled afterwards.
Structural (the order of the worker's answers), no timing."""

from __future__ import annotations

from annotator.app.jobs import AUTOLABEL, YIELDED
from annotator.store.proposals import ProposalStore
from tests.gui.conftest import click
from tests.gui.test_review import LOOSE


def test_a_click_during_auto_label_is_served_before_the_next_image(qtbot, window):
    events: list[str] = []
    worker = window.worker

    def discovered(kind, image_id, request_id, result):
        if kind == AUTOLABEL:
            yielded = isinstance(result, str) and result == YIELDED
            events.append("yielded" if yielded else "image")

    worker.discovered.connect(discovered)
    worker.proposal_ready.connect(lambda *_: events.append("mask"))
    panel = window.review
    assert panel.start_autolabel("dog,car", settings=LOOSE, threshold=-1.0, top_k=2)
    qtbot.wait(50)  # the first image is in progress in the worker
    click(qtbot, window, 140, 110)
    qtbot.waitUntil(lambda: "mask" in events, timeout=60_000)
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)
    before = events[: events.index("mask")]
    assert before.count("image") <= 1, events  # at most the image that was already ending
    assert ProposalStore(window.project).summary()["images_done"] == 3
    assert events.count("image") == 3
    assert "finished: 3 images" in panel.run_status.text()
    assert window.controller.pending is not None  # the click's mask is shown
