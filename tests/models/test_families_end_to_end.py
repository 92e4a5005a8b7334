"""Every segmenter family through the commands that use a segmenter: segment, find (grid
proposals), compare, eval clicks (with and without the mask prompt) — tiny upstream models."""

from __future__ import annotations

import json

import pytest

from tests import tiny_hf
from tests.conftest import cli_flags, shared_data

FAMILIES = ("sam2", "edgetam", "sam_hq")


@pytest.fixture(scope="module", params=FAMILIES)
def family_flags(request, tmp_path_factory, engine_args):
    folder = tmp_path_factory.mktemp(request.param)
    tiny_hf.save(request.param, folder)
    flags = [f for f in cli_flags(engine_args)]
    i = flags.index("--sam-checkpoint")
    del flags[i : i + 2]
    cache = tmp_path_factory.mktemp(f"{request.param}-cache")
    return request.param, [*flags, "--segmenter", request.param, "--checkpoint", str(folder),
                           "--cache-dir", str(cache)]  # fmt: skip


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    import numpy as np
    from PIL import Image

    image = np.full((48, 64, 3), 30, np.uint8)
    image[10:34, 14:44] = (220, 120, 40)
    path = tmp_path_factory.mktemp("img") / "a.png"
    Image.fromarray(image).save(path)
    return path


def test_segment_find_and_compare(family_flags, image_path, capsys):
    from annotator.cli import main

    family, flags = family_flags
    assert main(["segment", str(image_path), "--point", "28,20", "--top-k", "3", *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["width"] == 64 and out["height"] == 48
    assert len(out["labels"]) == (3 if out["area"] > 0 else 0)  # random weights: maybe empty
    code = main(["find", str(image_path), "dog", "--points-per-side", "4",
                 "--pred-iou-thresh", "0", "--stability-thresh", "0", *flags])  # fmt: skip
    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert found["proposals"] >= 0 and isinstance(found["matches"], list)
    code = main(["compare", str(image_path), "--point", "28,20", "--b", "region-head=crop",
                 "--json", *flags])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("mask_input", ["on", "off"])
def test_eval_clicks_on_grabcut(family_flags, mask_input, tmp_path, capsys):
    from annotator.cli import main

    family, flags = family_flags
    data = shared_data("grabcut")
    out = tmp_path / "clicks.json"
    code = main(["eval", "clicks", "--images", str(data / "images"), "--masks", str(data / "masks"),
                 "--limit", "2", "--max-clicks", "3", "--mask-input", mask_input,
                 "--json", str(out), *flags])  # fmt: skip
    assert code == 0
    document = json.loads(out.read_text())
    assert document["models"]["sam"].startswith(family)


def test_the_cli_offers_every_registered_family():
    from annotator.cli.flags import SEGMENTER_FAMILIES
    from annotator.models.registry import FAMILIES, REGISTRY

    assert SEGMENTER_FAMILIES == FAMILIES == tuple(REGISTRY)
