"""Text search over automatic masks: a query planted as one real region's embedding finds it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annotator.discovery.find import Finder, query_embedding
from annotator.discovery.proposals import ProposalSettings
from annotator.engine import Engine
from annotator.errors import PromptError
from annotator.vocab.index import TextIndex
from annotator.vocab.vocabulary import Vocabulary
from tests.cli.test_discovery_cli import run_cli
from tests.conftest import cli_flags

# Tiny random SAMs predict low IoUs and noisy masks spanning the image (so box NMS would leave
# one): accept every candidate and switch NMS off to have many regions to tell apart.
LOOSE = ProposalSettings(
    points_per_side=4, pred_iou_thresh=-1.0, stability_score_thresh=0.0, nms_thresh=1.0
)


def planted_engine(engine: Engine, text: str, vector: np.ndarray) -> Engine:
    """The same models with a text encoder that maps the query's prompt to `vector` (any other
    prompt to a fixed random unit vector): the query's embedding is the planted region's."""
    rng = np.random.default_rng(1)
    dim = vector.shape[0]

    def encode(prompts):
        out = rng.standard_normal((len(prompts), dim)).astype(np.float32)
        for i, prompt in enumerate(prompts):
            if prompt == f"a photo of a {text}.":
                out[i] = vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    index = TextIndex(Vocabulary.loads("dog\ncat\n"), encode, "planted", ("a photo of a {}.",))
    index.build()
    return Engine(engine.sam, engine.clip, engine.head, index, cache=None)


@pytest.fixture(scope="module")
def embedding(engine, photo):
    return engine.embed(photo)


def test_planted_query_finds_its_region(engine, embedding):
    finder = Finder(engine, LOOSE)
    proposals = finder.proposals(embedding)
    assert len(proposals) >= 3
    regions = finder.region_matrix(embedding)
    # the proposal least like any other (without NMS, exact duplicates may exist)
    cosines = regions @ regions.T
    np.fill_diagonal(cosines, -1.0)
    target = int(np.argmin(cosines.max(axis=1)))
    assert cosines[target].max() < 0.9999
    # the planted vector comes from the real head on a real proposal
    planted = engine.region_embedding(embedding, proposals[target].mask)
    np.testing.assert_allclose(regions[target], planted, rtol=1e-5, atol=1e-6)

    search = Finder(planted_engine(engine, "zebra crossing", planted), proposer=finder.proposer)
    np.testing.assert_allclose(query_embedding(search.engine, "zebra crossing"), planted, atol=1e-6)
    matches = search.find(embedding, "zebra crossing", top_k=None)
    assert len(matches) == len(proposals)
    best = matches[0]
    assert best.index == target
    assert best.score == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(best.mask, proposals[target].mask)
    assert best.box == proposals[target].box
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    # the scores are the cosine similarities of the regions with the query
    np.testing.assert_allclose(scores, np.sort(regions @ planted)[::-1], atol=1e-5)

    # threshold and top_k cut the list without reordering it
    cut = scores[2]
    assert [m.index for m in search.find(embedding, "zebra crossing", threshold=cut, top_k=None)] \
        == [m.index for m in matches[:3]]  # fmt: skip
    assert [m.index for m in search.find(embedding, "zebra crossing", top_k=1)] == [target]


def test_second_query_reuses_proposals_and_regions(engine, embedding):
    finder = Finder(engine, LOOSE)
    finder.find(embedding, "dog")
    regions = finder.region_matrix(embedding)
    finder.find(embedding, "cat")
    assert finder.proposer.computed <= 1  # 0 when another test already cached them on disk
    assert finder.region_matrix(embedding) is regions


def test_empty_query_is_a_user_error(engine, embedding):
    with pytest.raises(PromptError):
        Finder(engine, LOOSE).find(embedding, "   ")


def test_find_command_prints_masks_as_json(engine_args, photo_path):
    result = run_cli(
        "find", str(photo_path), "dog", "--top-k", "3", "--points-per-side", "4",
        "--pred-iou-thresh", "-1", "--stability-thresh", "0", "--nms-thresh", "1.0",
        *cli_flags(engine_args),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["query"] == "dog" and 1 <= len(out["matches"]) <= 3
    scores = [m["score"] for m in out["matches"]]
    assert scores == sorted(scores, reverse=True)
    for m in out["matches"]:
        rle = {"size": m["rle"]["size"], "counts": m["rle"]["counts"].encode()}
        mask = mask_utils.decode(rle).astype(bool)
        assert mask.shape == (out["height"], out["width"])
        assert int(mask.sum()) == m["area"]
        assert m["bbox"] == [float(v) for v in mask_utils.toBbox(rle)]
        x, y, w, h = m["bbox"]
        assert m["box"] == [x, y, x + w, y + h]
