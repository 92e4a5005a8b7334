"""Nothing is lost under kill -9: savers are killed at random moments, the store is checked every time.

A fork server (tests/crash_server.py) loads the tiny models once and forks savers that save masks through
the real paths (`annotator segment --save`'s `save_mask`, and the GUI's `AcceptCommand`), journaling each
save after it returned. Each saver is killed with SIGKILL after a seeded random delay. After every kill:
`PRAGMA integrity_check` is ok, every journaled annotation is present and identical, and no half-written
annotation exists (every row decodes to a mask whose area and bbox match the stored ones).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from annotator.cache import ArrayCache
from annotator.io.masks import mask_box_xywh
from annotator.store import Project

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

KILLS = 100  # at least this many kills...
MIN_SAVES = KILLS // 4  # ...and on until this many saves were journaled (proof needs saves)
MAX_KILLS = 1000  # a bound on a hang, never on speed
DELAY_S = 0.25  # kills fall in [0, delay) after the fork; the delay doubles while saves are rare
MAX_DELAY_S = 4.0
SEED = 20261123


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.005)
    raise AssertionError(f"saver {pid} did not die")


def journal_records(path: Path) -> list[dict]:
    """Complete lines only: a line cut by the kill was not a finished save."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            records.append(json.loads(line))
    return records


@pytest.fixture
def server(engine_args, photo_path, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    image = folder / photo_path.name
    image.write_bytes(photo_path.read_bytes())
    journal = tmp_path / "journal.jsonl"
    config = {
        "engine": {k: str(v) for k, v in engine_args.items()},
        "cache_dir": str(tmp_path / "cache"),
        "image": str(image),
        "project": str(folder),
        "journal": str(journal),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[1] / "crash_server.py"),
            json.dumps(config),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    yield process, folder / ".annotator" / "project.db", journal
    process.stdin.close()
    process.kill()
    process.wait(timeout=30)


def spawn(process, seed: int, mode: str) -> int:
    process.stdin.write(f"{seed} {mode}\n")
    process.stdin.flush()
    line = process.stdout.readline()
    assert line, "the fork server died"
    return int(line)


@pytest.mark.slow
def test_annotations_survive_kill_9(server):
    process, db, journal = server
    rng = random.Random(SEED)
    checked = unjournaled = 0
    verified: set[int] = set()
    # A loaded machine saves slower: a fixed kill delay would kill most savers before their first
    # save (20 saves in 100 kills beside two CPU-bound processes). The delay grows while fewer
    # than a quarter of the kills leave a save, and kills go on until enough saves are checked.
    delay, kill = DELAY_S, 0
    while kill < KILLS or (checked < MIN_SAVES and kill < MAX_KILLS):
        if kill and kill % 10 == 0 and checked < kill // 4:
            delay = min(MAX_DELAY_S, 2 * delay)
        mode = "cli" if kill % 2 == 0 else "gui"
        pid = spawn(process, rng.randrange(1 << 30), mode)
        time.sleep(rng.uniform(0.0, delay))
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)

        records = journal_records(journal)
        with Project(db) as project:
            assert project.integrity_ok(), f"integrity check failed after kill {kill}"
            stored = {ann.id: ann for ann in project.annotations()}
        for record in records:
            ann = stored.get(record["id"])
            assert ann is not None, f"kill {kill}: annotation {record['id']} was saved and is gone"
            assert ann.rle["counts"] == record["counts"] and ann.category == record["category"]
        # Only the one save in flight at each kill may have committed without being journaled.
        extra = len(stored) - len(records)
        assert unjournaled <= extra <= unjournaled + 1, (
            f"kill {kill}: {extra} unexplained annotations"
        )
        unjournaled = extra
        for ann in stored.values():
            if ann.id in verified:
                continue
            mask = ann.mask()
            assert mask.any() and int(mask.sum()) == ann.area
            assert np.allclose(mask_box_xywh(mask), ann.bbox)
            verified.add(ann.id)
        checked = len(records)
        kill += 1
    assert checked >= MIN_SAVES, f"{checked} saves in {kill} kills: too few to prove anything"


@pytest.mark.slow
def test_embedding_cache_survives_kill_9(server, tmp_path):
    process, _, journal = server
    rng = random.Random(SEED + 1)
    cache = ArrayCache(tmp_path / "cache")
    kills = 0
    while kills < 30 or (not journal_records(journal) and kills < 300):  # on until a save counts
        pid = spawn(process, rng.randrange(1 << 30), "cache")
        time.sleep(rng.uniform(0.0, 0.1 if kills < 30 else 1.0))
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        kills += 1
    records = journal_records(journal)
    assert records
    for record in records:  # every file whose save returned reads back exactly
        arrays = cache.load("sam", "model", record["key"])
        assert arrays is not None and np.all(arrays["features"] == record["value"])
    # Files caught mid-write are either absent or read back whole (atomic replace); never wrong
    # data. (A killed write may leave a temp file beside them: never read as an entry.)
    for path in cache.root.rglob("*.npz"):
        arrays = cache.load("sam", "model", path.stem)
        assert arrays is None or len(set(arrays["features"].tolist())) == 1
