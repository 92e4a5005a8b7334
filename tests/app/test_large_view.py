"""A large image in the window, Qt-free (issue 26): which level and tiles a viewport shows, the
working window a click gets (native, or downsampled from a pyramid level), and a downsampled
window's mask placed at full-image coordinates."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annotator.app.large_view import LargeView, TileCache, annotation_crop, click_window
from annotator.app.working_window import Window, placed_rle, segment_in_window
from annotator.io.masks import mask_to_rle
from annotator.io.pyramid import Pyramid
from tests.large_data import draw_objects, write_tiled

SIDE = 6000
LEVELS = [(6000, 6000), (3000, 3000), (1500, 1500), (750, 750)]


def _view() -> LargeView:
    return LargeView("big.tif", SIDE, SIDE, LEVELS, tile=512, side=1024)


def test_the_level_is_the_coarsest_at_least_as_fine_as_the_screen():
    view = _view()
    assert view.level_for(1.0) == 0
    assert view.level_for(2.0) == 0  # zoomed in: native pixels
    assert view.level_for(0.5) == 1
    assert view.level_for(0.3) == 1  # 1 / 0.3 = 3.3 px per screen px: level 2 (4) is too coarse
    assert view.level_for(0.25) == 2
    assert view.level_for(0.01) == 3  # the coarsest there is


def test_tiles_are_those_of_that_level_the_viewport_touches():
    view = _view()
    tiles = view.tiles((1000, 1000, 2000, 1600), zoom=1.0)  # level 0, 512-px tiles
    assert {t.level for t in tiles} == {0}
    assert {(t.tx, t.ty) for t in tiles} == {(x, y) for x in (1, 2, 3) for y in (1, 2, 3)}
    tile = next(t for t in tiles if (t.tx, t.ty) == (3, 3))
    assert tile.box == (1536, 1536, 2048, 2048) and tile.rect == (1536, 1536, 2048, 2048)
    fitted = view.tiles((0, 0, SIDE, SIDE), zoom=1000 / SIDE)  # the whole image in 1,000 px
    assert {t.level for t in fitted} == {2} and len(fitted) == 9  # 1,500 px: finer than 1,000
    whole = view.tiles((0, 0, SIDE, SIDE), zoom=750 / SIDE)  # ... in 750 px
    assert {t.level for t in whole} == {3}
    assert len(whole) == 4  # 750 px in 512-px tiles: 2 x 2
    edge = next(t for t in whole if (t.tx, t.ty) == (1, 1))
    assert edge.box == (512, 512, 750, 750) and edge.rect == (4096, 4096, 6000, 6000)
    assert view.tiles((7000, 7000, 8000, 8000), zoom=1.0) == []  # outside the image


def test_a_click_in_a_zoomed_in_view_gets_a_native_window_on_the_tile_grid():
    view = _view()
    window = click_window(view, (2100, 3050, 2900, 3650), [(2500, 3300, True)], None, 1024)
    assert window.level == 0
    assert (window.width, window.height) == (1024, 1024)
    assert window.x0 % 512 == 0  # snapped: a return finds its embedding
    assert window.y0 % 128 == 0  # (600 px tall: no 512-grid start holds it, the 128 grid does)
    assert window.x0 <= 2100 and window.x1 >= 2900 and window.y0 <= 3050 and window.y1 >= 3650
    # the same place, panned a little: the same window (the cached embedding answers)
    again = click_window(view, (2110, 3040, 2910, 3640), [(2520, 3310, True)], None, 1024)
    assert again == window
    # at the image's edge the window is shifted inside it
    edge = click_window(view, (5300, 5400, 6000, 6000), [(5900, 5900, True)], None, 1024)
    assert (edge.x1, edge.y1) == (SIDE, SIDE) and edge.width == 1024


def test_a_click_in_a_zoomed_out_view_gets_a_downsampled_window():
    view = _view()
    window = click_window(view, (1000, 1000, 3500, 2800), [(2000, 2000, True)], None, 1024)
    assert window.level == 2  # 2,500 px wide: level 1 (1,250 px + snapping) is over 1,024
    info = view.levels[2]
    assert window.x0 <= 1000 and window.x1 >= 3500 and window.y0 <= 1000 and window.y1 >= 2800
    assert (window.x1 - window.x0) / info.sx <= 1024 and (window.x0 / info.sx) % 512 == 0
    whole = click_window(view, (0, 0, SIDE, SIDE), [(10, 10, True)], None, 1024)
    assert whole == Window(0, 0, SIDE, SIDE, 3)  # 750 px: the whole image at the coarsest level
    # the prompts are always inside: a point off the view grows the region
    grown = click_window(view, (0, 0, 1000, 1000), [(3000, 200, True)], None, 1024)
    assert grown.x1 >= 3000 + 16


def test_placing_a_resized_mask_matches_a_nearest_resize():
    rng = np.random.default_rng(3)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < 0.4
        ow, oh = int(rng.integers(w, 4 * w + 2)), int(rng.integers(h, 4 * h + 2))
        height, width = oh + 7, ow + 5
        rle = placed_rle(mask, 3, 4, height, width, size=(ow, oh))
        full = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        reference = np.zeros((height, width), bool)
        reference[4 : 4 + oh, 3 : 3 + ow] = mask[np.arange(oh) * h // oh][
            :, np.arange(ow) * w // ow
        ]
        assert (full.astype(bool) == reference).all()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    objects = [("disc", 2400, 2500, 300, (230, 40, 40)), ("square", 4200, 1800, 200, (30, 30, 220))]
    path = tmp_path_factory.mktemp("large") / "big.tif"
    return write_tiled(path, SIDE, SIDE, draw_objects(objects), overviews=3)


def test_a_downsampled_window_places_the_models_mask_resized(big, engine):
    """The mask of a click in a zoomed-out view is the model's output on the downsampled crop
    (the level's pixels), resized by nearest neighbour to the window's full-resolution size."""
    with Pyramid.open(big) as image:
        view = LargeView.of(str(big), image)
        point = (2400.0, 2500.0, True)
        window = click_window(view, (500, 500, 4500, 4500), [point], None, 1024)
        assert window.level == 3
        answer = segment_in_window(engine, image, window, [point], top_k=5)
        # the reference: the same model on the level's crop, the point moved into its pixels
        info = image.levels[window.level]
        crop_box = tuple(int(round(v / info.scale)) for v in window.box)
        crop = image.read(crop_box, window.level)
        sx = window.width / crop.shape[1]
        sy = window.height / crop.shape[0]
        local = ((point[0] - window.x0) / sx, (point[1] - window.y0) / sy, True)
        reference = engine.segment(engine.embed(crop), [local], top_k=0).mask
    assert answer.mask.shape == crop.shape[:2]
    assert (answer.mask == reference).all()
    assert 0 < reference.sum() < reference.size  # neither empty nor the whole window
    assert answer.labels  # labels from the region head on the same window
    resized = cv2.resize(
        reference.astype(np.uint8), (window.width, window.height), interpolation=cv2.INTER_NEAREST
    ).astype(bool)
    placed = np.zeros((SIDE, SIDE), bool)
    placed[window.y0 : window.y1, window.x0 : window.x1] = resized
    rle = answer.rle()
    full = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
    iou = (full & placed).sum() / (full | placed).sum()
    assert iou >= 0.999, iou
    assert answer.area() == int(full.sum())
    x, y, w, h = answer.bbox()
    ys, xs = np.nonzero(full)
    assert (x, y, w, h) == (xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)


def test_an_annotation_overlay_is_its_boxes_crop_strided_past_the_limit():
    mask = np.zeros((3000, 4000), bool)
    mask[1000:2999, 500:3500] = True
    mask[1500:1600, 1000:1100] = False
    record = SimpleNamespace(rle=mask_to_rle(mask))
    x0, y0, step, crop = annotation_crop(record)
    assert (x0, y0, step) == (500, 1000, 2)  # 3,000 x 1,999 = 6 MP > 4 MP: every 2nd pixel
    assert (crop == mask[1000:2999:2, 500:3500:2]).all()
    x0, y0, step, crop = annotation_crop(record, max_pixels=10**8)
    assert step == 1 and (crop == mask[1000:2999, 500:3500]).all()


def test_the_tile_cache_is_bounded():
    cache = TileCache(max_bytes=1000)
    for i in range(10):
        cache.put(i, f"tile{i}", 300)
    assert cache.nbytes <= 1000 and len(cache) == 3
    assert cache.get(0) is None and cache.get(9) == "tile9"
