"""`annotator track` beyond parity: the SAM 1 fallback, bad input, the schema migration."""

from __future__ import annotations

import json
import sqlite3

import pytest

from annotator.cli import main
from annotator.cli.track import _local_default_clip
from annotator.store import Project
from annotator.store.schema import MIGRATIONS, SCHEMA_VERSION
from annotator.store.tracks import TrackStore
from tests import clips


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return clips.write_lossless(tmp_path_factory.mktemp("clip") / "c.mkv", clips.frames(6))


def test_sam1_carries_the_box(tiny_sam_path, clip, tmp_path, capsys):
    project = tmp_path / "p"
    project.mkdir()
    argv = [
        "track",
        str(clip),
        "--frame",
        "2",
        "--box",
        "20,22,52,56",
        "--direction",
        "both",
        "--save",
        str(project),
        "--sam-checkpoint",
        str(tiny_sam_path),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert "previous frame's mask box" in captured.err
    if _local_default_clip() is None:  # no CLIP here: no download just to label
        assert "stay 'object'" in captured.err and summary["labels"] == {}
    assert summary["mode"] == "box-carry" and summary["frames"] == 6
    with Project.open_folder(project) as p:
        store = TrackStore(p)
        (track,) = store.tracks()
        frames = [f for f, _ in store.track_proposals(track.id)]
        assert frames == sorted(set(frames)) and 2 in frames  # each frame at most once


def _fail(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("annotator: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_one_line_nothing_stored(clip, tmp_path, capsys):
    project = tmp_path / "p"
    project.mkdir()
    corrupt = tmp_path / "bad.mp4"
    corrupt.write_bytes(clip.read_bytes()[:300])
    common = ["--save", str(project), "--segmenter", "sam2", "--checkpoint", str(tmp_path / "none")]
    assert "bad.mp4" in _fail(
        ["track", str(corrupt), "--frame", "0", "--point", "5,5", *common], capsys
    )
    assert "--frame" in _fail(["track", str(clip), "--point", "5,5", *common], capsys)
    assert "--point or --box" in _fail(["track", str(clip), "--frame", "1", *common], capsys)
    assert "outside the tracked frames 0:6" in _fail(
        ["track", str(clip), "--frame", "9", "--point", "5,5", *common], capsys
    )
    assert "holds no frame" in _fail(
        ["track", str(clip), "--frame", "0", "--point", "5,5", "--frames", "3:1", *common], capsys
    )
    assert "none" in _fail(["track", str(clip), "--frame", "0", "--point", "5,5", *common], capsys)
    db = project / ".annotator" / "project.db"
    if db.is_file():
        with Project.open_folder(project) as p:
            assert not TrackStore(p).sequences() and not p.images()


def test_migration_from_version_6(tmp_path):
    db = tmp_path / "old" / ".annotator" / "project.db"
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    for version in range(6):
        for statement in MIGRATIONS[version]:
            statement(con) if callable(statement) else con.execute(statement)
    con.execute("PRAGMA user_version = 6")
    con.execute("INSERT INTO images (file_name, width, height, added) VALUES ('a.png', 4, 4, 'x')")
    con.commit()
    con.close()
    with Project.open_folder(tmp_path / "old") as p:
        assert p.schema_version == SCHEMA_VERSION >= 7
        assert [i.file_name for i in p.images()] == ["a.png"]
        assert TrackStore(p).sequences() == [] and p.integrity_ok()
