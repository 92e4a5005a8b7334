"""`autolabel` on a 6,000 x 6,000 image runs on a tile grid and merges across tile borders: one
proposal per object, not one per tile (discovery/tiled.py).

The proposal source is model-free (connected components of the drawn shapes' colours in each
window): with random tiny weights a segmenter's masks mean nothing, and this test is about the
grid, the NMS and the union, which it checks against the exact drawn masks.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from annotator.app.autolabel import autolabel
from annotator.app.working_window import Window
from annotator.discovery.autolabel import add_folder_images
from annotator.discovery.tiled import label_large, merge_tiles, place, propose_tiled, tile_grid
from annotator.io.masks import rle_to_mask
from annotator.io.pyramid import Pyramid
from annotator.store import Project
from annotator.store.proposals import ProposalStore
from tests.large_data import draw_objects, render, write_tiled

SIDE = 6_000
BACKGROUND = (96, 120, 72)
# Grid of 1,024-px windows stepping 768: window edges at 768/1024, 1536/1792, 2304/2560, ...
OBJECTS = [
    ("disc", 900, 500, 150, (230, 40, 40)),  # cut by x = 768 and x = 1024
    ("disc", 2500, 2500, 400, (40, 200, 40)),  # larger than the overlap, across 2 x 2 windows
    ("square", 1650, 4000, 40, (30, 30, 220)),  # whole inside an overlap strip: seen twice
    ("square", 3330, 3330, 60, (200, 200, 30)),  # at a corner of four windows
    ("disc", 1000, 3000, 20, (250, 250, 250)),  # two near neighbours across a border stay two
    ("disc", 1060, 3000, 20, (10, 10, 10)),
    ("disc", 5500, 800, 30, (120, 10, 160)),  # inside one window only
    ("square", 5990, 5990, 25, (0, 128, 255)),  # at the image's corner (not a cut)
]


def components(image, window: Window, classes):
    """Model-free window proposals: each connected blob of non-background pixels."""
    pixels = image.read(window.box)
    found = (pixels != np.asarray(BACKGROUND, np.uint8)).any(axis=-1).astype(np.uint8)
    count, labels = cv2.connectedComponents(found, connectivity=8)
    return [(labels == i, 1.0 - i * 1e-3, classes[0]) for i in range(1, count)]


def truth(index: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """(box, mask over the box) of one drawn object, alone."""
    kind, cx, cy, r, colour = OBJECTS[index]
    box = (max(0, cx - r - 1), max(0, cy - r - 1), min(SIDE, cx + r + 2), min(SIDE, cy + r + 2))
    alone = render(SIDE, SIDE, BACKGROUND, draw_objects([OBJECTS[index]]), box)
    return box, (alone != np.asarray(BACKGROUND, np.uint8)).any(axis=-1)


def equals_object(mask: np.ndarray, index: int) -> bool:
    (x0, y0, x1, y1), want = truth(index)
    return int(mask.sum()) == int(want.sum()) and np.array_equal(mask[y0:y1, x0:x1], want)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiles")
    write_tiled(folder / "big.tif", SIDE, SIDE, draw_objects(OBJECTS), tile=512)
    return folder


class ComponentLabeler:
    """`autolabel`'s labeler interface over the model-free source."""

    source = "proposals"
    identity = "components"

    def settings(self) -> dict:
        return {}

    def label(self, path, classes):
        return label_large(path, components, classes)


def test_grid_covers_the_image_with_overlap():
    grid = tile_grid(SIDE, SIDE, 1024, 256)
    xs = sorted({w.x0 for w in grid})
    assert xs[:3] == [0, 768, 1536] and xs[-1] == SIDE - 1024
    assert len(grid) == len(xs) ** 2
    assert tile_grid(500, 300, 1024, 256) == [Window(0, 0, 500, 300)]
    covered = np.zeros((SIDE // 8, SIDE // 8), bool)
    for w in grid:
        covered[w.y0 // 8 : w.y1 // 8, w.x0 // 8 : w.x1 // 8] = True
    assert covered.all()


def test_autolabel_gives_one_proposal_per_object(folder):
    with Project.open_folder(folder) as project:
        assert add_folder_images(project, folder) == []
        report = autolabel(project, ComponentLabeler(), ["shape"])
        stored = ProposalStore(project).proposals()
    assert report.labelled == 1 and not report.failed
    assert len(stored) == len(OBJECTS)
    unmatched = list(range(len(OBJECTS)))
    for proposal in stored:
        assert proposal.rle["size"] == [SIDE, SIDE]
        mask = rle_to_mask(proposal.rle)
        found = [i for i in unmatched if equals_object(mask, i)]  # the whole object, exactly
        assert len(found) == 1, (proposal.bbox, [OBJECTS[i] for i in unmatched])
        unmatched.remove(found[0])
    assert unmatched == []


def test_without_merging_the_cut_objects_come_in_pieces(folder):
    """The same windows, each proposal kept as found: several per object, so the test above
    can fail."""
    with Pyramid.open(folder / "big.tif") as image:
        raw = [
            place(m, s, c, w, SIDE, SIDE)
            for w in tile_grid(SIDE, SIDE)
            for m, s, c in components(image, w, ["shape"])
        ]
        merged = propose_tiled(image, components, ["shape"])
    assert len(raw) > 2 * len(OBJECTS)
    assert len(merge_tiles(raw, nms_iou=0.7, join_iou=2.0)) > len(OBJECTS)  # NMS alone
    assert len(merged) == len(OBJECTS)


def test_a_cut_piece_never_suppresses_the_whole_object():
    whole = np.zeros((100, 100), bool)
    whole[10:60, 40:90] = True  # whole in window A (it ends at x 100)
    a = place(whole, 0.5, "x", Window(0, 0, 100, 100), 400, 400)
    piece = np.zeros((100, 100), bool)
    piece[10:60, 0:40] = True  # window B starts at x 50: the object's part from x 50 on
    b = place(piece, 0.99, "x", Window(50, 0, 150, 100), 400, 400)
    assert b.cut and not a.cut
    (merged,) = merge_tiles([b, a])
    assert (merged.x0, merged.x1) == (40, 90) and merged.mask.all()
