"""Yield points: batch work in the model worker gives way to a click within one model call.

The worker runs one request at a time, so a click that arrives while an auto-label image is in
progress would wait for the whole image (grid proposals, a region embedding per proposal: 16-21 s
with SAM ViT-B on 2 cores). A batch job runs inside `interruptible(urgent)`; the loops that make
model calls call `yield_point()` between calls, which raises `StepAside` once `urgent()` says a click
waits. The job returns "yielded", the worker serves the click, and the batch sends the same item
again (the finished parts are cached: the embedding on disk, the proposals once complete).

Outside `interruptible` a yield point does nothing, so the CLI and the tests of the lower floors run
the same code unchanged. Per thread (a context variable), no Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_urgent: ContextVar[Callable[[], bool] | None] = ContextVar("annotator_urgent", default=None)
_checks: ContextVar[list[int] | None] = ContextVar("annotator_yield_checks", default=None)
_inside_models: ContextVar[bool] = ContextVar("annotator_yield_inside_models", default=False)


class StepAside(Exception):  # noqa: N818 - a signal, not an error
    """A click is waiting: the batch item stops here and is sent again later."""


@contextmanager
def interruptible(urgent: Callable[[], bool], inside_models: bool = False) -> Iterator[list[int]]:
    """Yield points inside this block raise `StepAside` once `urgent()` is true. Yields a one-item
    list counting the yield points passed (tests check that the checks happen between calls).

    `inside_models`: the encoders' own yield points (`model_yield_point`, between their blocks)
    act too, so a click stops an encode half done. For work worth throwing away (a large image's
    windows encoded ahead of a click), not for a batch item whose encode is the job."""
    counter = [0]
    token, count_token = _urgent.set(urgent), _checks.set(counter)
    models_token = _inside_models.set(inside_models)
    try:
        yield counter
    finally:
        _urgent.reset(token)
        _checks.reset(count_token)
        _inside_models.reset(models_token)


def yield_point() -> None:
    """Between two model calls of a batch loop: step aside if a click waits."""
    urgent = _urgent.get()
    if urgent is None:
        return
    counter = _checks.get()
    if counter is not None:
        counter[0] += 1
    if urgent():
        raise StepAside


def model_yield_point() -> None:
    """Between two blocks of an encoder (`models/lowmem.add_yield_points`): steps aside only in a
    block opened with `interruptible(..., inside_models=True)`."""
    if _inside_models.get():
        yield_point()
