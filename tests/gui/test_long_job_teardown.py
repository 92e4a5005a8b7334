"""A long job that outlives its window: the runner's thread must neither raise into the void nor
leave its child running. Seen in a loaded CI run: a window was deleted while its folder-open job
still relayed progress ("RuntimeError: Signal source has been deleted" in the `long-job` thread)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import shiboken6

from annotator.app.longjob import LongJob
from annotator.gui.long_jobs import LongJobRunner


def chatty(control, marker: str, seconds: float) -> int:
    """A process job that never checks for cancel: it reports its pid as progress until killed."""
    Path(marker).write_text(str(os.getpid()))
    end = time.monotonic() + seconds
    steps = 0
    while time.monotonic() < end:
        control.progress(steps, 0, str(os.getpid()))
        steps += 1
        time.sleep(0.01)
    return steps


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _thread_errors(monkeypatch) -> list[BaseException]:
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def test_a_deleted_runner_stops_its_child_and_its_thread_raises_nothing(
    qtbot, tmp_path, monkeypatch
):
    errors = _thread_errors(monkeypatch)
    runner = LongJobRunner()
    marker = tmp_path / "pid"
    job = LongJob("chatty", chatty, (str(marker), 300.0), process=True)
    with qtbot.waitSignal(runner.progress, timeout=120_000) as first:
        assert runner.start(job)
    pid = int(first.args[3])
    assert _alive(pid)
    thread = runner._thread
    shiboken6.delete(runner)  # the window went away without closing the job (its C++ side is gone)
    thread.join(120)  # a bound on a hang only: it ends within a few progress messages
    assert not thread.is_alive(), "the job's thread went on relaying to a deleted runner"
    assert errors == []
    assert not _alive(pid), "the job's child outlived its runner"


def test_a_closed_runner_relays_nothing_more(qtbot, tmp_path, monkeypatch):
    errors = _thread_errors(monkeypatch)
    runner = LongJobRunner()
    heard: list[tuple] = []
    job = LongJob("chatty", chatty, (str(tmp_path / "pid"), 300.0), process=True)
    with qtbot.waitSignal(runner.progress, timeout=120_000):
        assert runner.start(job)
    for signal in (runner.progress, runner.finished, runner.failed, runner.cancelled):
        signal.connect(lambda *args: heard.append(args))
    runner.close()
    runner.wait(120)
    qtbot.wait(50)  # anything queued from the thread would be delivered now
    assert heard == [] and errors == []
    assert not _alive(int((tmp_path / "pid").read_text()))


def test_a_job_cancelled_while_the_server_starts_starts_no_process(qtbot, tmp_path, monkeypatch):
    runner = LongJobRunner()
    real_prepare = runner.prepare_processes

    def prepare_then_cancel() -> None:
        real_prepare()
        runner.cancel()  # the user's Cancel (or the window's close) arrives meanwhile

    monkeypatch.setattr(runner, "prepare_processes", prepare_then_cancel)
    marker = tmp_path / "pid"
    with qtbot.waitSignal(runner.cancelled, timeout=120_000):
        assert runner.start(LongJob("chatty", chatty, (str(marker), 300.0), process=True))
    runner.wait(120)
    assert not marker.exists(), "a process was started for a job already cancelled"
    assert not runner.busy()
