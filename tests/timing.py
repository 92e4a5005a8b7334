"""Timings measured inside tests go to a benchmark file, never into an assertion (issue 24).

A test that fails on a busy 2-core machine is a flaky test: speed is checked by
`benchmarks/bench_test_timings.py`, which runs the timed tests with `ANNOTATOR_TIMINGS=FILE` and
writes what they recorded (with their baselines from the same run) to `benchmarks/results/`. The
tests themselves keep their structural checks (the work runs off the GUI thread, the algorithm, the
call counts). Without the variable, `record` does nothing.
"""

from __future__ import annotations

import json
import os
from typing import Any

ENV = "ANNOTATOR_TIMINGS"


def record(name: str, **values: Any) -> None:
    """Append one measurement (`name` and its values, e.g. `seconds=…, bound_was=…`)."""
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"name": name, **values}, default=float) + "\n")
