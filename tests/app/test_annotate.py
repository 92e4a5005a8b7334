"""The click loop without Qt, end to end with the tiny real models (issue 23): click -> proposal ->
relabel -> accept -> undo -> export, the label restriction, stale answers, deferred accepts, claims.

`DirectModel` runs the real `Engine` in this thread and hands its answers over on `deliver()`, so
a test decides when (and in which order) the model's answers arrive, as the worker thread's would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator.app.annotate import (
    Annotating,
    DecodeRequest,
    Failure,
    RelabelRequest,
    StoreEdits,
)
from annotator.app.direct_model import DirectModel
from annotator.app.longjob import JobControl
from annotator.app.session import ImageRow, Session
from annotator.app.transfer import export_coco_file
from annotator.store import Project

CLICK = (140.0, 110.0, True)  # inside the bright square of every image


def _images(folder: Path, n: int = 2) -> list[Path]:
    """Images with a bright square on a textured background (as tests/gui's)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        pixels = (rng.random((240, 320, 3)) * 60 + 40).astype(np.uint8)
        pixels[60 + 10 * i : 160, 80 : 200 + 10 * i] = (230, 40 + 50 * i, 40)
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


class Loop:
    """A session on a fresh project of two images, its annotating session, the model, the history,
    and every event the views would see."""

    def __init__(self, project, folder: Path, paths: list[Path], engine, masks_first=False):
        self.project = project
        rows = []
        for path in paths:
            image_id = project.add_image(path.name, 320, 240)
            rows.append(ImageRow(image_id, path.name, str(path)))
        self.session = Session(vocabulary=engine.vocabulary)
        self.session.set_folder(project, folder, rows)
        self.session.set_row(0)
        self.session.set_engine(True, {"region_model_id": engine.region_model_id})
        self.model = DirectModel(engine, masks_first=masks_first)
        self.edits = StoreEdits(self.session)
        self.a = Annotating(self.session, self.model, self.edits)
        self.model.attach(self.a)
        self.seen: list[tuple] = []
        for name in ("preview", "suggestions", "typing", "accepted"):
            getattr(self.a.events, name).connect(lambda *args, n=name: self.seen.append((n, *args)))
        self.errors: list[str] = []
        self.session.events.error.connect(self.errors.append)
        self.prompts = 0
        self.session.events.prompts.connect(self._prompted)

    def _prompted(self) -> None:
        self.prompts += 1

    def click(self, point=CLICK) -> None:
        self.a.add_point(*point)
        self.model.settle()

    def stored(self) -> list:
        return self.project.annotations(self.session.image_id)

    def last(self, name: str) -> tuple:
        return [e for e in self.seen if e[0] == name][-1]


@pytest.fixture
def loop(tmp_path, engine):
    folder = tmp_path / "images"
    paths = _images(folder)
    with Project.open_folder(folder) as project:
        yield Loop(project, folder, paths, engine)


def _names(labels) -> list[str]:
    return [name for name, _ in labels]


def _proposal_loop(loop: Loop):
    loop.click()
    p = loop.a.pending
    assert p is not None and p.mask.any(), "the tiny SAM gave an empty mask at the test click"
    return p


# ------------------------------------------------------------------------------------- click -> proposal
def test_a_click_gives_a_mask_with_labels_from_the_engine(loop, engine):
    p = _proposal_loop(loop)
    embedding = engine.embed(loop.session.image_path())
    expected = engine.segment(embedding, [CLICK])
    assert np.array_equal(p.mask, expected.mask)
    assert _names(p.labels) == _names(expected.labels) and len(p.labels) == 5
    assert [s for _, s in p.labels] == pytest.approx([s for _, s in expected.labels], abs=1e-5)
    assert loop.last("preview")[1] is p.mask
    labels, title, sources = loop.last("suggestions")[1:]
    assert labels == p.labels and title.startswith("New mask (candidate")
    assert sources == [s.source for s in expected.suggestions]


def test_the_prompts_live_in_the_session_and_are_sent_as_they_are(loop):
    loop.a.add_point(140.0, 110.0, True)
    loop.a.add_point(40.0, 30.0, False)
    assert loop.session.points == ((140.0, 110.0, True), (40.0, 30.0, False))
    assert loop.prompts == 2
    sent = [r for r in loop.model.requests if isinstance(r, DecodeRequest)]
    assert [r.points for r in sent] == [((140.0, 110.0, True),), loop.session.points]
    assert sent[-1].image_id == loop.session.image_id
    assert sent[-1].path == loop.session.image_path()


def test_a_box_prompt_asks_for_the_box(loop, engine):
    loop.a.set_box((80.0, 60.0, 200.0, 160.0))
    loop.model.settle()
    request = loop.model.requests[-1]
    assert request.box == (80.0, 60.0, 200.0, 160.0) and request.points == ()
    embedding = engine.embed(loop.session.image_path())
    assert np.array_equal(loop.a.pending.mask, engine.segment(embedding, (), request.box).mask)
    assert loop.a.pending.prompts == {"points": [], "box": (80.0, 60.0, 200.0, 160.0)}


def test_tab_cycles_through_the_candidates(loop):
    first = _proposal_loop(loop)
    n = len(first.proposal.candidates)
    assert n == 3  # one point is ambiguous: three candidates
    chosen = [first.proposal.chosen]
    for _ in range(n):
        loop.a.cycle_candidate()
        loop.model.settle()
        chosen.append(loop.a.pending.proposal.chosen)
    assert chosen[1:] == [(chosen[0] + i) % n for i in range(1, n + 1)]


def test_no_engine_says_which_tools_still_work(loop):
    loop.session.set_engine(False)
    statuses = []
    loop.session.events.status.connect(lambda text, _ms: statuses.append(text))
    loop.a.add_point(*CLICK)
    assert loop.model.requests == [] and loop.session.points == (CLICK,)
    assert "No SAM model loaded" in statuses[-1]


# ------------------------------------------------------------------------------------- staleness
def test_an_older_requests_answer_is_dropped(loop, engine):
    loop.a.add_point(*CLICK)
    loop.a.add_point(60.0, 50.0, False)  # before the first answer arrives
    assert len(loop.model.queue) == 2
    loop.model.deliver(1)  # the first click's mask: stale
    assert loop.a.pending is None and loop.a.waiting()
    loop.model.deliver()
    embedding = engine.embed(loop.session.image_path())
    newest = engine.segment(embedding, [CLICK, (60.0, 50.0, False)])
    assert np.array_equal(loop.a.pending.mask, newest.mask) and not loop.a.waiting()


def test_an_answer_for_another_image_is_dropped(loop):
    loop.a.add_point(*CLICK)
    loop.session.set_row(1)  # the user moved on
    loop.model.deliver()
    assert loop.a.pending is None and loop.seen[-1] == ("suggestions", [], "Suggestions", None)


def test_esc_makes_answers_on_their_way_stale_and_a_second_esc_deselects(loop):
    _proposal_loop(loop)
    loop.a.accept()
    assert loop.session.selected is not None
    loop.a.add_point(*CLICK)
    loop.a.clear()  # Esc while the answer is on its way
    loop.model.deliver()
    assert loop.a.pending is None and loop.session.points == () and loop.session.selected
    assert loop.last("preview") == ("preview", None)
    loop.a.clear()
    assert loop.session.selected is None


def test_a_failed_decode_stops_the_wait(loop):
    loop.a.add_point(1e10, 1e10, True)  # beyond any image: the engine refuses (PromptError)
    assert isinstance(loop.model.queue[0], Failure) and loop.a.waiting()
    loop.model.deliver()
    assert loop.a.pending is None and not loop.a.waiting()


# ------------------------------------------------------------------------------------- accept, relabel, undo
def test_enter_stores_the_best_label_and_selects_it(loop):
    p = _proposal_loop(loop)
    loop.a.accept()
    (record,) = loop.stored()
    assert record.category == p.labels[0][0]
    assert np.array_equal(record.mask(), p.mask)
    assert record.prompts["points"] == [list(CLICK)]
    assert loop.session.selected == record.id and loop.session.records == {record.id: record}
    assert loop.a.pending is None and loop.session.points == ()
    assert loop.last("accepted") == ("accepted", record.id)


def test_a_picked_suggestion_is_the_label(loop):
    p = _proposal_loop(loop)
    third = p.labels[2][0]
    loop.a.choose_label(third)
    assert [r.category for r in loop.stored()] == [third]


def test_enter_before_the_answer_accepts_the_newest_mask(loop):
    loop.a.add_point(*CLICK)
    loop.a.accept()  # pressed while the decode runs
    assert loop.stored() == []
    loop.model.settle()
    (record,) = loop.stored()
    assert loop.session.selected == record.id


def test_relabel_then_undo_and_redo(loop):
    p = _proposal_loop(loop)
    loop.a.accept()
    (record,) = loop.stored()
    other = p.labels[1][0]
    loop.a.choose_label(other)  # nothing pending: relabels the selection
    assert loop.stored()[0].category == other
    assert loop.edits.undo() and loop.stored()[0].category == p.labels[0][0]
    assert loop.edits.undo() and loop.stored() == []
    assert loop.session.records == {}
    assert loop.edits.redo() and loop.stored()[0].id == record.id  # the same id comes back
    assert loop.edits.redo() and loop.stored()[0].category == other


def test_delete_then_undo_restores_the_annotation(loop):
    _proposal_loop(loop)
    loop.a.accept()
    (record,) = loop.stored()
    loop.a.delete_selected()
    assert loop.stored() == [] and loop.session.selected is None
    loop.edits.undo()
    assert [r.id for r in loop.stored()] == [record.id]


def test_an_annotations_labels_are_asked_for_once(loop):
    _proposal_loop(loop)
    loop.a.accept()
    ann_id = loop.session.selected
    loop.session.select(None)
    loop.session.select(ann_id)  # its labels are known from the click: no request
    assert not any(isinstance(r, RelabelRequest) for r in loop.model.requests)
    assert loop.last("suggestions")[2] == f"Annotation {ann_id}: {loop.stored()[0].category}"


def test_a_brush_edit_is_undoable_and_relabels_the_annotation(loop):
    p = _proposal_loop(loop)
    loop.a.accept()
    ann_id = loop.session.selected
    grown = p.mask.copy()
    grown[:10, :10] = True
    assert loop.a.mask_edited(ann_id, grown, "brush")
    assert np.array_equal(loop.stored()[0].mask(), grown)
    relabel = loop.model.requests[-1]
    assert isinstance(relabel, RelabelRequest) and relabel.tag == f"ann:{ann_id}"
    loop.model.settle()
    loop.edits.undo()
    assert np.array_equal(loop.stored()[0].mask(), p.mask)
    assert not loop.a.mask_edited(ann_id, np.zeros_like(p.mask), "eraser")  # refused: Delete
    assert np.array_equal(loop.stored()[0].mask(), p.mask)


def test_a_drawn_shape_gets_its_labels_from_the_model(loop, engine):
    mask = np.zeros((240, 320), bool)
    mask[60:160, 80:200] = True
    loop.a.shape_drawn(mask, "rect")
    assert loop.a.pending.labels == []
    loop.model.settle()
    embedding = engine.embed(loop.session.image_path())
    assert _names(loop.a.pending.labels) == _names(engine.relabel(embedding, mask, 5))
    loop.a.accept()
    (record,) = loop.stored()
    assert record.prompts == {"tool": "rect"} and np.array_equal(record.mask(), mask)


def test_the_click_to_export_loop_writes_the_mask_as_coco(loop, tmp_path):
    p = _proposal_loop(loop)
    loop.a.accept()
    out = tmp_path / "out.json"
    summary = export_coco_file(JobControl(lambda: False, None), loop.project.path, str(out), False)
    data = json.loads(out.read_text())
    (ann,) = data["annotations"]
    assert ann["area"] == int(p.mask.sum()) and summary
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert names[ann["category_id"]] == p.labels[0][0]


# ------------------------------------------------------------------------------------- restriction
def test_the_restriction_travels_with_the_click_and_is_scored_once(loop, engine, monkeypatch):
    names = [name for name, _ in _proposal_loop(loop).labels[2:4]]
    calls = []
    suggest = engine.suggest
    monkeypatch.setattr(engine, "suggest", lambda *a, **k: calls.append(a) or suggest(*a, **k))
    loop.a.set_restrict(names)
    loop.a.clear()
    loop.click()
    assert loop.model.requests[-1].restrict == tuple(names)
    assert len(calls) == 1  # one scoring pass, over the allowed names only
    assert sorted(n for n, _ in loop.a.pending.labels) == sorted(names)
    # the same labels the old "score all, then rescore restricted" gave, from one pass
    region = loop.a.pending.proposal.region
    assert loop.a.pending.labels == engine.topk(region, 5, names)
    sources = loop.last("suggestions")[3]
    assert sources is not None and len(sources) == 2


def test_no_restriction_scores_the_whole_vocabulary(loop):
    loop.a.set_restrict(None)
    loop.click()
    assert loop.model.requests[-1].restrict is None and len(loop.a.pending.labels) == 5


def test_a_restricted_relabel_stays_within_the_names(loop):
    names = ("dog", "cat")
    loop.a.set_restrict(names)
    mask = np.zeros((240, 320), bool)
    mask[60:160, 80:200] = True
    loop.a.shape_drawn(mask, "polygon")
    loop.model.settle()
    assert loop.model.requests[-1].restrict == names
    assert {n for n, _ in loop.a.pending.labels} <= set(names)


# ------------------------------------------------------------------------------------- masks before labels
@pytest.fixture
def masks_first(tmp_path, engine):
    folder = tmp_path / "images"
    paths = _images(folder)
    cache = engine.cache
    engine.cache = None  # every image is new to the engine: its CLIP half does not exist yet
    try:
        with Project.open_folder(folder) as project:
            yield Loop(project, folder, paths, engine, masks_first=True)
    finally:
        engine.cache = cache


def test_the_mask_comes_first_then_its_labels(masks_first):
    loop = masks_first
    loop.a.add_point(*CLICK)
    loop.model.deliver(1)
    p = loop.a.pending
    assert p.proposal.labels_pending and p.labels == []
    assert loop.last("suggestions")[2].endswith("labels follow")
    loop.model.deliver()
    assert loop.a.pending is p and len(p.labels) == 5 and not p.proposal.labels_pending


def test_enter_on_a_mask_without_labels_stores_it_once_they_exist(masks_first):
    loop = masks_first
    loop.a.add_point(*CLICK)
    loop.model.deliver(1)
    mask = loop.a.pending.mask
    loop.model.queue.clear()  # the labelled answer is superseded by the accept's own request
    loop.a.accept()
    assert loop.stored() == [] and loop.a.pending is None
    assert loop.model.requests[-1].tag.startswith("accept:")
    loop.session.set_row(1)  # the user moves on; the mask is still saved
    loop.model.settle()
    (record,) = loop.project.annotations(loop.session.rows[0].image_id)
    assert np.array_equal(record.mask(), mask) and not loop.errors


# ------------------------------------------------------------------------------------- claims
@pytest.mark.slow
def test_a_mask_on_an_image_someone_else_holds_is_not_saved(tmp_path, engine, pg_project_url):
    folder = tmp_path / "images"
    paths = _images(folder)
    with Project(pg_project_url) as mine, Project(pg_project_url) as theirs:
        loop = Loop(mine, folder, paths, engine)
        theirs.claim(loop.session.image_id)
        _proposal_loop(loop)
        loop.a.accept()
        assert loop.stored() == [] and "is editing this image" in loop.errors[-1]
        theirs.release(loop.session.image_id)
        loop.a.accept()
        assert len(loop.stored()) == 1


# ------------------------------------------------------------------------------------- no Qt
def test_the_annotating_session_imports_without_qt():
    code = (
        "import sys; sys.modules['PySide6'] = None;"
        "import annotator.app.annotate, annotator.app.direct_model, annotator.app.edits;"
        "import annotator.engine; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
