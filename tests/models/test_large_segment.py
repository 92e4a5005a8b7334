"""`annotator segment BIG.tif --point X,Y --window X0,Y0,X1,Y1` on a 20,000 x 20,000 tiled TIFF:
the mask equals the library's reference pipeline on that crop (SAM 1: `SamPredictor`; SAM 2.1:
transformers' processor -> model -> post_process_masks), placed at full-image coordinates.

The crop given to the reference is drawn independently (tests/large_data.render), not read through
our tile reader, so the reader is checked too. Models are tiny and random (tests/tiny_sam.py,
tests/tiny_hf.py); the prompts are chosen so that the masks are neither empty nor the whole window.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from annotator.app.working_window import Window, default_window, placed_rle, window_embedding
from annotator.cli import main
from annotator.engine_encoding import RecentRegions
from annotator.io.masks import mask_to_rle, rle_to_mask
from annotator.io.pyramid import Pyramid
from tests import tiny_hf
from tests.conftest import cli_flags
from tests.large_data import draw_objects, render, write_tiled

SIDE = 20_000
BACKGROUND = (96, 120, 72)
OBJECTS = [
    ("disc", 10_300, 10_250, 40, (230, 40, 40)),
    ("square", 10_080, 10_420, 28, (30, 30, 220)),
    ("disc", 10_620, 9_950, 22, (250, 250, 240)),
    ("square", 4_000, 15_000, 30, (20, 20, 20)),
]
WINDOW = (9_800, 9_700, 10_824, 10_724)  # 1,024 px, crossing tile borders at 10,240
POINT = (10_300, 10_250)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "BIG.tif"
    return write_tiled(path, SIDE, SIDE, draw_objects(OBJECTS), tile=512, background=BACKGROUND)


def _crop(window=WINDOW) -> np.ndarray:
    return render(SIDE, SIDE, BACKGROUND, draw_objects(OBJECTS), window)


def _segment(capsys, *flags: str) -> dict:
    capsys.readouterr()
    assert main(["segment", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def _check_placed(out: dict, reference: np.ndarray, window=WINDOW) -> None:
    """IoU with the reference crop placed at the window, nothing outside it; non-trivial."""
    x0, y0, x1, y1 = window
    assert out["window"] == list(window)
    assert out["rle"]["size"] == [SIDE, SIDE]
    assert 0 < reference.sum() < reference.size  # neither empty nor full: the test can fail
    full = mask_utils.decode(
        {"size": out["rle"]["size"], "counts": out["rle"]["counts"].encode()}
    )  # 400 MB, once: an independent check of the placement
    inside = full[y0:y1, x0:x1].astype(bool)
    outside = int(mask_utils.area({"size": [SIDE, SIDE], "counts": out["rle"]["counts"].encode()}))
    assert outside == int(inside.sum()) == out["area"]  # nothing outside the window
    del full
    iou = (inside & reference).sum() / (inside | reference).sum()
    assert iou >= 0.999, iou
    ys, xs = np.nonzero(reference)
    assert out["bbox"] == [x0 + xs.min(), y0 + ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1]


@pytest.mark.slow
def test_sam1_window_matches_sam_predictor_on_the_crop(big, engine_args, tiny_sam_path, capsys):
    from segment_anything import SamPredictor

    from tests.tiny_sam import load_reference

    window = ",".join(map(str, WINDOW))
    out = _segment(capsys, str(big), "--point", f"{POINT[0]},{POINT[1]}", "--window", window,
                   "--top-k", "3", *cli_flags(engine_args))  # fmt: skip
    predictor = SamPredictor(load_reference(tiny_sam_path))
    predictor.set_image(_crop())
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[POINT[0] - WINDOW[0], POINT[1] - WINDOW[1]]], dtype=np.float64),
        point_labels=np.array([1]),
        multimask_output=True,
    )
    _check_placed(out, masks[int(np.argmax(scores))])
    assert abs(out["score"] - float(scores.max())) < 1e-5
    assert len(out["labels"]) == 3  # the region head on the same window


@pytest.mark.slow
def test_sam21_window_matches_transformers_on_the_crop(big, engine_args, tmp_path, capsys):
    folder = tmp_path / "sam2"
    model, processor = tiny_hf.save("sam2", folder)
    point = (10_080, 10_420)
    flags = cli_flags(engine_args)
    flags = flags[2:]  # not the SAM 1 checkpoint
    out = _segment(capsys, str(big), "--point", f"{point[0]},{point[1]}", "--window",
                   ",".join(map(str, WINDOW)), "--top-k", "0", "--segmenter", "sam2",
                   "--checkpoint", str(folder), *flags)  # fmt: skip
    local = [[float(point[0] - WINDOW[0]), float(point[1] - WINDOW[1])]]
    inputs = processor(
        images=_crop(), input_points=[[local]], input_labels=[[[1]]], return_tensors="pt"
    )
    with torch.no_grad():
        answer = model(**inputs, multimask_output=True)
    masks = processor.post_process_masks(answer.pred_masks, inputs["original_sizes"])[0][0]
    scores = answer.iou_scores[0, 0].numpy()
    _check_placed(out, masks[int(np.argmax(scores))].numpy().astype(bool))


def test_default_window_is_the_input_size_centred_on_the_prompts():
    window = default_window([(10_300.0, 10_250.0, True)], None, 1024, SIDE, SIDE)
    assert window == Window(9_788, 9_738, 10_812, 10_762)
    corner = default_window([(5.0, 19_990.0, True)], None, 1024, SIDE, SIDE)
    assert corner == Window(0, SIDE - 1024, 1024, SIDE)  # shifted inside the image
    spread = default_window([(100.0, 100.0, True)], (100.0, 100.0, 3000.0, 200.0), 1024, SIDE, SIDE)
    assert (spread.x0, spread.x1) == (84, 3016) and spread.height == 1024  # holds every prompt


def test_default_window_from_the_cli(big, engine_args, capsys):
    out = _segment(capsys, str(big), "--point", f"{POINT[0]},{POINT[1]}", "--top-k", "0",
                   *cli_flags(engine_args))  # fmt: skip
    assert out["window"] == [10_172, 10_122, 10_428, 10_378]  # tiny SAM's 256-px input
    assert 0 < out["area"] < 256 * 256


def test_a_visited_window_is_answered_from_the_cache(big, engine, monkeypatch):
    window = Window(4_000, 14_800, 4_256, 15_056)
    with Pyramid.open(big) as image:
        first = window_embedding(engine, image, window)
        engine.recent_regions.clear()  # the disk cache, not the windows kept in memory
        monkeypatch.setattr(engine.sam, "encode", lambda *a: pytest.fail("encoded again"))
        monkeypatch.setattr(engine.head, "prepare", lambda *a: pytest.fail("prepared again"))
        monkeypatch.setattr(image, "read", lambda *a: pytest.fail("decoded again"))
        again = window_embedding(engine, image, window)
    assert again.image_hash == first.image_hash and again.complete
    assert np.array_equal(engine.sam.to_arrays(again.sam)["features"],
                          engine.sam.to_arrays(first.sam)["features"])  # fmt: skip


def test_a_return_to_a_recent_window_is_answered_from_memory(big, engine, monkeypatch):
    """Issue 26: the last windows stay in memory in front of the disk cache; older ones, and
    whole images, are read from disk again, equal."""
    windows = [Window(4_000 + 300 * i, 14_800, 4_256 + 300 * i, 15_056) for i in range(3)]
    engine.recent_regions.clear()
    with Pyramid.open(big) as image:
        first = [window_embedding(engine, image, w) for w in windows]
        assert len(engine.recent_regions) == 3 and all(e.complete for e in first)
        for part, name in (
            (engine.cache, "load"),
            (engine.sam, "encode"),
            (engine.head, "prepare"),
        ):
            monkeypatch.setattr(part, name, lambda *a, name=name: pytest.fail(f"{name} called"))
        assert window_embedding(engine, image, windows[0]) is first[0]
        monkeypatch.undo()
        kept = engine.recent_regions
        engine.recent_regions = RecentRegions(max_count=2)  # the oldest falls out
        for embedding in first:
            engine.recent_regions.put(embedding.image_hash, embedding)
        assert len(engine.recent_regions) == 2
        again = window_embedding(engine, image, windows[0])  # from disk
    assert again is not first[0] and again.image_hash == first[0].image_hash and again.complete
    assert np.array_equal(engine.sam.to_arrays(again.sam)["features"],
                          engine.sam.to_arrays(first[0].sam)["features"])  # fmt: skip
    other = engine.with_head("crop")  # another model id: its own regions
    assert other.recent_regions.get(first[2].image_hash, other.model_id) is None
    assert engine.recent_regions.get(first[2].image_hash, other.model_id) is None
    engine.recent_regions = kept
    small = RecentRegions(max_bytes=first[0].sam.nbytes)  # one alone over the budget: not kept
    small.put(first[0].image_hash, first[0])
    assert len(small) == 0


@pytest.mark.parametrize("seed", range(6))
def test_placed_rle_equals_the_rle_of_the_whole_mask(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(5, 40, size=2)
    h, w = rng.integers(1, height + 1), rng.integers(1, width + 1)
    y0, x0 = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    crop = rng.random((h, w)) < [0.0, 0.3, 0.9, 1.0][seed % 4]
    full = np.zeros((height, width), bool)
    full[y0 : y0 + h, x0 : x0 + w] = crop
    rle = placed_rle(crop, int(x0), int(y0), int(height), int(width))
    assert rle == mask_to_rle(full)
    assert np.array_equal(rle_to_mask(rle), full)
