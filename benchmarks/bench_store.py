"""One accept's commit, PostgreSQL over loopback vs SQLite, in one run (target: PG p50 <= 3x SQLite).

    python benchmarks/bench_store.py [--pg postgresql://USER@HOST:PORT/DB] [--accepts 300]
                                     [--json benchmarks/results/DATE-store.json]

An accept is what the window does on Enter (gui/commands.AcceptCommand): one transaction that
stores the mask (bbox/area from it, category by name) and its CLIP vector, committed before the
call returns (SQLite: WAL + synchronous=FULL, an fsync per commit; PostgreSQL: its defaults,
fsync on, plus the project write lock and the claim check). Both projects hold 1,000 annotations
first. Without --pg a throwaway cluster is started (tests/pg_server.py) and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotator.store import Project  # noqa: E402
from annotator.store.embeddings import ANNOTATION, EmbeddingTable  # noqa: E402


def _accepts(project: Project, n: int, warm: int = 1000) -> list[float]:
    rng = np.random.default_rng(0)
    image_id = project.add_image("bench.png", 640, 480)
    project.claim(image_id)
    table = EmbeddingTable(project)
    times = []
    for k in range(warm + n):
        mask = np.zeros((480, 640), bool)
        y, x = int(rng.integers(0, 400)), int(rng.integers(0, 560))
        mask[y : y + 60, x : x + 80] = True
        vector = rng.standard_normal(640).astype(np.float32)
        start = time.perf_counter()
        with project.transaction():
            ann = project.add_annotation(
                image_id, mask, f"class {k % 50}", 0.9, {"points": [[x, y]]}
            )
            table.put(ANNOTATION, ann, "clip|pool", vector)
        if k >= warm:
            times.append(time.perf_counter() - start)
    return times


def _summary(times: list[float]) -> dict:
    ms = sorted(t * 1000 for t in times)
    return {
        "p50_ms": statistics.median(ms),
        "p90_ms": ms[int(0.9 * (len(ms) - 1))],
        "mean_ms": statistics.fmean(ms),
        "n": len(ms),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("ANNOTATOR_TEST_PG"))
    parser.add_argument("--accepts", type=int, default=300)
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "benchmarks" / "results" / f"{date.today().isoformat()}-store.json",
    )
    args = parser.parse_args()
    cluster = None
    if not args.pg:
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_server import Cluster

        cluster = Cluster()
        args.pg = cluster.url
    try:
        with tempfile.TemporaryDirectory() as folder:
            with Project.open_folder(folder) as project:
                sqlite = _accepts(project, args.accepts)
        url = f"{args.pg}?project=bench{uuid.uuid4().hex[:8]}"
        with Project(url) as project:
            postgres = _accepts(project, args.accepts)
    finally:
        if cluster is not None:
            cluster.stop()
    result = {
        "benchmark": "one accept's commit (mask + CLIP vector, one transaction)",
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "sqlite": _summary(sqlite),
        "postgresql_loopback": _summary(postgres),
    }
    result["ratio_p50"] = result["postgresql_loopback"]["p50_ms"] / result["sqlite"]["p50_ms"]
    result["target_ratio_p50"] = 3.0
    result["raw_ms"] = {
        "sqlite": [round(t * 1000, 4) for t in sqlite],
        "postgresql_loopback": [round(t * 1000, 4) for t in postgres],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    brief = {k: v for k, v in result.items() if k != "raw_ms"}
    print(json.dumps(brief, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
