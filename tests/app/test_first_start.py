"""`app.first_start.IndexSchedule` on its own (Qt-free): the waits around a background index build.
The worker's use of it is tested in tests/gui/test_worker.py."""

from __future__ import annotations

import threading
import time

import numpy as np

from annotator.app.first_start import IndexSchedule
from annotator.vocab.index import TextIndex
from annotator.vocab.vocabulary import Vocabulary


def _index(n: int = 300, per_text_s: float = 0.002) -> TextIndex:
    def encode(texts):
        time.sleep(per_text_s * len(texts))
        rng = np.random.default_rng(len(texts))
        out = rng.standard_normal((len(texts), 8)).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    coco = [", ".join(e.texts) for e in Vocabulary.shipped("coco")]
    lines = coco + [f"thing{i}" for i in range(n)]
    return TextIndex(Vocabulary.loads("\n".join(lines) + "\n"), encode, "m")


def test_the_index_waits_while_urgent_work_runs_and_goes_on_after():
    cond = threading.Condition()
    schedule = IndexSchedule(cond)
    index, reports, done = _index(), [], threading.Event()
    schedule.set_urgent(True)
    schedule.start(index, (), None, lambda r, t: reports.append(r), lambda e: done.set())
    time.sleep(1.0)
    held = len(reports)
    assert held <= 1  # one chunk, then the build waits for the urgent work
    assert schedule.running and schedule.short_of(0)
    schedule.set_urgent(False)
    assert done.wait(60) and index.ready == index.total
    assert not schedule.running and not schedule.short_of(0)


def test_first_names_score_before_the_labels_half_unless_interrupted():
    cond = threading.Condition()
    schedule = IndexSchedule(cond)
    index, done = _index(per_text_s=0.004), threading.Event()
    schedule.set_urgent(True)  # a click's mask is being computed
    schedule.start(index, (), None, lambda r, t: None, lambda e: done.set())
    assert schedule.short_of(0)
    started = time.monotonic()
    schedule.let_first_names_score(lambda: False)
    assert not schedule.short_of(0)  # the COCO names scored while the click waited
    assert index.ready >= index.milestones[0] and schedule.urgent
    assert time.monotonic() - started < 20  # bounded: never YIELD_S (30 s) per wait
    schedule.cancel()
    assert not schedule.running

    again = IndexSchedule(cond)
    index = _index(per_text_s=0.004)
    again.set_urgent(True)
    again.start(index, (), None, lambda r, t: None, lambda e: None)
    started = time.monotonic()
    again.let_first_names_score(lambda: True)  # a newer click is waiting: no wait at all
    assert time.monotonic() - started < 20  # a wide margin: a wait would be YIELD_S (30 s)
    again.cancel()


def test_a_build_cancelled_while_it_yields_stops_at_once():
    """The build's first report comes before `start` has returned its handle; a cancel then still
    ends the wait (it used to sit out YIELD_S, 30 s, when the report won that race)."""
    for _ in range(5):
        schedule = IndexSchedule(threading.Condition())
        schedule.set_urgent(True)
        schedule.start(_index(), (), None, lambda r, t: None, lambda e: None)
        started = time.monotonic()
        schedule.cancel()
        assert time.monotonic() - started < 20  # it used to sit out YIELD_S (30 s)
        assert not schedule.running
