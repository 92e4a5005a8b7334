"""Masks before labels: the text index builds in priority order and answers from the part built so
far; an engine can start without it (`segment --top-k 0` never builds it)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from annotator.vocab.index import ENCODE_CHUNK, TextIndex
from annotator.vocab.vocabulary import Vocabulary
from tests.conftest import cli_flags


def _vocabulary(n: int) -> Vocabulary:
    return Vocabulary.loads("".join(f"thing{i}, synonym{i}\n" for i in range(n)))


def _encoder(dim: int = 16):
    """A deterministic text encoder (hash-seeded unit vectors): exercises the index, not CLIP."""

    def encode(texts):
        out = []
        for text in texts:
            rng = np.random.default_rng(abs(hash(text)) % (2**32))
            v = rng.standard_normal(dim).astype(np.float32)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)

    return encode


def test_priority_entries_are_scored_first_and_the_result_equals_a_plain_build(tmp_path):
    vocab = _vocabulary(1500)  # 3000 texts: several chunks and publications
    seen: list[tuple[int, int, list[str]]] = []
    index = TextIndex(vocab, _encoder(), "m")

    def progress(done, total):
        seen.append((done, index.ready, index.names[:2]))

    index.build(progress, priority=["thing1400", "SYNONYM1300"])
    # after the first chunk the priority entries were published, first and in the given order
    after_first = next(s for s in seen if s[0] >= ENCODE_CHUNK)
    assert after_first[1] >= 2 and after_first[2] == ["thing1400", "thing1300"]
    assert any(0 < ready < 1500 for _, ready, _ in seen)  # labels from a part while building
    assert index.complete and index.ready == index.total == 1500
    plain = TextIndex(vocab, _encoder(), "m")
    plain.build()
    region = _encoder()(["query"])[0]
    a = dict(zip(*index.named_scores(region), strict=True))
    b = dict(zip(*plain.named_scores(region), strict=True))
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], abs=1e-6) for k in a)
    # The same top five; two near-equal scores (summed in another order) may swap places.
    top, reference = index.topk(region, 5), plain.topk(region, 5)
    assert [p for _, p in top] == pytest.approx([p for _, p in reference], abs=1e-6)
    assert all(a[name] == pytest.approx(b[name], abs=1e-6) for name, _ in top)
    assert a[top[0][0]] == pytest.approx(max(b.values()), abs=1e-6)


def test_topk_during_a_build_only_names_encoded_entries():
    vocab = _vocabulary(1200)
    gate = threading.Event()
    release = threading.Event()
    calls = {"n": 0}
    encode = _encoder()

    def slow(texts):
        calls["n"] += 1
        if calls["n"] == 3:  # pause mid-build
            gate.set()
            release.wait(30)
        return encode(texts)

    index = TextIndex(vocab, slow, "m")
    thread = threading.Thread(target=index.build)
    thread.start()
    assert gate.wait(30)
    ready = index.ready
    assert 0 < ready < 1200
    names = [n for n, _ in index.topk(encode(["q"])[0], 50)]
    assert names and set(names) <= {f"thing{i}" for i in range(ready)}
    release.set()
    thread.join(30)
    assert index.complete


def test_an_engine_without_its_index_gives_masks_then_labels(engine_args, tmp_path):
    from annotator.engine import Engine

    engine = Engine.from_paths(**engine_args, cache_dir=tmp_path, build_index=False)
    assert engine.index_status == (0, len(engine.vocabulary))
    image = np.zeros((64, 80, 3), np.uint8)
    image[10:40, 20:60] = (200, 80, 40)
    embedding = engine.embed(image)
    first = engine.segment(embedding, [(40, 25, True)], top_k=5)
    assert first.mask.any() and first.labels == []  # a mask at once, no labels yet
    build = engine.start_index_build(priority=["horse"])
    assert build.wait(120)
    assert engine.index_status == (len(engine.vocabulary),) * 2
    assert engine.index.names[0] == "horse"
    again = engine.segment(embedding, [(40, 25, True)], top_k=5)
    assert len(again.labels) == 5 and (again.mask == first.mask).all()


def test_a_cancelled_build_keeps_what_it_encoded(engine_args, tmp_path):
    from annotator.engine import Engine

    engine = Engine.from_paths(**engine_args, cache_dir=tmp_path, build_index=False)
    build = engine.start_index_build()
    build.cancel()
    assert build.wait(120)
    assert not build.running


def test_segment_top_k_0_never_builds_the_text_index(engine_args, tmp_path, monkeypatch, capsys):
    from annotator.cli import main

    def refuse(self, *args, **kwargs):
        raise AssertionError("the text index was built")

    monkeypatch.setattr(TextIndex, "build", refuse)
    from annotator.models.region import MaskPoolingHead

    monkeypatch.setattr(MaskPoolingHead, "prepare", refuse)  # nor the CLIP half of the embedding
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (90, 120, 200)).save(image)
    flags = cli_flags(engine_args) + ["--cache-dir", str(tmp_path / "cache")]
    assert main(["segment", str(image), "--point", "20,15", "--top-k", "0", *flags]) == 0
    assert '"labels": []' in capsys.readouterr().out


def test_the_default_vocabulary_has_coco_and_lvis_milestones_and_publishes_right_there():
    """A first start's schedule (gui/worker.py) hangs on two milestones: where the COCO names and
    where the LVIS names end in build order. Each is a publication mark, and a chunk ends there,
    so the index scores exactly those names the moment their texts are encoded."""
    from annotator.vocab.vocabulary import Vocabulary

    vocab = Vocabulary.default()
    coco = {e.name.casefold() for e in Vocabulary.shipped("coco")}
    lvis = {e.name.casefold() for e in Vocabulary.shipped("lvis")}
    index = TextIndex(vocab, _encoder(), "m")
    first, wide = index.plan_milestones()
    names = [e.name.casefold() for e in vocab]
    covered = lambda n: {t.casefold() for e in list(vocab)[:n] for t in e.texts}  # noqa: E731
    # every COCO / LVIS category is named by an entry before its milestone: as a display name or
    # as a synonym of an entry the union merged it into ("computer keyboard" into COCO's
    # "keyboard"), and the milestone is no later than it must be
    assert coco <= covered(first) and not coco <= covered(first - 1)
    assert lvis <= covered(wide) and not lvis <= covered(wide - 1)
    assert names[first - 1] in coco and names[wide - 1] in lvis
    # ImageNet-21k's own "computer keyboard" entry comes far later: it does not hold LVIS back
    assert names.index("computer keyboard") > wide
    assert (first, wide) == (80, 1205)
    # with the project's own names first, the first milestone covers them and COCO
    assert index.plan_milestones(["okapi", "pangolin"])[0] == first + 2
    readies, calls = [], []

    def progress(done, total):
        readies.append(index.ready)

    encode = _encoder()
    index.encode = lambda texts: calls.append(len(texts)) or encode(texts)
    index.build(progress)
    assert first in readies and wide in readies  # published exactly at both milestones
    texts_before = lambda n: len(dict.fromkeys(t for e in list(vocab)[:n] for t in e.texts))  # noqa: E731
    ends = np.cumsum(calls)
    assert texts_before(first) in ends and texts_before(wide) in ends
    assert max(calls) <= ENCODE_CHUNK


def test_a_small_vocabulary_without_shipped_names_has_only_the_priority_milestone():
    index = TextIndex(_vocabulary(50), _encoder(), "m")
    assert index.plan_milestones() == (0, 0)
    assert index.plan_milestones(["thing7", "thing9"]) == (2, 2)


def test_the_index_can_start_building_before_the_segmenter_loads(
    engine_args, tmp_path, monkeypatch
):
    """`on_index`: the window starts the text index there, so its first names are encoded on the
    second core while the segmenter's imports and weights load on the first."""
    from annotator import engine as engine_module
    from annotator.engine import Engine
    from annotator.errors import AnnotatorError
    from annotator.index_build import start_text_index_build

    order, builds = [], []
    load_segmenter = engine_module.load_segmenter_for

    def segmenter(*args, **kwargs):
        order.append("segmenter")
        return load_segmenter(*args, **kwargs)

    def on_index(index):
        order.append("index")
        builds.append(start_text_index_build(index, ["horse"]))

    monkeypatch.setattr(engine_module, "load_segmenter_for", segmenter)
    engine = Engine.from_paths(**engine_args, cache_dir=tmp_path, build_index=False,
                               on_index=on_index)  # fmt: skip
    assert order == ["index", "segmenter"]
    assert builds[0].wait(120)
    assert engine.index_status == (len(engine.vocabulary),) * 2
    assert engine.index.names[0] == "horse"
    # without the hook (the CLI) the segmenter comes first: a bad checkpoint fails before CLIP loads
    order.clear()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(AnnotatorError):
        Engine.from_paths(**{**engine_args, "sam_checkpoint": bad}, cache_dir=tmp_path)
    assert order == ["segmenter"]


@pytest.mark.skipif(not hasattr(__import__("os"), "getpriority"), reason="per-thread nice: Linux")
def test_a_background_build_runs_below_the_thread_that_started_it(engine_args, tmp_path):
    """A click's encode gets most of the CPU while a chunk of texts is in flight."""
    from annotator.engine import Engine
    from annotator.priority import BACKGROUND_NICE, thread_priority

    engine = Engine.from_paths(**engine_args, cache_dir=tmp_path, build_index=False)
    seen = []
    build = engine.start_index_build(progress=lambda *_: seen.append(thread_priority()))
    assert build.wait(120)
    assert seen and all(nice == max(BACKGROUND_NICE, thread_priority()) for nice in seen)
    assert thread_priority() < BACKGROUND_NICE  # the caller's own priority is unchanged
