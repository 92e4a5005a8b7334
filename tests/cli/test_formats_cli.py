"""`annotator export --format F` and `annotator import` (format detected) through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from annotator.cli import main
from annotator.cli.project import FORMATS as CLI_FORMATS
from annotator.io import formats
from annotator.store import Project
from tests.formats_data import make_project

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path):
    make_project(tmp_path / "proj").close()
    return tmp_path / "proj"


def test_cli_lists_the_registry_formats():
    assert CLI_FORMATS == formats.FORMATS


def test_umask_022_export_is_0644_and_ascii(tmp_path, folder):
    out = tmp_path / "x.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    script = f'umask 022; "{sys.executable}" -m annotator export "{folder}" -o "{out}"; stat -c %a "{out}"'
    result = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "644"
    assert max(out.read_bytes()) < 128
    assert "box-only" in result.stderr and result.stderr.startswith("annotator: warning: ")


@pytest.mark.parametrize("name", formats.FORMATS)
def test_export_then_import_detected(tmp_path, folder, name, capsys):
    out = tmp_path / ("x.json" if name == "coco" else name)
    extra = ["--yolo-task", "segment"] if name == "yolo" else []
    assert main(["export", str(folder), "-o", str(out), "--format", name, *extra]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["format"] == name and summary["categories"] == 4
    db = tmp_path / "q.db"
    Project(db).set_meta("folder", str(folder))
    assert main(["import", str(out), "--images", str(folder), "--project", str(db)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["format"] == name and summary["images"] == 3
    with Project(db) as q:
        assert [c.name for c in q.categories()] == ["cat", "dog", "unused", "straße"]


def test_yolo_detect_task_and_bad_input(tmp_path, folder, capsys):
    out = tmp_path / "det"
    assert (
        main(["export", str(folder), "-o", str(out), "--format", "yolo", "--yolo-task", "detect"])
        == 0
    )
    line = (out / "labels" / "train" / "a.txt").read_text().splitlines()[0].split()
    assert len(line) == 5
    (out / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 nan 0.1\n")
    capsys.readouterr()
    assert main(["import", str(out), "--project", str(tmp_path / "q.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("annotator: error: ") and "a.txt:1: value 3" in err and "\n" not in err
