"""Shared fixtures: tiny real models (built with the upstream classes), real photographs when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_configure(config):
    # Tiny models are dominated by thread hand-off costs; one intra-op thread is faster and steadier,
    # and leaves the second core to the GUI thread in the event-loop stall test.
    import torch

    torch.set_num_threads(1)


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Never read or write the user's real cache from the tests."""
    old = os.environ.get("ANNOTATOR_CACHE")
    os.environ["ANNOTATOR_CACHE"] = str(tmp_path_factory.mktemp("annotator-cache"))
    yield
    if old is None:
        os.environ.pop("ANNOTATOR_CACHE", None)
    else:
        os.environ["ANNOTATOR_CACHE"] = old


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or a skip with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} is absent")
    return path


@pytest.fixture(scope="session")
def photo_path() -> Path:
    """One real photograph (COCO), or a skip."""
    folder = shared_data("coco_mval80") / "img"
    return sorted(folder.iterdir())[0]


@pytest.fixture(scope="session")
def photo(photo_path) -> np.ndarray:
    from annotator.io.images import load_image

    return load_image(photo_path)


@pytest.fixture(scope="session")
def tiny_sam_path(tmp_path_factory) -> Path:
    from tests.tiny_sam import make_tiny_sam

    return make_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.pth")


@pytest.fixture(scope="session")
def tiny_clip_files(tmp_path_factory) -> tuple[Path, Path]:
    from tests.tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip"), tower="convnext")


@pytest.fixture(scope="session")
def tiny_vit_clip_files(tmp_path_factory) -> tuple[Path, Path]:
    from tests.tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip-vit"), tower="vit")


@pytest.fixture(scope="session")
def small_vocab_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vocab") / "small.txt"
    path.write_text(
        "# a small vocabulary for tests\n"
        "dog, puppy\ncat, kitten\ncar, automobile\nperson, man, woman\nbird\ntree\nhouse, building\n"
        "boat, ship\nhorse\nchair\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def engine_args(tiny_sam_path, tiny_clip_files, small_vocab_file) -> dict:
    """Keyword arguments for `Engine.from_paths` with tiny models, usable from the CLI as flags too."""
    config, weights = tiny_clip_files
    return {
        "sam_checkpoint": tiny_sam_path,
        "clip_config": config,
        "clip_weights": weights,
        "vocabulary": small_vocab_file,
        "device": "cpu",
    }


@pytest.fixture(scope="session")
def engine(engine_args, tmp_path_factory):
    from annotator.engine import Engine

    return Engine.from_paths(**engine_args, cache_dir=tmp_path_factory.mktemp("engine-cache"))


def cli_flags(engine_args: dict) -> list[str]:
    """The same models as command-line flags."""
    return [
        "--sam-checkpoint", str(engine_args["sam_checkpoint"]),
        "--clip-config", str(engine_args["clip_config"]),
        "--clip-weights", str(engine_args["clip_weights"]),
        "--vocabulary", str(engine_args["vocabulary"]),
        "--device", "cpu",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def pg_url() -> str:
    """A PostgreSQL server's URL: $ANNOTATOR_TEST_PG (.ci/run starts one), else a throwaway
    cluster of our own (tests/pg_server.py); skipped with the reason when neither can be had."""
    url = os.environ.get("ANNOTATOR_TEST_PG")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip('PostgreSQL tests need psycopg: pip install "annotator[team]"')
    if url:
        yield url
        return
    from tests.pg_server import Cluster, find_bin

    if not find_bin("initdb"):
        pytest.skip("PostgreSQL is not installed (no initdb) and ANNOTATOR_TEST_PG is unset")
    try:
        cluster = Cluster()
    except RuntimeError as error:
        pytest.skip(str(error))
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def pg_project_url(pg_url) -> str:
    """A fresh, empty PostgreSQL project (its own schema) on the test server."""
    import uuid

    return f"{pg_url}?project=t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path) -> str:
    """Where a store test's project lives: each such test runs on both backends."""
    if request.param == "sqlite":
        return str(tmp_path / ".annotator" / "project.db")
    return request.getfixturevalue("pg_project_url")
