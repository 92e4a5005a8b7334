"""Clicks preempt batch work (issue 24): a batch job checks between model calls whether a click
waits, and steps aside at the next check. Structural: counts of checks and calls, no timing."""

from __future__ import annotations

import pytest
from PIL import Image

from annotator.discovery.autolabel import ProposalLabeler
from annotator.discovery.proposals import ProposalSettings
from annotator.preempt import StepAside, interruptible, yield_point

GRID = ProposalSettings(
    points_per_side=4, points_per_batch=4, pred_iou_thresh=-1.0, stability_score_thresh=0.0
)


def test_a_yield_point_outside_a_batch_does_nothing_and_inside_steps_aside():
    yield_point()  # the CLI and library callers: no effect
    with interruptible(lambda: False) as checks:
        yield_point()
        yield_point()
    assert checks == [2]
    with pytest.raises(StepAside), interruptible(lambda: True):
        yield_point()
    yield_point()  # the block is over: no effect again


@pytest.fixture
def picture(tmp_path, photo):
    path = tmp_path / "photo.png"
    Image.fromarray(photo[:240, :320]).save(path)
    return path


def test_auto_label_checks_between_every_model_call(engine, picture):
    labeler = ProposalLabeler(engine, GRID, threshold=-1.0, top_k=3)
    calls = []
    region = engine.region_embedding

    def counted(*args, **kwargs):
        calls.append("region")
        return region(*args, **kwargs)

    engine.region_embedding = counted
    try:
        with interruptible(lambda: False) as checks:
            found = labeler.label(picture, ["dog"])
    finally:
        engine.region_embedding = region
    assert found  # a non-trivial run: proposals were scored
    batches = 16 // 4  # points_per_side² / points_per_batch decoder calls
    assert checks[0] >= batches + len(calls) and len(calls) >= 1


def test_a_click_stops_auto_label_at_the_next_check(engine, photo, tmp_path):
    picture = tmp_path / "other.png"  # not the other test's image: nothing of it is cached
    Image.fromarray(photo[-240:, -320:]).save(picture)
    labeler = ProposalLabeler(engine, GRID, threshold=-1.0, top_k=3)
    clicked_at = 3  # a click arrives after the third check

    state = {"n": 0}

    def urgent() -> bool:
        state["n"] += 1
        return state["n"] >= clicked_at

    with pytest.raises(StepAside), interruptible(urgent) as checks:
        labeler.label(picture, ["cat"])
    assert checks == [clicked_at]  # stepped aside at that check: no model call after it
