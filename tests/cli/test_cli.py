"""The real `annotator` command in a subprocess: JSON output, saving, export, errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cli_flags


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "annotator", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no error message"
    assert "Traceback" not in result.stderr
    assert needle.lower() in lines[-1].lower(), result.stderr


def test_version_and_help():
    assert run("--version").stdout.strip().startswith("annotator ")
    for command in ("embed", "segment", "export", "import", "vocab", "weights"):
        result = run(command, "--help")
        assert result.returncode == 0 and "usage: annotator " + command in result.stdout


def _all_parsers(parser: argparse.ArgumentParser, name: str = "annotator"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{name} {sub_name}")


def test_every_subcommand_and_option_has_help():
    """`--help` is the manual on the command line: no subcommand, argument or flag goes unexplained."""
    from annotator.cli import COMMANDS, build_parser

    parsers = dict(_all_parsers(build_parser()))
    for command in COMMANDS:
        assert f"annotator {command}" in parsers, command
    missing = [
        f"{name}: {action.option_strings or action.dest}"
        for name, parser in parsers.items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert not missing, missing
    for name, parser in parsers.items():
        text = parser.format_help()
        assert text.startswith("usage: " + name), name


def test_segment_prints_json_and_saves(engine_args, engine, photo_path, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    image = folder / photo_path.name
    image.write_bytes(photo_path.read_bytes())
    flags = cli_flags(engine_args)
    result = run("segment", str(image), "--point", "120,90", "--point", "40,60,0", "--top-k", "3",
                 "--save", str(folder), *flags)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) >= {"rle", "bbox", "area", "score", "labels", "annotation_id"}
    from pycocotools import mask as mask_utils

    rle = {"size": out["rle"]["size"], "counts": out["rle"]["counts"].encode()}
    mask = mask_utils.decode(rle).astype(bool)
    assert int(mask.sum()) == out["area"]
    if out["area"]:
        assert len(out["labels"]) == 3 and {"name", "score"} <= set(out["labels"][0])

    coco = tmp_path / "out.json"
    result = run("export", str(folder), "-o", str(coco))
    assert result.returncode == 0, result.stderr
    from pycocotools.coco import COCO

    dataset = COCO(str(coco))
    assert len(dataset.getAnnIds()) == 1
    ann = dataset.loadAnns(dataset.getAnnIds())[0]
    assert ann["area"] == out["area"]
    assert np.array_equal(dataset.annToMask(ann).astype(bool), mask)
    assert dataset.loadImgs(ann["image_id"])[0]["file_name"] == image.name
    # The mask's CLIP vector was saved with it, for `annotator similar`.
    from annotator.store import Project
    from annotator.store.embeddings import ANNOTATION, EmbeddingTable

    with Project(folder / ".annotator" / "project.db") as project:
        stored = EmbeddingTable(project).get(
            ANNOTATION, out["annotation_id"], engine.region_model_id
        )
    expected = engine.region_embedding(engine.embed(image), mask)
    assert stored is not None and np.allclose(stored, expected, atol=1e-5)


def test_embed_folder_skips_cached_and_survives_a_bad_file(engine_args, photo_path, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo_path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cache = tmp_path / "cache"
    flags = [*cli_flags(engine_args), "--cache-dir", str(cache)]
    first = run("embed", str(folder), *flags)
    assert first.returncode == 1
    assert "broken.jpg" in first.stderr and "1 embedded" in first.stderr
    second = run("embed", str(folder), *flags)
    assert "1 already cached" in second.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["segment", "missing.jpg", "--point", "1,1"], "missing.jpg"),
        (["segment", "IMAGE"], "point"),
        (["segment", "IMAGE", "--point", "1,2,3,4"], "point"),
        (["segment", "IMAGE", "--box", "5,5,5,9"], "box"),
        (["export", "nowhere", "-o", "x.json"], "no project"),
        (["import", "missing.json", "--images", ".", "--project", "p"], "missing.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, engine_args, photo_path, tmp_path):
    args = [str(photo_path) if a == "IMAGE" else a for a in args]
    if args[0] == "segment":
        args += cli_flags(engine_args)
    assert_one_line_error(run(*args, cwd=tmp_path), needle)


def test_bad_checkpoint_is_one_line(engine_args, photo_path, tmp_path):
    bad = tmp_path / "model.pth"
    bad.write_text("this is text, not a checkpoint")
    flags = cli_flags(engine_args)
    flags[flags.index("--sam-checkpoint") + 1] = str(bad)
    assert_one_line_error(run("segment", str(photo_path), "--point", "3,3", *flags), "model.pth")


def test_vocab_add_list_remove(tmp_path):
    vocab = tmp_path / "v.txt"
    assert (
        run(
            "vocab", "add", "zebra crossing", "--synonym", "crosswalk", "--vocabulary", str(vocab)
        ).returncode
        == 0
    )
    assert run("vocab", "add", "lamp", "--vocabulary", str(vocab)).returncode == 0
    listed = run("vocab", "list", "--vocabulary", str(vocab)).stdout.splitlines()
    assert listed == ["zebra crossing, crosswalk", "lamp"]
    assert_one_line_error(run("vocab", "add", "lamp", "--vocabulary", str(vocab)), "lamp")
    assert run("vocab", "remove", "lamp", "--vocabulary", str(vocab)).returncode == 0
    assert run("vocab", "list", "--vocabulary", str(vocab), "--search", "walk").stdout.strip() == (
        "zebra crossing, crosswalk"
    )


def test_default_vocabulary_is_listed():
    result = run("vocab", "list", "--search", "crane")
    assert result.returncode == 0
    assert any(line.startswith("crane (") for line in result.stdout.splitlines())
