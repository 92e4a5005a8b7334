"""`annotator autolabel` / `review`: pending proposals, resumability under SIGKILL, accept -> COCO.

Tiny random models (tests/conftest.py) on 20 small crops of real photographs (or generated images
when the shared data is absent). Loose mask filters: random SAMs predict low IoUs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotator import cli
from annotator.app.review import History, ReviewQueue
from annotator.store import Project
from annotator.store.proposals import ProposalStore
from tests.conftest import SHARED_DATA, cli_flags

ROOT = Path(__file__).resolve().parents[2]
CLASSES = "dog,car,person"
LOOSE = [
    "--points-per-side", "3",
    "--pred-iou-thresh", "-1",
    "--stability-thresh", "0",
    "--threshold", "-1",
    "--top-k", "2",
]  # fmt: skip


def make_folder(folder: Path, count: int = 20) -> Path:
    """`count` small RGB images: crops of real photos when available, else seeded noise blobs."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = sorted((SHARED_DATA / "coco_mval80" / "img").glob("*.jpg"))[:count]
    rng = np.random.default_rng(0)
    for i in range(count):
        if photos:
            with Image.open(photos[i % len(photos)]) as im:
                w, h = im.size
                crop = im.convert("RGB").crop((0, 0, min(w, 96), min(h, 72)))
        else:
            pixels = (rng.random((72, 96, 3)) * 255).astype(np.uint8)
            crop = Image.fromarray(pixels)
        crop.save(folder / f"img{i:02d}.png")
    return folder


def autolabel(folder: Path, engine_args: dict, cache: Path, *extra: str) -> int:
    flags = [*cli_flags(engine_args), "--cache-dir", str(cache)]
    return cli.main(["autolabel", str(folder), "--classes", CLASSES, *LOOSE, *flags, *extra])


def contents(folder: Path) -> list[tuple]:
    """Every stored proposal as comparable data, independent of row ids and timestamps."""
    with Project.open_folder(folder) as project:
        names = {r.id: r.file_name for r in project.images()}
        rows = [
            (names[p.image_id], p.category, round(p.score, 5), p.counts, p.status)
            for p in ProposalStore(project).proposals(None)
        ]
    return sorted(rows)


def summary(folder: Path, capsys) -> dict:
    capsys.readouterr()
    assert cli.main(["review", str(folder), "--summary"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def labelled(engine_args, tmp_path_factory):
    """One uninterrupted run over 20 images: the reference."""
    folder = make_folder(tmp_path_factory.mktemp("run") / "images")
    assert autolabel(folder, engine_args, tmp_path_factory.mktemp("cache")) == 0
    return folder


def test_autolabel_makes_pending_proposals(labelled, capsys, engine_args, tmp_path):
    counts = summary(labelled, capsys)
    assert counts["images_done"] == 20 and counts["images"] == 20
    assert counts["pending"] > 0 and counts["accepted"] == counts["rejected"] == 0
    rows = contents(labelled)
    assert {r[1] for r in rows} <= set(CLASSES.split(","))
    assert len(rows) == counts["pending"]
    with Project.open_folder(labelled) as project:
        assert project.annotations() == []  # pending proposals are not annotations
        per_image = {}
        for p in ProposalStore(project).proposals():
            per_image.setdefault(p.image_id, []).append(p)
            assert p.area > 0 and (p.height, p.width) == (72, 96)
        assert max(len(v) for v in per_image.values()) <= 2 * 3  # top-k per class
    # the same command again recomputes nothing and adds nothing
    capsys.readouterr()
    assert autolabel(labelled, engine_args, tmp_path / "cache") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["labelled"] == 0 and out["skipped_done"] == 20 and out["proposals"] == 0
    assert contents(labelled) == rows


def _done(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM autolabel_done").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def _interrupt_mid_run(folder: Path, cache: Path, engine_args: dict, sig: int):
    """Run `autolabel` in a subprocess, send `sig` once 3 images are done; (process, stderr, done)."""
    # SIGINT's default handler first: a shell that starts a job in the background without job
    # control (`cmd &` in a script) makes it ignore SIGINT, and an ignored signal is inherited
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from annotator import cli; sys.exit(cli.main(sys.argv[1:]))"
    )
    args = ["autolabel", str(folder), "--classes", CLASSES, *LOOSE]
    args += [*cli_flags(engine_args), "--cache-dir", str(cache)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = folder / ".annotator" / "project.db"
    deadline = time.monotonic() + 240
    try:
        while _done(db) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, sig)
    finally:
        _, err = proc.communicate(timeout=60)
    return proc, err, _done(db)


def test_ctrl_c_leaves_a_resumable_state(labelled, engine_args, tmp_path, capsys):
    folder = make_folder(tmp_path / "images")
    proc, err, done = _interrupt_mid_run(folder, tmp_path / "cache", engine_args, signal.SIGINT)
    assert 0 < done < 20, f"the interrupt did not land mid-run ({done} images done)"
    assert proc.returncode == 130 and "rerun the same command" in err and "Traceback" not in err
    with Project.open_folder(folder) as project:
        assert project.integrity_ok()
    capsys.readouterr()
    assert autolabel(folder, engine_args, tmp_path / "cache") == 0
    assert json.loads(capsys.readouterr().out)["skipped_done"] == done
    assert contents(folder) == contents(labelled)


def test_sigkill_mid_run_then_rerun_equals_uninterrupted(labelled, engine_args, tmp_path, capsys):
    folder = make_folder(tmp_path / "images")
    cache = tmp_path / "cache"
    proc, _, killed_at = _interrupt_mid_run(folder, cache, engine_args, signal.SIGKILL)
    assert 0 < killed_at < 20, f"the kill did not land mid-run ({killed_at} images done)"
    with Project.open_folder(folder) as project:
        assert project.integrity_ok()
    capsys.readouterr()
    assert autolabel(folder, engine_args, cache) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["skipped_done"] == killed_at  # finished images are not recomputed
    assert out["labelled"] == 20 - killed_at
    assert summary(folder, capsys) == summary(labelled, capsys)
    assert contents(folder) == contents(labelled)  # no duplicate, nothing missing


def test_review_accept_reject_undo_and_export(labelled, tmp_path, capsys):
    folder = tmp_path / "copy"
    shutil.copytree(labelled, folder)
    with Project.open_folder(folder) as project:
        store = ProposalStore(project)
        queue = ReviewQueue(store, order="score")
        scores = [p.score for p in queue.items]
        assert scores == sorted(scores, reverse=True)
        history = History()
        first = queue.current
        history.push(queue.accept())
        assert store.get(first.id).status == "accepted"
        [ann] = project.annotations()
        assert ann.category == first.category and ann.counts == first.counts
        queue.refresh()
        second = queue.current
        history.push(queue.reject())
        queue.refresh()
        history.push(queue.change_class("horse"))
        third = queue.current
        assert store.get(third.id).category == "horse"
        history.undo()
        assert store.get(third.id).category == third.category
        history.undo()
        assert store.get(second.id).status == "pending"
        history.undo()
        assert store.get(first.id).status == "pending" and project.annotations() == []
        history.redo()
        assert store.get(first.id).status == "accepted" and len(project.annotations()) == 1
        pending = len(store.proposals())
        for order in ("image", "class"):
            queue.set_order(order)
            assert len(queue.items) == pending
    before = summary(folder, capsys)
    threshold = float(np.median([r[2] for r in contents(folder)]))
    assert cli.main(["review", str(folder), "--accept-above", str(threshold)]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["accepted_now"] > 0
    assert after["accepted"] == before["accepted"] + after["accepted_now"]
    assert after["pending"] == before["pending"] - after["accepted_now"]
    # accepted proposals export as normal COCO annotations; pending ones do not
    out = tmp_path / "coco.json"
    assert cli.main(["export", str(folder), "-o", str(out)]) == 0
    coco = json.loads(out.read_text())
    assert len(coco["annotations"]) == after["accepted"]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    with Project.open_folder(folder) as project:
        accepted = {(p.counts, p.category) for p in ProposalStore(project).proposals("accepted")}
    exported = {(a["segmentation"]["counts"], names[a["category_id"]]) for a in coco["annotations"]}
    assert exported == accepted


def test_user_errors_are_one_line(tmp_path, capsys, engine_args):
    checks = [
        (["autolabel", str(tmp_path / "nope"), "--classes", "dog"], "no such folder"),
        (["autolabel", str(tmp_path), "--classes", " , "], "--classes is empty"),
        (["autolabel", str(tmp_path), "--label-set"], "no categories"),
        (["review", str(tmp_path / "nope"), "--summary"], "no project here"),
    ]
    for argv, message in checks:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["autolabel", str(empty), "--classes", "dog"]) == 2
    assert "no images" in capsys.readouterr().err
