"""What the benchmarks share: timing functions in turn, and writing the raw JSON.

Why: every benchmark measured its functions alternately and wrote its JSON into
benchmarks/results/ with its own copy of the same lines (`duplicates` listed them); the copies
had started to differ (one named its file by the date alone, so a second run the same day
overwrote the first).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved_samples(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    on_sample: Callable[[str, float], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds of each function over `repeats` rounds, the functions in turn within a round, so a
    change in the machine's load touches them alike (warm-ups are the caller's)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
            if on_sample is not None:
                on_sample(name, samples[name][-1])
    return samples


def result_path(name: str) -> Path:
    """benchmarks/results/<UTC date-time>-<name>.json: a new file for every run."""
    return RESULTS / f"{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}-{name}.json"


def save_result(result: dict, name: str, indent: int = 2) -> Path:
    """Write `result` as `result_path(name)` and return the path."""
    path = result_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent) + "\n")
    return path
