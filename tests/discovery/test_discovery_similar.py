"""Similar images and objects: the embeddings table (migration, triggers), queries, backfill, speed."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time

import numpy as np
import pytest

from annotator.discovery.similar import (
    ANNOTATION,
    IMAGE,
    SimilarityIndex,
    backfill,
    benchmark_query,
    embed_annotation,
    rank,
)
from annotator.errors import AnnotatorError
from annotator.store import Project
from annotator.store.embeddings import EmbeddingTable
from annotator.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.cli.test_discovery_cli import main
from tests.conftest import cli_flags
from tests.timing import record


def unit(rng, dim=8):
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_version_1_project_migrates_and_keeps_its_data(tmp_path):
    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    for statement in MIGRATIONS[0]:
        con.execute(statement)
    con.execute("PRAGMA user_version = 1")
    con.execute(
        "INSERT INTO images (file_name, width, height, added) VALUES ('a.jpg', 4, 3, 'now')"
    )
    con.commit()
    con.close()
    with Project(db) as project:
        assert project.schema_version == SCHEMA_VERSION >= 2
        assert project.image(1).file_name == "a.jpg"
        table = EmbeddingTable(project)
        table.put(IMAGE, 1, "m", np.ones(4))
        assert table.get(IMAGE, 1, "m").tolist() == [1.0] * 4
        assert project.integrity_ok()


def test_triggers_drop_stale_vectors(tmp_path):
    rng = np.random.default_rng(0)
    with Project(tmp_path / "p.db") as project:
        image = project.add_image("a.jpg", 20, 10)
        mask = np.zeros((10, 20), dtype=bool)
        mask[2:5, 3:9] = True
        a, b = (project.add_annotation(image, mask, "dog") for _ in range(2))
        table = EmbeddingTable(project)
        for ref in (a, b):
            table.put(ANNOTATION, ref, "m", unit(rng))
        before = table.signature(ANNOTATION, "m")
        project.update_annotation(a, category="cat")  # the mask is unchanged: the vector stays
        assert table.get(ANNOTATION, a, "m") is not None
        project.update_annotation(a, mask=~mask)
        assert table.get(ANNOTATION, a, "m") is None
        assert table.missing(ANNOTATION, "m") == [a]
        record = project.delete_annotation(b)
        assert table.get(ANNOTATION, b, "m") is None
        project.restore_annotation(record)
        assert table.missing(ANNOTATION, "m") == [a, b]
        assert table.signature(ANNOTATION, "m") != before
        table.put(ANNOTATION, a, "m", unit(rng))
        version = table.signature(ANNOTATION, "m")
        table.put(ANNOTATION, a, "m", unit(rng))  # a replacement changes the signature too
        assert table.signature(ANNOTATION, "m") > version
        assert table.signature(IMAGE, "m") == 0  # per kind and model
        assert project.integrity_ok()


def test_rank_is_the_exact_top_k():
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1000, 1500)
    query = rng.standard_normal(16).astype(np.float32)
    found = rank(vectors, ids, query, ANNOTATION, 7)
    cosine = vectors @ (query / np.linalg.norm(query))
    order = np.argsort(-cosine)[:7]
    assert [n.ref_id for n in found] == ids[order].tolist()
    np.testing.assert_allclose([n.score for n in found], cosine[order], rtol=1e-6)
    assert ids[order[0]] not in [n.ref_id for n in rank(vectors, ids, query, ANNOTATION, 7,
                                                        exclude=int(ids[order[0]]))]  # fmt: skip


@pytest.fixture()
def project_folder(photo_path, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(photo_path, folder / photo_path.name)
    return folder


def boxes_masks(height, width):
    out = []
    for x0, y0, x1, y1 in [(10, 10, 200, 150), (300, 200, 600, 460), (50, 250, 250, 470)]:
        mask = np.zeros((height, width), dtype=bool)
        mask[y0:y1, x0:x1] = True
        out.append(mask)
    return out


def test_similar_annotation_is_itself_first_and_backfill(engine, photo, photo_path, project_folder):
    embedding = engine.embed(photo_path)
    height, width = embedding.size
    with Project.open_folder(project_folder) as project:
        image = project.add_image(photo_path.name, width, height)
        masks = boxes_masks(height, width)
        ids = [project.add_annotation(image, m, "thing") for m in masks]
        for ref, mask in zip(ids[:2], masks[:2], strict=True):  # what the GUI does after saving
            stored = embed_annotation(project, engine, embedding, ref, mask)
            np.testing.assert_allclose(stored, engine.region_embedding(embedding, mask), atol=1e-6)
        index = SimilarityIndex(project, engine.region_model_id)
        assert [n.ref_id for n in index.query(engine.region_embedding(embedding, masks[2]),
                                              ANNOTATION, 5)] != []  # fmt: skip
        with pytest.raises(AnnotatorError, match="--index"):
            index.like_annotation(ids[2])

        report = backfill(project, engine)
        assert (report.images, report.annotations, report.failed) == (1, 1, [])
        assert backfill(project, engine).annotations == 0  # nothing left to do
        for ref in ids:
            found = index.like_annotation(ref, k=3)
            assert found[0].ref_id == ref and found[0].score == pytest.approx(1.0, abs=1e-5)
            assert sorted(n.ref_id for n in found) == sorted(ids)
        assert index.like_image(image)[0].ref_id == image
        np.testing.assert_allclose(
            index.vector(IMAGE, image), engine.image_embedding(embedding), atol=1e-6
        )
        # the loaded matrix is reused until the table changes
        first = index.matrix(ANNOTATION)
        assert index.matrix(ANNOTATION)[1] is first[1]
        project.delete_annotation(ids[0])
        assert index.matrix(ANNOTATION)[0].tolist() == ids[1:]


def test_similar_command(engine_args, photo_path, project_folder, capsys):
    from annotator.io.images import image_size

    width, height = image_size(photo_path)[:2]
    with Project.open_folder(project_folder) as project:
        image = project.add_image(photo_path.name, width, height)
        ids = [project.add_annotation(image, m, "thing") for m in boxes_masks(height, width)]
    flags = cli_flags(engine_args)
    assert main(["similar", str(project_folder), "--index", "--annotation", str(ids[1]),
                 "-k", "2", *flags]) == 0  # fmt: skip
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and rows[0]["id"] == ids[1] and rows[0]["kind"] == "annotation"
    assert rows[0]["image"] == photo_path.name and rows[0]["category"] == "thing"
    assert main(["similar", str(project_folder), "--image", photo_path.name, "--of", "annotation",
                 *flags]) == 0  # fmt: skip
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["id"] for r in rows) == ids
    assert main(["similar", str(project_folder), "--image", "nope.jpg", *flags]) == 2
    assert "no image named" in capsys.readouterr().err


def test_query_over_100k_objects_is_fast(tmp_path):
    with Project(tmp_path / "big.db") as project:
        start = time.perf_counter()
        result = benchmark_query(project, n=100_000, dim=512, repeats=20)
        total = time.perf_counter() - start
    print(f"\n100k x 512: insert {result['insert_s']:.2f} s, load {result['load_s']:.2f} s, "
          f"staleness check {result['staleness_check_ms']:.3f} ms, query median "
          f"{result['query_median_ms']:.1f} ms, max {result['query_max_ms']:.1f} ms, "
          f"whole test {total:.1f} s")  # fmt: skip
    record("similar: 100k x 512 objects", **result, bound_was_ms=50)
    assert result["query_median_ms"] <= result["query_max_ms"]
