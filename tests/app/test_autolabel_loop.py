"""The auto-label loop (issue 23): `annotator autolabel` and the window's review panel run the
same `app.autolabel.ImageLoop`, the CLI with the labeler in its own thread, the window one
model-thread request per image through `app.model_host.ModelHost` (the worker's code, here
called in this thread). Real tiny models; no Qt."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from annotator.app.autolabel import ImageLoop, autolabel, autolabel_loop, project_images
from annotator.app.jobs import AUTOLABEL, YIELDED, AutolabelParams
from annotator.app.model_host import ModelHost, Outbox
from annotator.discovery.autolabel import ProposalLabeler, add_folder_images
from annotator.discovery.proposals import ProposalSettings
from annotator.store import Project
from annotator.store.proposals import NewProposal, ProposalStore

GRID = ProposalSettings(
    points_per_side=4, points_per_batch=4, pred_iou_thresh=-1.0, stability_score_thresh=0.0
)
CLASSES = ("red square", "grass")


def _folder(folder, n=2):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(n):
        pixels = (rng.random((120, 160, 3)) * 60 + 40).astype(np.uint8)
        pixels[30 + 5 * i : 80, 40 : 100 + 5 * i] = (230, 40, 40)
        Image.fromarray(pixels).save(folder / f"img_{i}.png")
    return folder


def _project(name, folder) -> Project:
    project = Project(folder / ".annotator" / name)  # a project of the folder's images
    assert add_folder_images(project, folder) == []
    return project


class _Answers:
    """The host's Outbox, kept: what the window's signals would carry."""

    def __init__(self) -> None:
        self.discovered: list[tuple] = []
        self.failed: list[tuple] = []

    def outbox(self) -> Outbox:
        def ignore(*_args):
            return None

        return Outbox(
            ignore, ignore, ignore, ignore, ignore, ignore, ignore, ignore, ignore,
            lambda *a: self.failed.append(a),
            lambda *a: self.discovered.append(a),
        )  # fmt: skip


def _window_run(project: Project, engine) -> ImageLoop:
    """The review panel's drive: request -> the worker's discover job -> answer, until done."""
    answers = _Answers()
    host = ModelHost(answers.outbox())
    host.engine = engine
    store = ProposalStore(project)
    params = AutolabelParams(CLASSES, store, GRID, -1.0, 3)
    loop = autolabel_loop(store, project_images(project), params)
    while (request := loop.request()) is not None:
        host._do_discover(request)  # what EngineWorker.run does with a discover request
        kind, image_id, request_id, result = answers.discovered.pop()
        assert loop.answer(kind, image_id, request_id, result, store=True)
    loop.end()
    return loop


def _proposals(project: Project) -> list[tuple]:
    return sorted(
        (p.image_id, p.category, round(p.score, 5), p.mask().tobytes())
        for p in ProposalStore(project).proposals()
    )


@pytest.mark.slow
def test_the_cli_and_the_window_run_the_same_loop_with_the_same_result(engine, tmp_path):
    folder = _folder(tmp_path / "images")
    with _project("cli.db", folder) as cli, _project("gui.db", folder) as gui:
        report = autolabel(cli, ProposalLabeler(engine, GRID, -1.0, 3), CLASSES)
        assert (report.total, report.labelled, report.skipped, report.failed) == (2, 2, 0, [])
        assert report.proposals > 0
        loop = _window_run(gui, engine)
        assert (loop.report.labelled, loop.report.proposals) == (2, report.proposals)
        assert loop.status.done == 2 and loop.status.ended and not loop.status.cancelled
        assert _proposals(cli) == _proposals(gui)  # same labeler, same loop, same store
        # a rerun of either finds every image done (same run key) and stores nothing
        again = autolabel(cli, ProposalLabeler(engine, GRID, -1.0, 3), CLASSES)
        assert (again.labelled, again.skipped, again.run) == (0, 2, report.run)
        rerun = _window_run(gui, engine)
        assert (rerun.report.labelled, rerun.report.skipped) == (0, 2)
        assert _proposals(cli) == _proposals(gui)


def _mask():
    mask = np.zeros((120, 160), bool)
    mask[10:40, 20:60] = True
    return mask


def test_stale_answers_yields_failures_and_cancel(tmp_path):
    """The loop's bookkeeping: an older request's answer is not this run's; a yield asks the same
    image again; a failure is counted and the run goes on; a cancel stops after the current one."""
    folder = _folder(tmp_path / "images", n=3)
    with _project("p.db", folder) as project:
        store = ProposalStore(project)
        loop = autolabel_loop(store, project_images(project))
        first = loop.request()
        assert first.kind == AUTOLABEL and first.image_id == project.images()[0].id
        assert not loop.answer(AUTOLABEL, first.image_id, first.request_id - 1, ("r", []), True)
        assert not loop.answer("find", first.image_id, first.request_id, ("r", []), True)
        assert loop.answer(AUTOLABEL, first.image_id, first.request_id, YIELDED, True)
        again = loop.request()
        assert again.image_id == first.image_id and again.request_id > first.request_id
        assert loop.yielded == 1 and loop.status.done == 0
        found = [NewProposal(_mask(), "red square", 0.9)]
        assert loop.answer(AUTOLABEL, again.image_id, again.request_id, ("r", found), True)
        assert [p.category for p in store.proposals()] == ["red square"]
        second = loop.request()
        assert second.image_id != first.image_id
        assert loop.refused(AUTOLABEL, second.image_id, second.request_id, "decode failed")
        assert loop.report.failed == ["decode failed"] and loop.status.skipped == 1
        third = loop.request()
        loop.cancel()
        # the answer of the image in progress still counts and is stored
        assert loop.answer(AUTOLABEL, third.image_id, third.request_id, ("r", found), True)
        assert loop.request() is None and len(store.proposals()) == 2
        report = loop.end()
        assert (report.labelled, report.proposals, len(report.failed)) == (2, 2, 1)
        assert loop.status.cancelled and "cancelled" in loop.status.text()


def test_an_answer_for_a_closed_project_is_not_stored(tmp_path):
    folder = _folder(tmp_path / "images", n=1)
    with _project("p.db", folder) as project:
        store = ProposalStore(project)
        loop = autolabel_loop(store, project_images(project))
        request = loop.request()
        found = [NewProposal(_mask(), "grass", 0.5)]
        assert loop.answer(AUTOLABEL, request.image_id, request.request_id, ("r", found), False)
        assert store.proposals() == [] and loop.report.skipped == 1 and loop.request() is None
