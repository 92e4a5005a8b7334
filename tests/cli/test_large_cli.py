"""The CLI on large images: `embed --level --tiles`, `find` on a tile grid, bad TIFFs in one line."""

from __future__ import annotations

import json

import pytest

from annotator.cli import main
from annotator.io import tiles
from tests.conftest import cli_flags
from tests.large_data import draw_objects, write_tags, write_tiled

OBJECTS = [("disc", 2100, 2050, 60, (230, 40, 40)), ("square", 300, 3900, 50, (30, 30, 220))]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embed")
    # 17.2 MP (over io/tiles.LARGE_PIXELS) with its own three overviews (4200 -> 525 px)
    write_tiled(folder / "big.tif", 4200, 4100, draw_objects(OBJECTS), tile=256, overviews=3)
    return folder


def _embed(capsys, *flags) -> str:
    capsys.readouterr()
    code = main(["embed", *flags])
    err = capsys.readouterr().err
    assert code == 0, err
    return err.strip().splitlines()[-1]


def test_embed_level_and_tiles(folder, engine_args, tmp_path, capsys):
    flags = [*cli_flags(engine_args), "--cache-dir", str(tmp_path)]
    assert _embed(capsys, str(folder), "--level", "3", "--tiles", "all", *flags) == (
        "1 embedded, 0 already cached, 0 failed"
    )
    # level 3 is 525 x 513 px: tiny SAM's 256-px windows overlapping by 64 make a 3 x 3 grid
    assert len(list(tmp_path.glob("embeddings/sam/**/*.npz"))) == 9
    assert len(list(tmp_path.glob("embeddings/clip/**/*.npz"))) == 9
    assert _embed(capsys, str(folder), "--level", "3", "--tiles", "all", *flags) == (
        "0 embedded, 1 already cached, 0 failed"
    )
    _embed(capsys, str(folder), *flags)  # visible-default: one window, the whole image
    assert len(list(tmp_path.glob("embeddings/sam/**/*.npz"))) == 10


def test_embed_refuses_a_missing_level(folder, engine_args, tmp_path, capsys):
    code = main(["embed", str(folder), "--level", "9", *cli_flags(engine_args),
                 "--cache-dir", str(tmp_path)])  # fmt: skip
    assert code == 1
    assert "--level 9: the image has levels 0 to 3" in capsys.readouterr().err


def test_find_runs_on_the_tile_grid(tmp_path, engine_args, monkeypatch, capsys):
    monkeypatch.setattr(tiles, "LARGE_PIXELS", 500 * 500)  # a 600-px image counts as large
    image = write_tiled(tmp_path / "x.tif", 600, 580, draw_objects(OBJECTS[:1]), tile=128)
    capsys.readouterr()
    code = main(["find", str(image), "dog", "--threshold", "-1", "--top-k", "5", "--points-per-side", "4",
                 "--pred-iou-thresh", "0", "--stability-thresh", "0",
                 *cli_flags(engine_args), "--cache-dir", str(tmp_path / "c")])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out["width"], out["height"]) == (600, 580) and out["tiles"] == "256 px, overlap 64"
    assert 0 < len(out["matches"]) <= 5
    for match in out["matches"]:
        assert match["rle"]["size"] == [580, 600]
        x, y, w, h = match["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 600 and y + h <= 580 and match["area"] > 0
    # 3 x 3 windows were embedded
    assert len(list((tmp_path / "c").glob("embeddings/sam/**/*.npz"))) == 9


def test_segment_refuses_a_bad_tiff_in_one_line(tmp_path, engine_args, capsys):
    tags = {256: 1_000_000_000, 257: 1, 258: 8, 259: 8, 262: 1, 273: -1, 277: 1, 278: 1, 279: 8}
    bad = write_tags(tmp_path / "strip.tif", tags, b"\0" * 8)
    code = main(["segment", str(bad), "--point", "5,0", "--top-k", "0", *cli_flags(engine_args)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "absurd tile or strip size" in err


def test_segment_save_stores_the_full_image_rle(folder, engine_args, tmp_path, capsys):
    project = tmp_path / "p"
    project.mkdir()
    image = project / "big.tif"
    image.write_bytes((folder / "big.tif").read_bytes())
    capsys.readouterr()
    code = main(["segment", str(image), "--point", "2100,2050", "--top-k", "0",
                 "--category", "disc", "--save", str(project), *cli_flags(engine_args)])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["window"] == [1972, 1922, 2228, 2178]
    from annotator.store import Project

    with Project.open_folder(project) as store:
        (record,) = store.images()
        (annotation,) = store.annotations()
    assert (record.width, record.height) == (4200, 4100)
    assert annotation.rle == out["rle"] and annotation.area == out["area"] > 0
    assert list(annotation.bbox) == out["bbox"]
