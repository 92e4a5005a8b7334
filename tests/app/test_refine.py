"""`annotator refine PROJECT --boxes`: a COCO detection file's boxes become pending mask proposals;
review accepts them (the box gets the mask, under its id), undo brings the box back; idempotent.

Tiny random models (tests/conftest.py): their masks are arbitrary, so the checks are on what the
store makes of them (inside the box, the box's category, nothing replaced before review).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator import cli
from annotator.app.refine import refine_boxes
from annotator.app.review import History, ReviewQueue
from annotator.store import Project
from annotator.store import extras as store_extras
from annotator.store.proposals import REFINE, ProposalStore, refined_box
from tests.conftest import cli_flags

BOXES = {  # image -> [(COCO id, category id, XYWH)]
    "a.png": [(7, 1, [30, 20, 40, 30]), (8, 2, [5, 5, 35, 25])],
    "b.png": [(9, 1, [50, 40, 40, 30])],
    "c.png": [],
}


def make_dataset(folder: Path) -> Path:
    """Three 96x72 images and a COCO detection file: bbox only, no segmentation, one with a score
    and an attribute (kept fields must survive the box becoming a mask)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i, (name, boxes) in enumerate(BOXES.items(), 1):
        pixels = (rng.random((72, 96, 3)) * 60 + 40).astype(np.uint8)
        pixels[20:50, 30:70] = (230, 40 + 60 * i, 40)
        Image.fromarray(pixels).save(folder / name)
        images.append({"id": i, "file_name": name, "width": 96, "height": 72})
        for ann_id, category, bbox in boxes:
            entry = {"id": ann_id, "image_id": i, "category_id": category, "bbox": bbox}
            if ann_id == 7:
                entry.update(score=0.875, attributes={"occluded": True})
            annotations.append(entry)
    doc = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "car"}],
    }
    path = folder / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def run(*args: object) -> tuple[int, str, str]:
    return cli.main([str(a) for a in args])


@pytest.fixture
def project_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    coco = make_dataset(folder)
    assert run("import", coco, "--project", folder) == 0
    return folder


@pytest.fixture
def flags(engine_args, tmp_path) -> list[str]:
    return [*cli_flags(engine_args), "--cache-dir", str(tmp_path / "cache")]


def refine(capsys, folder: Path, flags: list[str], *extra: str) -> tuple[int, dict, str]:
    capsys.readouterr()
    code = run("refine", folder, "--boxes", *flags, *extra)
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]), err


def test_refine_then_review_gives_each_box_its_mask(project_dir, flags, capsys):
    with Project.open_folder(project_dir) as project:
        before = {b.id: b for b in store_extras.boxes(project)}
        assert set(before) == {7, 8, 9} and project.annotations() == []
    code, out, _ = refine(capsys, project_dir, flags)
    assert code == 0
    assert out["boxes"] == 3 and out["proposals"] + out["empty"] == 3 and out["images"] == 2
    assert out["proposals"] == 3  # these boxes all give a mask with the tiny model
    with Project.open_folder(project_dir) as project:
        store = ProposalStore(project)
        pending = store.proposals()
        assert {refined_box(p) for p in pending} == {7, 8, 9}
        for p in pending:
            box = before[refined_box(p)]
            assert p.source == REFINE and p.category == box.category
            assert p.image_id == box.image_id and p.area > 0
            x, y, w, h = box.bbox
            mask = p.mask()
            outside = mask.copy()
            outside[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = False
            assert not outside.any()  # cut to its box
        # nothing replaced before review: the boxes are there, no annotation yet
        assert {b.id: b for b in store_extras.boxes(project)} == before
        assert project.annotations() == []
    # review accepts them: each box becomes an annotation with the mask, under the box's id
    capsys.readouterr()
    assert run("review", project_dir, "--accept-above", -1) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["accepted_now"] == 3 and counts["pending"] == 0
    with Project.open_folder(project_dir) as project:
        anns = {a.id: a for a in project.annotations()}
        assert set(anns) == {7, 8, 9} and store_extras.boxes(project) == []
        for p in ProposalStore(project).proposals("accepted"):
            ann = anns[p.annotation_id]
            box = before[p.annotation_id]
            assert ann.counts == p.counts and ann.category == box.category
            assert ann.score == box.score  # the dataset's score, not SAM's
            x, y, w, h = box.bbox
            assert ann.prompts["box"] == [x, y, x + w, y + h]
            assert ann.prompts["refine"]["sam_score"] == pytest.approx(p.score)
        assert store_extras.extra(project, "annotation", 7) == {"attributes": {"occluded": True}}
    # exported: the same ids, now with a segmentation
    out_file = project_dir / "out.json"
    capsys.readouterr()
    assert run("export", project_dir, "-o", out_file) == 0
    exported = {a["id"]: a for a in json.loads(out_file.read_text())["annotations"]}
    assert set(exported) == {7, 8, 9}
    assert all(a["segmentation"] for a in exported.values())
    assert exported[7]["attributes"] == {"occluded": True} and exported[7]["score"] == 0.875


def test_refine_is_idempotent_and_skips_reviewed_boxes(project_dir, flags, capsys):
    code, first, _ = refine(capsys, project_dir, flags)
    assert code == 0 and first["proposals"] == 3
    with Project.open_folder(project_dir) as project:
        rows = sorted((p.run, p.counts) for p in ProposalStore(project).proposals(None))
    code, second, _ = refine(capsys, project_dir, flags)
    assert code == 0
    assert second["proposals"] == 0 and second["skipped_done"] == 3 and second["images"] == 0
    with Project.open_folder(project_dir) as project:
        store = ProposalStore(project)
        assert sorted((p.run, p.counts) for p in store.proposals(None)) == rows
        # reject one, accept one: a third run still proposes nothing new
        queue = ReviewQueue(store)
        history = History()
        history.push(queue.reject())
        queue.refresh()
        history.push(queue.accept())
    code, third, _ = refine(capsys, project_dir, flags)
    assert code == 0 and third["proposals"] == 0 and third["boxes"] == 2
    with Project.open_folder(project_dir) as project:
        assert len(ProposalStore(project).proposals(None)) == 3


def test_accept_undo_brings_the_box_back(project_dir, flags, capsys):
    assert refine(capsys, project_dir, flags)[0] == 0
    with Project.open_folder(project_dir) as project:
        store = ProposalStore(project)
        before = {b.id: b for b in store_extras.boxes(project)}
        queue = ReviewQueue(store, order="score")
        history = History()
        for _ in range(3):
            history.push(queue.accept())
            queue.refresh()
        assert store_extras.boxes(project) == [] and len(project.annotations()) == 3
        for _ in range(3):
            assert history.undo()
        assert {b.id: b for b in store_extras.boxes(project)} == before
        assert project.annotations() == []
        assert store_extras.extra(project, "box", 7) == {"attributes": {"occluded": True}}
        assert len(store.proposals()) == 3
        assert history.redo()  # and again
        assert len(project.annotations()) == 1 and len(store_extras.boxes(project)) == 2
        assert project.integrity_ok()


def test_a_subset_of_images_and_a_stop_keep_what_is_done(project_dir, engine, capsys):
    with Project.open_folder(project_dir) as project:
        a = project.image_by_name("a.png").id
        report = refine_boxes(project, engine, image_ids=[a])
        assert report.boxes == 2 and report.proposals == 2 and report.images == 1
        calls = []
        report = refine_boxes(
            project, engine, progress=lambda *c: calls.append(c), should_stop=lambda: True
        )
        assert report.images == 0 and calls == []  # stopped before the next image
        report = refine_boxes(project, engine, progress=lambda *c: calls.append(c))
        assert report.proposals == 1 and report.skipped == 2 and calls == [(1, 1, "b.png")]
        assert len(ProposalStore(project).proposals()) == 3


def test_images_option_and_the_no_box_project(project_dir, flags, capsys, tmp_path):
    code, out, _ = refine(capsys, project_dir, flags, "--images", "b.png")
    assert code == 0 and out["boxes"] == 1 and out["proposals"] == 1
    plain = tmp_path / "plain"
    plain.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(plain / "x.png")
    with Project.open_folder(plain) as project:
        project.add_image("x.png", 8, 8)
    code, out, err = refine(capsys, plain, flags)
    assert code == 0 and out["boxes"] == 0 and out["proposals"] == 0
    assert "no box-only annotations" in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--boxes", "{missing}"], "no project here"),
        (["--boxes", "{project}", "--images", "nope.png"], "nope.png"),
        (["--boxes", "{project}", "--images", ","], "--images is empty"),
        (["{project}"], "--boxes"),
    ],
)
def test_bad_input_exits_2_with_one_line(project_dir, flags, capsys, tmp_path, args, needle):
    filled = [a.format(missing=tmp_path / "nowhere", project=project_dir) for a in args]
    capsys.readouterr()
    try:
        code = cli.main(["refine", *filled, *flags])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("annotator") and needle in last


def test_accept_and_undo_of_a_box_proposal_on_both_backends(store_location):
    """The store's side alone (no model): a box's proposal accepted under the box's id, with its
    score and kept fields; undone, the box is back exactly; a rerun's done mark refuses a twin."""
    from annotator.app.refine import BoxMask, store_image, waiting_boxes

    with Project(store_location) as project:
        image = project.add_image("a.png", 12, 10)
        cat = project.category_id("dog")
        box_id = store_extras.add_box(project, image, cat, (2, 3, 5, 4), score=0.5, box_id=40)
        store_extras.set_extra(project, "box", box_id, {"attributes": {"truncated": 1}})
        store = ProposalStore(project)
        [box] = waiting_boxes(store)[image]
        mask = np.zeros((10, 12), bool)
        mask[4:6, 3:6] = True
        assert store_image(store, image, [BoxMask(box, mask, 0.75)]) == (1, 0)
        assert store_image(store, image, [BoxMask(box, mask, 0.75)]) == (0, 1)
        assert waiting_boxes(store) == {}
        [p] = store.proposals()
        ann_id = store.accept(p.id, "puppy")
        assert ann_id == 40 and store_extras.boxes(project) == []
        ann = project.annotation(40)
        assert (ann.category, ann.score, ann.area) == ("puppy", 0.5, 6)
        assert ann.prompts["box"] == [2.0, 3.0, 7.0, 7.0]
        assert store_extras.extra(project, "annotation", 40) == {"attributes": {"truncated": 1}}
        store.unaccept(p.id)
        assert project.annotations() == [] and store_extras.boxes(project) == [box]
        assert store_extras.extra(project, "box", 40) == {"attributes": {"truncated": 1}}
        assert store.get(p.id).status == "pending"
        # the box deleted by hand meanwhile: accept still stores the mask, as a new annotation
        store_extras.delete_box(project, 40)
        ann_id = store.accept(p.id)
        assert project.annotation(ann_id).score == pytest.approx(0.75)
