"""A large image's working windows encoded ahead of a click (issue 26, app/window_prefetch): the
view's own window and its neighbours, in the model host when nothing else waits, stopped by a
click within one encoder block, and found in the cache by the click that comes later."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from annotator.app.large_view import LargeView
from annotator.app.model_host import ModelHost, Outbox
from annotator.app.window_prefetch import (
    WindowQueue,
    encode_window,
    neighbour_windows,
    prefetch_step,
    view_windows,
)
from annotator.app.working_window import Window, segment_in_window, window_key
from annotator.io.pyramid import Pyramid
from annotator.preempt import interruptible, model_yield_point
from tests.large_data import draw_objects, write_tiled

SIDE = 6000
LEVELS = [(6000, 6000), (3000, 3000), (1500, 1500), (750, 750)]


def test_neighbours_are_the_same_size_around_it_edges_first_and_inside_the_image():
    window = Window(2048, 2048, 3072, 3072)
    found = neighbour_windows(window, SIDE, SIDE)
    assert len(found) == 8 and len(set(found)) == 8
    assert all(w.width == 1024 and w.height == 1024 and w.level == 0 for w in found)
    assert found[:4] == [
        Window(3072, 2048, 4096, 3072),
        Window(1024, 2048, 2048, 3072),
        Window(2048, 3072, 3072, 4096),
        Window(2048, 1024, 3072, 2048),
    ]
    corner = neighbour_windows(Window(0, 0, 1024, 1024), SIDE, SIDE)
    assert sorted(w.box for w in corner) == [
        (0, 1024, 1024, 2048),
        (1024, 0, 2048, 1024),
        (1024, 1024, 2048, 2048),
    ]
    coarse = neighbour_windows(Window(0, 0, 6000, 6000, 3), SIDE, SIDE)
    assert coarse == []  # the whole image: nothing around it


def test_the_views_window_comes_first_and_is_the_one_a_click_there_gets():
    view = LargeView("big.tif", SIDE, SIDE, LEVELS, tile=512, side=1024)
    view.view_box, view.zoom = (2000.0, 2100.0, 2800.0, 2700.0), 1.0
    windows = view_windows(view)
    assert windows[0] == view.window_for([(2400.0, 2400.0, True)])
    assert windows[0].level == 0 and windows[0].width == 1024
    assert windows[1:] == neighbour_windows(windows[0], SIDE, SIDE)[:4]  # the edge neighbours
    assert view_windows(view, neighbours=0) == windows[:1]


def test_the_queue_keeps_the_newest_list_and_counts_its_generations():
    queue = WindowQueue()
    assert queue.next() is None
    a, b = Window(0, 0, 10, 10), Window(10, 0, 20, 10)
    queue.set("x.tif", [a, b, a])
    assert len(queue) == 2 and queue.next() == ("x.tif", a, 1)
    queue.done("x.tif", a)
    assert queue.next() == ("x.tif", b, 1)
    queue.done("other.tif", b)  # not this list's: nothing changes
    assert len(queue) == 1
    queue.set("", [])
    assert queue.next() is None and queue.generation == 2


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    objects = [("disc", 2400, 2500, 300, (230, 40, 40)), ("square", 4200, 1800, 200, (30, 30, 220))]
    path = tmp_path_factory.mktemp("prefetch") / "big.tif"
    return write_tiled(path, SIDE, SIDE, draw_objects(objects), overviews=3)


def _on_disk(engine, key: str) -> tuple[bool, bool]:
    """(segmenter half, CLIP half) of a window in the engine's disk cache."""
    return (
        engine.cache.contains("sam", engine.sam.identity, key),
        engine.cache.contains("clip", engine._clip_id(), key),
    )


def _counting(engine):
    """Count the engine's encoder calls (the real encoders still run)."""
    calls = {"sam": 0, "clip": 0}
    sam_encode, prepare = engine.sam.encode, engine.head.prepare

    def sam(image):
        calls["sam"] += 1
        return sam_encode(image)

    def clip(image):
        calls["clip"] += 1
        return prepare(image)

    engine.sam.encode, engine.head.prepare = sam, clip
    return calls, (sam_encode, prepare)


def test_a_prefetched_window_answers_the_later_click_from_the_cache(big, engine):
    engine.recent_regions.clear()
    queue = WindowQueue()
    window = Window(1920, 1920, 1920 + 1024, 1920 + 1024)
    queue.set(str(big), [window])
    calls, originals = _counting(engine)
    try:
        assert prefetch_step(engine, queue.next(), queue, lambda: False)
        assert len(queue) == 0 and calls == {"sam": 1, "clip": 1}  # both halves, once
        with Pyramid.open(big) as image:
            key = window_key(image, window)
            assert _on_disk(engine, key) == (True, True)
            assert engine.recent_regions.get(key, engine.model_id) is None  # not in memory
            answer = segment_in_window(engine, image, window, [(2400.0, 2500.0, True)], top_k=5)
        assert calls == {"sam": 1, "clip": 1}  # the click encoded nothing
        assert answer.mask.any() and answer.labels
    finally:
        engine.sam.encode, engine.head.prepare = originals


def test_a_click_stops_a_prefetch_encode_within_one_block(big, engine):
    """`urgent()` turns true after the segmenter half: the CLIP half stops at its next block's
    yield point, the window stays queued, and the segmenter half is kept in the cache."""
    engine.recent_regions.clear()
    queue = WindowQueue()
    window = Window(3072, 3072, 4096, 4096)
    queue.set(str(big), [window])
    calls, originals = _counting(engine)
    try:
        item = queue.next()
        assert not prefetch_step(engine, item, queue, lambda: calls["clip"] > 0)
        assert len(queue) == 1  # tried again later
        assert calls == {"sam": 1, "clip": 1}
        with Pyramid.open(big) as image:
            assert _on_disk(engine, window_key(image, window)) == (True, False)  # the SAM half
            assert encode_window(engine, image, window, lambda: False)
        assert calls == {"sam": 1, "clip": 2}  # the second try only needed the CLIP half
    finally:
        engine.sam.encode, engine.head.prepare = originals


def test_encoder_yield_points_act_only_where_a_block_allows_them():
    from annotator.preempt import StepAside

    with interruptible(lambda: True):
        model_yield_point()  # a batch item's encode is its job: it runs to the end
    with pytest.raises(StepAside), interruptible(lambda: True, inside_models=True):
        model_yield_point()
    model_yield_point()  # outside any block: nothing


def _host_with(engine) -> tuple[ModelHost, list]:
    events: list = []
    out = Outbox(
        **{
            name: (lambda *a, name=name: events.append((name, *a)))
            for name in Outbox.__dataclass_fields__
        }
    )
    host = ModelHost(out)
    host.engine = engine  # as after a load (the loop then serves requests)
    return host, events


def test_the_host_encodes_queued_windows_when_idle_and_a_click_goes_first(big, engine):
    from annotator.app.model_port import DecodeRequest

    engine.recent_regions.clear()
    host, events = _host_with(engine)
    thread = threading.Thread(target=host.run, daemon=True)
    thread.start()
    try:
        windows = [Window(0, 4096, 1024, 5120), Window(1024, 4096, 2048, 5120)]
        host.prefetch_windows(str(big), windows)
        deadline = time.monotonic() + 120
        while len(host.windows) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(host.windows) == 0
        with Pyramid.open(big) as image:
            for window in windows:
                assert _on_disk(engine, window_key(image, window)) == (True, True)
        # a click in a prefetched window: answered from the cache
        request = DecodeRequest(
            image_id=1, request_id=7, path=str(big), points=[(500.0, 4500.0, True)],
            window=windows[0],
        )  # fmt: skip
        calls, originals = _counting(engine)
        try:
            host.decode(request)
            while not any(e[0] == "proposal_ready" for e in events):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert calls == {"sam": 0, "clip": 0}
        finally:
            engine.sam.encode, engine.head.prepare = originals
        proposal = next(e for e in events if e[0] == "proposal_ready")[3]
        assert proposal.window == windows[0] and isinstance(proposal.mask, np.ndarray)
    finally:
        host.request_stop()
        thread.join(60)
