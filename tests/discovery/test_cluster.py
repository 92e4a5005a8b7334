"""`annotator embed --ray` on a real local Ray cluster (2 CPUs), with the tiny models.

What must hold: the cache a Ray run writes is byte-identical to a single-process `embed`; a worker
killed mid-run still leaves every image encoded (written to the cache) exactly once; a rerun
embeds nothing; without Ray, `--ray` says in one line how to install it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import ray
from PIL import Image

from annotator.cli import main
from annotator.cluster import Farm, FaultHooks, embed_on_ray, plan_workers, portable_spec
from annotator.errors import AnnotatorError
from annotator.spec import ModelSpec
from tests.conftest import cli_flags

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def ray_cluster():
    """One small local cluster for the module: 2 CPUs, no dashboard, a small object store."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024 * 1024,
        log_to_driver=False,
        logging_level=logging.WARNING,
        # as cluster.farm.ray_session starts its local cluster: workers at the driver's niceness,
        # or a loaded machine starves them (Ray's default is 15)
        _system_config={"worker_niceness": 0},
    )
    yield
    ray.shutdown()


def make_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Small distinct photos-to-be (random but seeded), as PNG and JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        path = folder / f"img{i}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def cache_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix == ".npz"
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_spec(engine_args: dict, cache: Path) -> ModelSpec:
    return ModelSpec(
        checkpoint=engine_args["sam_checkpoint"],
        clip_config=engine_args["clip_config"],
        clip_weights=engine_args["clip_weights"],
        vocabulary=str(engine_args["vocabulary"]),
        device="cpu",
        cache_dir=cache,
    )


def test_ray_cache_is_byte_identical_and_a_rerun_embeds_nothing(
    ray_cluster, engine_args, tmp_path, capsys
):
    folder = tmp_path / "images"
    make_images(folder, 5)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    flags = cli_flags(engine_args)
    local, farm = tmp_path / "local", tmp_path / "farm"

    assert main(["embed", str(folder), *flags, "--cache-dir", str(local)]) == 1
    capsys.readouterr()
    ray_flags = ["--ray", "--ray-workers", "2", "--ray-cpus-per-worker", "1", "--ray-batch", "2"]
    assert main(["embed", str(folder), *flags, "--cache-dir", str(farm), *ray_flags]) == 1
    err = capsys.readouterr().err
    assert "5 embedded, 0 already cached, 1 failed" in err
    assert "annotator: skipped broken.jpg:" in err

    local_files = cache_files(local / "embeddings")
    farm_files = cache_files(farm / "embeddings")
    assert len(local_files) == 10  # 5 images x (sam, clip)
    assert farm_files.keys() == local_files.keys()
    for name, data in local_files.items():
        assert farm_files[name] == data, f"{name} differs"

    before = {p: os.stat(p) for p in (farm / "embeddings").rglob("*.npz")}
    assert main(["embed", str(folder), *flags, "--cache-dir", str(farm), *ray_flags]) == 1
    err = capsys.readouterr().err
    assert "0 embedded, 5 already cached, 1 failed" in err
    after = {p: os.stat(p) for p in (farm / "embeddings").rglob("*.npz")}
    assert after.keys() == before.keys()
    for path, stat in before.items():  # not rewritten: same inode, same modification time
        assert (after[path].st_ino, after[path].st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_a_killed_worker_still_leaves_every_image_encoded_once(ray_cluster, engine_args, tmp_path):
    paths = make_images(tmp_path / "images", 8, seed=1)
    trace, marker = tmp_path / "trace.txt", tmp_path / "killed"
    spec = tiny_spec(engine_args, tmp_path / "cache")
    hooks = FaultHooks(trace=str(trace), kill_after=2, kill_marker=str(marker))

    report = embed_on_ray(paths, spec, workers=2, cpus_per_worker=1, batch_size=3, hooks=hooks)

    assert marker.exists(), "the fault hook never killed a worker"
    assert report.deaths >= 1
    assert (report.embedded, report.cached, report.failed) == (8, 0, [])
    lines = trace.read_text().split()
    hashes = lines[1::2]
    assert sorted(hashes) == sorted(sha256(p) for p in paths)  # each image written exactly once
    killed_pid = marker.read_text()
    assert killed_pid in lines[0::2], "the killed worker had written images before it died"
    assert len(set(lines[0::2])) >= 2, "another worker (or the restarted one) did the rest"
    files = cache_files(tmp_path / "cache" / "embeddings")
    assert len(files) == 16
    assert not [p for p in (tmp_path / "cache").rglob("*.tmp")], "a temporary file was left"

    rerun = embed_on_ray(paths, spec, workers=1, cpus_per_worker=1, hooks=FaultHooks(str(trace)))
    assert (rerun.embedded, rerun.cached, rerun.deaths) == (0, 8, 0)
    assert trace.read_text().split()[1::2] == hashes  # nothing more was written


def test_ray_kill_of_a_busy_worker_loses_nothing_and_writes_nothing_twice(
    ray_cluster, engine_args, tmp_path
):
    """An outside kill (`ray.kill(no_restart=False)`, as a preempted node) at a random moment."""
    paths = make_images(tmp_path / "images", 10, seed=2)
    trace = tmp_path / "trace.txt"
    spec = portable_spec(tiny_spec(engine_args, tmp_path / "cache"))
    farm = Farm(spec, plan_workers(ray.cluster_resources(), 2, 1), 2, FaultHooks(str(trace)))
    killed = []

    def kill_on_first_result(results):
        if not killed:
            killed.append(True)
            ray.kill(farm.actors[0], no_restart=False)

    try:
        report = farm.run([str(p) for p in paths], kill_on_first_result)
    finally:
        farm.shutdown()
    assert killed and (report.embedded, report.failed) == (10, [])
    hashes = trace.read_text().split()[1::2]
    assert len(hashes) == len(set(hashes)), "an image was written twice"
    assert len(cache_files(tmp_path / "cache" / "embeddings")) == 20


def test_without_ray_the_flag_says_how_to_install_it(engine_args, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "images"
    make_images(folder, 1)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["embed", str(folder), *cli_flags(engine_args), "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("annotator: error:") and 'pip install "annotator[cluster]"' in err


def test_ray_flags_need_ray_and_bad_values_are_one_line(engine_args, tmp_path, capsys):
    folder = tmp_path / "images"
    make_images(folder, 1)
    assert main(["embed", str(folder), *cli_flags(engine_args), "--ray-workers", "2"]) == 2
    assert "needs --ray" in capsys.readouterr().err


def test_worker_plan_follows_the_cluster():
    assert plan_workers({"CPU": 16.0}).workers == 4  # 4 cores each by default
    assert plan_workers({"CPU": 2.0}).workers == 1  # one worker with both cores
    gpu = plan_workers({"CPU": 16.0, "GPU": 4.0})
    assert (gpu.workers, gpu.gpus, gpu.cpus) == (4, 1.0, 1.0)
    assert plan_workers({"CPU": 16.0, "GPU": 4.0}, device="cpu").gpus == 0.0
    two = plan_workers({"CPU": 2.0}, workers=2, cpus_per_worker=1)
    assert (two.workers, two.threads) == (2, 1)
    squeezed = plan_workers({"CPU": 2.0}, workers=5, cpus_per_worker=1)
    assert squeezed.workers == 2 and "room for 2" in squeezed.note
    for bad in ({"workers": 0}, {"cpus_per_worker": 0}, {"cpus_per_worker": 3}):
        with pytest.raises(AnnotatorError):
            plan_workers({"CPU": 2.0}, **bad)
