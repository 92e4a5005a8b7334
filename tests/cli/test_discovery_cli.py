"""`annotator find | tag | similar | compare`: parsing, help and one-line errors.

`run_cli` runs the real command in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from annotator.spec import parse_side

ROOT = Path(__file__).resolve().parents[2]


def main(argv: Sequence[str]) -> int:
    """The `annotator` entry point."""
    from annotator import cli

    return cli.main(list(argv))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from tests.cli.test_discovery_cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_side_syntax():
    assert parse_side("region-head=crop,sam-checkpoint=/x/b.pth") == {
        "region_head": "crop",
        "checkpoint": Path("/x/b.pth"),
    }
    assert parse_side("--clip-model=RN50") == {"clip_model": "RN50"}
    for bad in ("region-head", "colour=red", "region-head=square", "clip-model="):
        with pytest.raises(ValueError):
            parse_side(bad)


def test_help_and_user_errors(tmp_path, capsys):
    # in-process (a subprocess per line would cost seconds each); `run_cli` covers the real process
    for command in ("find", "tag", "similar", "compare"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
        assert f"usage: annotator {command}" in capsys.readouterr().out
    checks = [
        (("find", str(tmp_path / "nope.jpg"), "dog"), "no such image file"),
        (("tag", str(tmp_path / "nope")), "no such folder"),
        (("similar", str(tmp_path), "--image", "a.jpg"), "no project here"),
        (("compare", str(tmp_path / "nope.jpg")), "at least one --point"),
        (("tag", str(tmp_path), "-o", str(tmp_path / "v.txt")), "--seed-labels"),
        (("find", str(tmp_path / "nope.jpg"), "dog", "--top-k", "0"), "--top-k"),
    ]
    for argv, needle in checks:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and needle.lower() in lines[0].lower(), (argv, err)


def test_find_without_a_match_is_an_empty_result(engine_args, tmp_path, capsys):
    # issue 14: an image where no proposal survives printed a traceback; it is an empty result
    import json

    from PIL import Image

    from tests.conftest import cli_flags

    image = tmp_path / "flat.png"
    Image.new("RGB", (64, 48), (120, 120, 120)).save(image)
    flags = [*cli_flags(engine_args), "--cache-dir", str(tmp_path / "cache")]
    for _ in range(2):  # the second run reads the cached empty list
        # nothing passes both filters at 1 (the flags' bounds refuse 1.01 since issue 22)
        extra = ["--stability-thresh", "1", "--pred-iou-thresh", "1"]
        code = main(["find", str(image), "dog", *flags, *extra])
        out = json.loads(capsys.readouterr().out)
        assert code == 0
        assert out["proposals"] == 0 and out["matches"] == []
