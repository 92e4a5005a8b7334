"""The label benchmark: acceptance by synonyms, and the harness on COCO_MVal with an oracle region embedder
(the real text embedding of the true class from a tiny, seeded open_clip text tower)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from annotator.evaluation.datasets import folder_dataset, load_rgb
from annotator.evaluation.labels import LabelSet, evaluate_labels
from annotator.vocab.vocabulary import Entry, Vocabulary
from tests.conftest import shared_data

TEMPLATE = "a photo of a {}."


def test_synonyms_count_as_the_category():
    entries = [
        Entry("television", ("tv", "telly")),
        Entry("mouse"),
        Entry("computer mouse", ("mouse",)),
    ]
    label_set = LabelSet.with_synonyms("vocabulary", scorer=None, entries=entries)
    assert label_set.accepted("tv") == {"tv", "television"}
    assert label_set.accepted("TV") == {"tv", "television"}
    assert label_set.accepted("mouse") == {"mouse", "computer mouse"}
    assert label_set.accepted("zebra") == {"zebra"}
    assert LabelSet.exact("dataset", None).accepted("Traffic Light") == {"traffic light"}


# ------------------------------------------------------------------------------------ oracle runs
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from annotator.models.clip import ClipModel
    from tests.tiny_clip import make_tiny_clip

    config, weights = make_tiny_clip(tmp_path_factory.mktemp("eval-clip"), tower="convnext")
    return ClipModel.load(config=config, weights=weights)


@pytest.fixture(scope="module")
def mval():
    root = shared_data("coco_mval80")
    return folder_dataset(root / "img", root / "gt", categories_from_names=True)


def text_index(clip, vocabulary):
    from annotator.vocab.index import TextIndex

    index = TextIndex(vocabulary, clip.encode_text, clip.identity, templates=(TEMPLATE,))
    index.build()
    return index


class ByPixels:
    """Recognises an image by its pixels and answers for its objects (nothing leaks via the harness).

    COCO_MVal has images with two objects (`bottle00_000000066841`, `toaster00_000000066841`): the
    object is then the one under the click, or the one whose mask the harness passes.
    """

    def __init__(self, dataset):
        self.objects: dict[str, list[tuple[str, np.ndarray]]] = {}
        for sample in dataset.samples:
            truth = sample.load()
            key = hashlib.sha1(load_rgb(sample.image_path, truth.mask.shape).tobytes()).hexdigest()
            self.objects.setdefault(key, []).append((sample.category, truth.mask))

    def lookup(self, image) -> list[tuple[str, np.ndarray]]:
        return self.objects[hashlib.sha1(image.tobytes()).hexdigest()]


class OracleEmbedder(ByPixels):
    """The region embedding is the text embedding of the true class (or of the `shift`-th next one)."""

    def __init__(self, dataset, clip, shift: int = 0):
        super().__init__(dataset)
        names = dataset.categories
        self.texts = {
            c: TEMPLATE.format(names[(i + shift) % len(names)]) for i, c in enumerate(names)
        }
        self.clip = clip
        self.vectors: dict[str, np.ndarray] = {}
        self.calls = 0

    def start(self, image):
        objects = self.lookup(image)

        def embed(mask):
            self.calls += 1
            category = max(objects, key=lambda o: (o[1] & mask).sum())[0]
            if category not in self.vectors:
                self.vectors[category] = self.clip.encode_text([self.texts[category]])[0]
            return self.vectors[category]

        return embed


class OracleSegmenter(ByPixels):
    def start(self, image):
        objects = self.lookup(image)
        return lambda clicks: next(m for _, m in objects if all(m[c.y, c.x] for c in clicks))


def test_oracle_embedder_gives_full_accuracy_on_coco_mval(clip, mval):
    names = Vocabulary([Entry(c) for c in mval.categories])
    vocabulary = Vocabulary.shipped("coco")  # the app's COCO names, with their synonyms
    label_sets = [
        LabelSet.exact("dataset", text_index(clip, names)),
        LabelSet.with_synonyms("vocabulary", text_index(clip, vocabulary), vocabulary),
    ]
    embedder = OracleEmbedder(mval, clip)
    report = evaluate_labels(mval, {"oracle": embedder}, label_sets, OracleSegmenter(mval), top_k=5)
    assert len(report.objects) == 80 and embedder.calls == 160  # 2 masks per object
    assert report.sources == ["ground truth", "1 click"] and report.click_miou() == 1.0
    for source in report.sources:
        for label_set in ("dataset", "vocabulary"):
            assert report.accuracy("oracle", source, label_set, 1) == 1.0, (source, label_set)
            assert report.accuracy("oracle", source, label_set, 5) == 1.0
    tv = next(o for o in report.objects if o.category == "tv")
    assert tv.predictions[("oracle", "ground truth", "dataset")][0] == "tv"


def test_a_wrong_embedder_is_counted_wrong(clip, mval):
    names = Vocabulary([Entry(c) for c in mval.categories])
    label_set = LabelSet.exact("dataset", text_index(clip, names))
    # Each object is embedded as the next category's text: top-1 must be 0%, top-5 may rescue some.
    few = mval.limited(20)
    assert few.categories == mval.categories  # the label set is the whole dataset's
    embedder = OracleEmbedder(few, clip, shift=1)
    report = evaluate_labels(few, {"shifted": embedder}, [label_set], None, top_k=5)
    assert report.sources == ["ground truth"]
    assert report.accuracy("shifted", "ground truth", "dataset", 1) == 0.0
    top5 = report.accuracy("shifted", "ground truth", "dataset", 5)
    ranks = [o.hits[("shifted", "ground truth", "dataset")] for o in report.objects]
    assert top5 == sum(r is not None for r in ranks) / 20 and all(r is None or r > 1 for r in ranks)


# ------------------------------------------------------------------------------ the real command
def test_eval_labels_command_end_to_end(engine_args, tmp_path, capsys):
    import json

    from annotator.cli import main
    from tests.conftest import cli_flags

    root = shared_data("coco_mval80")
    out = tmp_path / "labels.json"
    argv = ["eval", "labels", "--images", str(root / "img"), "--masks", str(root / "gt")]
    argv += ["--limit", "2", "--json", str(out), "--plot", str(tmp_path / "labels.png")]
    assert main([*argv, *cli_flags(engine_args)]) == 0
    printed = capsys.readouterr().out
    assert "top-1" in printed and "top-5" in printed and "meaningless" in printed
    assert "pool" in printed and "crop" in printed
    document = json.loads(out.read_text())
    assert document["command"] == "labels" and document["heads"] == ["pool", "crop"]
    assert document["label_sets"] == {
        "dataset": 80,
        "vocabulary": 10,
    }  # conftest's small vocabulary
    rows = {(r["head"], r["mask"]) for r in document["results"]}
    assert rows == {(h, m) for h in ("pool", "crop") for m in ("ground truth", "1 click")}
    for row in document["results"]:
        for key in ("dataset top-1", "dataset top-5", "vocabulary top-1", "vocabulary top-5"):
            assert 0.0 <= row[key] <= 1.0
        assert row["dataset top-1"] <= row["dataset top-5"]
    assert len(document["objects"]) == 2 and "meaningless" in document["warning"]
    first = document["objects"][0]
    assert first["category"] == "airplane" and 0.0 <= first["click_iou"] <= 1.0
    assert len(first["predictions"]["pool/ground truth/dataset"]) == 5
    assert (tmp_path / "labels.png").stat().st_size > 1000
