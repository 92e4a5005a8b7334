"""TextIndex with a real (tiny, seeded) open_clip text encoder: rows, scoring, cache, speed."""

from __future__ import annotations

import time

import numpy as np
import open_clip
import pytest
import torch

from annotator.vocab.index import TextIndex, cache_file
from annotator.vocab.vocabulary import Vocabulary
from tests.tiny_clip import tiny_config

TEMPLATES = ("a photo of a {}.", "a drawing of the {}.")


@pytest.fixture(scope="module")
def clip_encode():
    """texts -> (N, D) normalised embeddings of a tiny open_clip CLIP (random, seeded)."""
    torch.manual_seed(0)
    model = open_clip.CLIP(**tiny_config("convnext")).eval()

    @torch.no_grad()
    def encode(texts):
        features = model.encode_text(open_clip.tokenize(list(texts)))
        return torch.nn.functional.normalize(features, dim=-1).numpy()

    return encode


class Counting:
    """Wraps an encoder and records every text it was asked for."""

    def __init__(self, encode):
        self.encode, self.seen = encode, []

    def __call__(self, texts):
        self.seen.extend(texts)
        return self.encode(texts)


VOCAB = "dog, puppy, hound\ncat, kitten\ncar\ncrane (bird), crane\ncrane (machine), crane\n"


def test_rows_are_template_means_of_each_distinct_text(clip_encode):
    vocab = Vocabulary.loads(VOCAB)
    index = TextIndex(vocab, clip_encode, "tiny", templates=TEMPLATES)
    index.build()
    texts = list(dict.fromkeys(t for e in vocab for t in e.texts))
    assert index.rows == len(texts) == 9  # "crane" is shared by two entries, stored once
    for i, text in enumerate(texts):
        per_template = clip_encode([t.format(text) for t in TEMPLATES])
        mean = per_template.mean(axis=0)
        np.testing.assert_allclose(index.matrix[i], mean / np.linalg.norm(mean), atol=1e-5)
    assert index.matrix.dtype == np.float32 and index.matrix.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(index.matrix, axis=1), 1.0, atol=1e-5)


def test_score_is_the_max_over_synonyms_and_topk_a_softmax(clip_encode):
    vocab = Vocabulary.loads(VOCAB)
    index = TextIndex(vocab, clip_encode, "tiny", templates=TEMPLATES, logit_scale=50.0)
    index.build()
    region = index.embed_texts(["kitten"])[0]  # a synonym's own row
    scores = index.scores(region)
    assert scores.shape == (5,)
    assert scores[1] == pytest.approx(1.0, abs=1e-5)  # "cat" through its synonym "kitten"
    expected = [max(float(index.embed_texts([t])[0] @ region) for t in e.texts) for e in vocab]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    top = index.topk(region, k=3)
    assert top[0][0] == "cat"
    probs = np.exp(50.0 * (scores - scores.max()))
    probs /= probs.sum()
    order = np.argsort(-scores)[:3]
    assert [n for n, _ in top] == [vocab.names()[i] for i in order]
    np.testing.assert_allclose([p for _, p in top], probs[order], rtol=1e-5)
    last = index.topk(region, k=99)[-1][0]  # k is clamped to the vocabulary size
    assert scores[vocab.names().index(last)] == scores.min()
    assert sum(p for _, p in index.topk(region, k=99)) == pytest.approx(1.0, abs=1e-5)
    # a shared synonym lifts both entries that have it
    crane = index.scores(index.embed_texts(["crane"])[0])
    assert crane[3] == pytest.approx(1.0, abs=1e-5) and crane[4] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="dims"):
        index.scores(np.ones(7, np.float32))


def test_edits_encode_only_new_texts_and_the_cache_persists(clip_encode, tmp_path):
    encoder = Counting(clip_encode)
    vocab = Vocabulary.loads(VOCAB)
    index = TextIndex(vocab, encoder, "tiny", templates=TEMPLATES, cache_dir=tmp_path)
    index.build()
    assert len(encoder.seen) == 9 * len(TEMPLATES)
    before = index.matrix.copy()

    edited = vocab.copy()
    edited.add("bicycle", ("bike",))
    edited.rename("car", "automobile")
    edited.set_synonyms("dog", ("puppy",))
    edited.remove("crane (machine)")
    encoder.seen.clear()
    progress = []
    index.update(edited, progress=lambda done, total: progress.append((done, total)))
    assert sorted({p.split(" ", 4)[-1] for p in encoder.seen}) == [
        "automobile.",
        "bicycle.",
        "bike.",
    ]
    assert progress[-1] == (3, 3)
    assert index.names == edited.names()
    assert index.topk(index.embed_texts(["bike"])[0], 1)[0][0] == "bicycle"

    # a new index over the same cache encodes nothing and gives the same matrix
    encoder.seen.clear()
    again = TextIndex(vocab, encoder, "tiny", templates=TEMPLATES, cache_dir=tmp_path)
    again.build()
    assert encoder.seen == []
    np.testing.assert_array_equal(again.matrix, before)
    # another template set or model id is another cache
    assert cache_file(tmp_path, "tiny", TEMPLATES) != cache_file(tmp_path, "tiny", TEMPLATES[:1])
    assert cache_file(tmp_path, "tiny", TEMPLATES) != cache_file(tmp_path, "tiny2", TEMPLATES)


@pytest.mark.parametrize("garbage", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_corrupt_cache_is_ignored_and_rebuilt(clip_encode, tmp_path, garbage):
    vocab = Vocabulary.loads(VOCAB)
    path = cache_file(tmp_path, "tiny", TEMPLATES)
    path.write_bytes(garbage)
    encoder = Counting(clip_encode)
    index = TextIndex(vocab, encoder, "tiny", templates=TEMPLATES, cache_dir=tmp_path)
    index.build()
    assert len(encoder.seen) == 9 * len(TEMPLATES)
    with np.load(path) as data:  # rewritten, valid
        assert len(data["texts"]) == 9 and data["vectors"].shape == index.matrix.shape


def test_cancel_keeps_what_was_encoded(clip_encode, tmp_path, monkeypatch):
    monkeypatch.setattr("annotator.vocab.index.ENCODE_CHUNK", 2)
    vocab = Vocabulary.loads(VOCAB)

    def cancel(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    index = TextIndex(vocab, clip_encode, "tiny", templates=TEMPLATES, cache_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        index.build(progress=cancel)
    encoder = Counting(clip_encode)
    TextIndex(vocab, encoder, "tiny", templates=TEMPLATES, cache_dir=tmp_path).build()
    assert len(encoder.seen) == (9 - 4) * len(TEMPLATES)


def _topk_vs_one_pass(rows: int = 22000, dim: int = 512, repeats: int = 200) -> float:
    """Median `topk(region, 5)` over the median single-thread `einsum` matrix-vector product on the
    same matrix, interleaved: the least work any top-k must do, measured in the same run."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((rows, dim), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = TextIndex.from_matrix(matrix, [f"e{i}" for i in range(rows)])
    regions = rng.standard_normal((16, dim)).astype(np.float32)
    regions /= np.linalg.norm(regions, axis=1, keepdims=True)
    out = np.empty(rows, dtype=np.float32)
    one_pass, ours = [], []
    for i in range(repeats):
        v = regions[i % len(regions)]
        t0 = time.perf_counter()
        np.einsum("ij,j->i", matrix, v, out=out)
        t1 = time.perf_counter()
        index.topk(v, 5)
        ours.append(time.perf_counter() - t1)
        one_pass.append(t1 - t0)
    return float(np.median(ours) / np.median(one_pass))


def test_from_matrix_matches_a_plain_matmul():
    rng = np.random.default_rng(1)
    m = rng.standard_normal((300, 16)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    index = TextIndex.from_matrix(m, [f"n{i}" for i in range(300)])
    v = rng.standard_normal(16).astype(np.float32)
    np.testing.assert_allclose(index.scores(v), m @ (v / np.linalg.norm(v)), atol=1e-5)
    assert [n for n, _ in index.topk(v, 4)] == [f"n{i}" for i in np.argsort(-(m @ v))[:4]]
