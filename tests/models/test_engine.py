"""The engine end to end with tiny real models: parity with SamPredictor, labels, cache behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from segment_anything import SamPredictor

from annotator.cache import ArrayCache
from annotator.engine import Engine
from annotator.errors import PromptError


@pytest.fixture(scope="module")
def embedded(engine, photo):
    return engine.embed(photo)


@pytest.fixture(scope="module")
def predictor(engine, photo):
    predictor = SamPredictor(engine.sam.model)
    predictor.set_image(photo)
    return predictor


def test_embedding_matches_set_image(embedded, predictor):
    assert np.allclose(embedded.sam.features, predictor.features[0].numpy(), atol=1e-5)
    assert embedded.size == predictor.original_size


@pytest.mark.parametrize(
    ("points", "box"),
    [
        ([(120.0, 90.0, True)], None),
        ([(120.0, 90.0, True), (40.0, 60.0, False)], None),
        ([], (30.0, 20.0, 200.0, 160.0)),
        ([(100.0, 80.0, True)], (30.0, 20.0, 200.0, 160.0)),
    ],
)
def test_segment_equals_predictor_best_candidate(engine, embedded, predictor, points, box):
    proposal = engine.segment(embedded, points, box)
    multimask = len(points) == 1 and box is None
    coords = np.array([p[:2] for p in points]) if points else None
    labels = np.array([int(p[2]) for p in points]) if points else None
    masks, scores, _ = predictor.predict(
        point_coords=coords,
        point_labels=labels,
        box=np.array(box) if box else None,
        multimask_output=multimask,
    )
    best = int(np.argmax(scores))
    assert proposal.chosen == best
    assert len(proposal.candidates) == len(scores)
    assert np.array_equal(proposal.mask, masks[best])
    assert proposal.score == pytest.approx(float(scores[best]), abs=1e-5)
    # Tab: every other candidate, upscaled on demand, equals the predictor's too.
    for i in range(len(scores)):
        assert np.array_equal(engine.select(embedded, proposal, i).mask, masks[i])


def test_labels_are_vocabulary_entries_best_first(engine, embedded):
    proposal = engine.segment(embedded, [(120.0, 90.0, True)], top_k=5)
    names = [name for name, _ in proposal.labels]
    probabilities = [p for _, p in proposal.labels]
    if not proposal.mask.any():
        pytest.skip("random tiny SAM produced an empty mask at this point")
    assert len(names) == 5 and len(set(names)) == 5
    assert set(names) <= set(engine.vocabulary.names())
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0.0 < sum(probabilities) <= 1.0 + 1e-6
    # The labels are the text index's verdict on the head's region embedding of exactly this mask.
    region = engine.region_embedding(embedded, proposal.mask)
    assert np.allclose(region, proposal.region)
    assert engine.index.topk(region, 5) == proposal.labels


def test_relabel_restricted_to_project_labels(engine, embedded):
    mask = np.zeros(embedded.size, dtype=bool)
    mask[20:120, 30:200] = True
    restricted = engine.relabel(embedded, mask, top_k=3, restrict=["horse", "boat"])
    assert [name for name, _ in restricted] in (["horse", "boat"], ["boat", "horse"])
    assert engine.relabel(embedded, np.zeros_like(mask)) == []
    with pytest.raises(PromptError):
        engine.relabel(embedded, mask[:10])


def test_prompt_errors(engine, embedded):
    with pytest.raises(PromptError):
        engine.segment(embedded, [], None)
    with pytest.raises(PromptError):
        engine.segment(embedded, [], (10.0, 10.0, 10.0, 50.0))
    with pytest.raises(PromptError):
        engine.segment(embedded, [(float("nan"), 1.0, True)])
    # Points outside the image are allowed (SAM handles them) and still give an image-sized mask.
    proposal = engine.segment(embedded, [(-50.0, 1e5, True)])
    assert proposal.mask.shape == embedded.size


def test_embed_from_path_is_cached_and_identical(engine_args, photo_path, tmp_path, monkeypatch):
    engine = Engine.from_paths(**engine_args, cache_dir=tmp_path)
    first = engine.embed(photo_path)
    assert engine.is_cached(photo_path)

    def boom(*_):
        raise AssertionError("the encoder must not run for a cached image")

    monkeypatch.setattr(engine.sam, "encode", boom)
    monkeypatch.setattr(engine.head, "prepare", boom)
    second = engine.embed(photo_path)
    assert np.array_equal(first.sam.features, second.sam.features)
    assert first.sam.original_size == second.sam.original_size
    assert first.clip.keys() == second.clip.keys()
    for key in first.clip:
        assert np.array_equal(first.clip[key], second.clip[key])


def test_corrupt_cache_file_is_recomputed(engine_args, photo_path, tmp_path):
    engine = Engine.from_paths(**engine_args, cache_dir=tmp_path)
    reference = engine.embed(photo_path)
    files = sorted((tmp_path / "embeddings").rglob("*.npz"))
    assert len(files) == 2  # the SAM half and the CLIP half
    for path in files:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # a truncated write
    again = engine.embed(photo_path)
    assert np.array_equal(reference.sam.features, again.sam.features)
    files[0].write_bytes(b"not a zip at all")
    files[1].write_bytes(files[1].read_bytes()[:-300] + bytes(300))  # damaged tail
    assert np.array_equal(engine.embed(photo_path).sam.features, reference.sam.features)


def test_cache_rejects_flipped_bits(tmp_path):
    cache = ArrayCache(tmp_path)
    arrays = {"x": np.arange(100000, dtype=np.float32)}
    cache.save("sam", "model", "ab" * 32, arrays)
    path = cache.path("sam", "model", "ab" * 32)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cache.load("sam", "model", "ab" * 32) is None
    assert not path.exists()


def test_changing_the_head_reuses_the_sam_half(engine_args, photo_path, tmp_path, monkeypatch):
    engine = Engine.from_paths(**engine_args, cache_dir=tmp_path)
    engine.embed(photo_path)
    crop = engine.with_head("crop")
    monkeypatch.setattr(
        crop.sam, "encode", lambda *_: (_ for _ in ()).throw(AssertionError("re-encoded"))
    )
    embedding = crop.embed(photo_path)
    assert embedding.model_id.endswith("|crop")


def test_huge_images_upscale_only_the_chosen_candidate(engine, embedded, predictor, monkeypatch):
    """Past EXACT_UPSCALE_MAX_PIXELS a click upscales one candidate (time and memory); Tab upscales
    the others then, equal to the predictor's but for pixels within a float32 rounding of 0."""
    import annotator.engine as engine_module

    monkeypatch.setattr(engine_module, "EXACT_UPSCALE_MAX_PIXELS", 100)
    proposal = engine.segment(embedded, [(120.0, 90.0, True)])
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[120.0, 90.0]]), point_labels=np.array([1]), multimask_output=True
    )
    assert [c.mask is None for c in proposal.candidates] == [True] * 3
    for i in range(3):
        mask = engine.select(embedded, proposal, i).mask
        assert mask.shape == masks[i].shape and (mask != masks[i]).mean() < 1e-4
