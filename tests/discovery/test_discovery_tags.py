"""Image tags: the whole-image embedding, tags from the vocabulary best first, seeding labels."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from annotator.discovery.tags import seed_labels, seed_vocabulary, tag_image, tag_images
from annotator.vocab.vocabulary import Vocabulary
from tests.cli.test_discovery_cli import main
from tests.conftest import cli_flags, shared_data


def test_image_embedding_is_the_models_own(engine, photo):
    """Pool head + full mask = open_clip's image embedding of the head's input (ConvNeXt)."""
    import torch

    embedding = engine.embed(photo)
    vector = engine.image_embedding(embedding)
    with torch.inference_mode():
        own = engine.clip.model.encode_image(engine.head.input_tensor(photo))[0].float().numpy()
    np.testing.assert_allclose(vector, own / np.linalg.norm(own), atol=1e-5)


def test_tags_come_from_the_vocabulary_best_first(engine, photo):
    embedding = engine.embed(photo)
    tags = tag_image(engine, embedding, k=4)
    names = engine.vocabulary.names()
    assert len(tags) == 4 and all(name in names for name, _ in tags)
    scores = [s for _, s in tags]
    assert scores == sorted(scores, reverse=True)
    # the same ranking as scoring the image vector against every entry
    cosine = engine.index.scores(engine.image_embedding(embedding))
    assert [n for n, _ in tags] == [names[i] for i in np.argsort(-cosine, kind="stable")[:4]]
    assert tag_image(engine, embedding, k=100)[:4] == tags
    assert sum(s for _, s in tag_image(engine, embedding, k=100)) == pytest.approx(1.0, abs=1e-5)


def test_tag_images_reports_unreadable_files(engine, photo_path, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    seen = []
    out = list(tag_images(engine, [photo_path, broken], k=2, progress=lambda d, t: seen.append(d)))
    assert out[0].error is None and len(out[0].tags) == 2
    assert out[1].error and not out[1].tags
    assert seen == [1, 2]


def test_seed_labels_counts_images_then_scores():
    lists = [
        [("dog", 0.6), ("cat", 0.3)],
        [("cat", 0.5), ("tree", 0.4)],
        [("dog", 0.2), ("tree", 0.1), ("car", 0.05)],
    ]
    # dog, cat and tree are on 2 images each: dog (0.8) > cat (0.8, name) ... by summed score, name
    assert seed_labels(lists, 3) == ["cat", "dog", "tree"]
    assert seed_labels(lists, 10) == ["cat", "dog", "tree", "car"]
    assert seed_labels(lists, 2, min_score=0.25) == ["cat", "dog"]
    source = Vocabulary.loads("dog, puppy\ncat, kitten\ntree\n")
    seeded = seed_vocabulary(["cat", "tree"], source)
    assert [(e.name, e.synonyms) for e in seeded] == [("cat", ("kitten",)), ("tree", ())]


def test_tag_command(engine, engine_args, tmp_path, capsys):
    photos = sorted((shared_data("coco_mval80") / "img").iterdir())[:2]
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos:
        shutil.copy(path, folder / path.name)
    flags = cli_flags(engine_args)
    assert main(["tag", str(folder), "-k", "3", *flags]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in rows] == [str(folder / p.name) for p in photos]
    vocabulary = Vocabulary.load(engine_args["vocabulary"])
    assert all(len(r["tags"]) == 3 for r in rows)
    assert all(t["name"] in vocabulary for r in rows for t in r["tags"])

    out = tmp_path / "labels.txt"
    assert main(["tag", str(folder), "-k", "3", "--seed-labels", "2", "-o", str(out), *flags]) == 0
    seeded = Vocabulary.load(out)
    # (unrounded scores: a tiny model's probabilities are close enough for rounding to matter)
    expected = seed_labels([t.tags for t in tag_images(engine, sorted(folder.iterdir()), 3)], 2)
    assert seeded.names() == expected
    assert all(e.synonyms == vocabulary.get(e.name).synonyms for e in seeded)
