"""What visual exemplars cost per suggestion, as a ratio against the text-only top-5 in one run.

    python benchmarks/bench_exemplars.py [--exemplars 10000] [--categories 200] [--json out.json]

The text side is a random unit matrix the size of the default index (39,542 texts x 640, the
convnext_base_w vocabulary); the exemplars are random unit vectors spread over the categories, as a
project with that many accepted objects would hold. Both paths are the engine's own: text-only is
`TextIndex.topk(region, 5)`, with exemplars it is `TextIndex.topk(region, 50)` + `Exemplars.evidence`
+ `combine` (what `Engine.suggest` runs). Interleaved runs, medians; also the cost of one incremental
update (an accept) and of loading all exemplars at once (a project opened).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotator.vocab.exemplars import TEXT_CANDIDATES, Exemplars, combine  # noqa: E402
from annotator.vocab.index import TextIndex  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exemplars", type=int, default=10_000)
    parser.add_argument("--categories", type=int, default=200)
    parser.add_argument("--rows", type=int, default=39_542)
    parser.add_argument("--dim", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = TextIndex.from_matrix(matrix, [f"e{i}" for i in range(args.rows)])
    vectors = rng.standard_normal((args.exemplars, args.dim)).astype(np.float32)
    t0 = time.perf_counter()
    exemplars = Exemplars("bench")
    exemplars.reset((i, f"c{i % args.categories}", v) for i, v in enumerate(vectors))
    load_ms = (time.perf_counter() - t0) * 1e3
    regions = rng.standard_normal((16, args.dim)).astype(np.float32)
    regions /= np.linalg.norm(regions, axis=1, keepdims=True)

    def text_only(r):
        return index.topk(r, 5)

    def combined(r):
        return combine(index.topk(r, max(5, TEXT_CANDIDATES)), exemplars.evidence(r), 5)

    for r in regions[:4]:
        text_only(r)
        combined(r)
    a, b = [], []
    for i in range(args.repeats):
        r = regions[i % len(regions)]
        t0 = time.perf_counter()
        text_only(r)
        t1 = time.perf_counter()
        combined(r)
        t2 = time.perf_counter()
        a.append((t1 - t0) * 1e3)
        b.append((t2 - t1) * 1e3)
    update = []
    for i in range(50):  # an accept, then its undo
        t0 = time.perf_counter()
        exemplars.add(10**9 + i, "c0", vectors[i])
        exemplars.evidence(regions[0])  # the next suggestion rebuilds the prototypes
        update.append((time.perf_counter() - t0) * 1e3)
        exemplars.remove(10**9 + i)
    result = {
        "rows": args.rows,
        "dim": args.dim,
        "exemplars": args.exemplars,
        "categories": args.categories,
        "text_only_p50_ms": statistics.median(a),
        "with_exemplars_p50_ms": statistics.median(b),
        "ratio": statistics.median(b) / statistics.median(a),
        "accept_then_next_suggestion_p50_ms": statistics.median(update),
        "load_all_ms": load_ms,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
