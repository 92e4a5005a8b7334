"""Side by side: two model choices on the same image and clicks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotator.discovery.compare import compare, format_comparison, mask_iou
from tests.cli.test_discovery_cli import main
from tests.conftest import cli_flags

CLICKS = [(120.0, 90.0, True), (300.0, 200.0, True), (40.0, 60.0, False)]


def same_labels(got, expected):
    assert [n for n, _ in got] == [n for n, _ in expected]
    np.testing.assert_allclose([p for _, p in got], [p for _, p in expected], rtol=1e-5)


def test_compare_two_heads(engine, photo_path):
    crop = engine.with_head("crop")
    result = compare(engine, crop, photo_path, CLICKS, top_k=3)
    embedding = engine.embed(photo_path)
    expected = engine.segment(embedding, CLICKS, top_k=3)
    # each side is exactly what its engine answers for all the clicks
    assert np.array_equal(result.a.mask, expected.mask)
    same_labels(result.a.labels, expected.labels)
    same_labels(result.b.labels, crop.segment(crop.embed(photo_path), CLICKS, top_k=3).labels)
    assert result.a.model_id.endswith("|pool") and result.b.model_id.endswith("|crop")
    # the same SAM: the same mask, different region heads
    assert np.array_equal(result.a.mask, result.b.mask) and result.iou == 1.0
    assert len(result.a.click_seconds) == len(result.b.click_seconds) == len(CLICKS)
    assert all(t > 0 for t in result.a.click_seconds + result.b.click_seconds)
    text = format_comparison(result)
    assert str(result.a.area) in text and "mask IoU" in text
    for name, _ in result.a.labels + result.b.labels:
        assert name in text


def test_mask_iou_independent():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    a, b = rng.random((2, 30, 40)) > 0.5
    rle = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in (a, b)]
    assert mask_iou(a, b) == pytest.approx(mask_utils.iou([rle[0]], [rle[1]], [0])[0][0])
    assert mask_iou(a & False, b & False) == 1.0


def test_compare_command_prints_both_sides(engine_args, photo_path, capsys):
    flags = cli_flags(engine_args)
    argv = ["compare", str(photo_path), "--point", "120,90", "--point", "300,200",
            "--a", "region-head=pool", "--b", "region-head=crop", "--top-k", "3", *flags]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "|pool" in text and "|crop" in text and "click 2" in text and "mask IoU" in text
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["a"]["model"].endswith("|pool") and out["b"]["model"].endswith("|crop")
    assert out["iou"] == 1.0 and out["a"]["area"] == out["b"]["area"]
    assert len(out["a"]["click_ms"]) == len(out["b"]["click_ms"]) == 2
    assert len(out["a"]["labels"]) == len(out["b"]["labels"]) == 3
