"""A small project every format test exports: masks with holes, 1-3 px masks, a mask in two parts,
a box-only annotation, an unused and a non-ASCII category, an image without annotations."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from annotator.store import Project
from annotator.store import extras as store_extras

SIZES = {"a.png": (64, 48), "sub/b.png": (40, 30), "c.png": (20, 16)}


def shapes() -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per image: (category, mask) pairs; none overlap, so mask formats can hold them exactly."""
    ellipse = np.zeros((48, 64), np.uint8)
    cv2.ellipse(ellipse, (18, 16), (12, 8), 20, 0, 360, 1, -1)
    donut = np.zeros((48, 64), np.uint8)
    cv2.circle(donut, (46, 30), 12, 1, -1)
    cv2.circle(donut, (46, 30), 5, 0, -1)
    dot = np.zeros((48, 64), np.uint8)
    dot[44, 3] = 1
    line = np.zeros((48, 64), np.uint8)
    line[40, 10:13] = 1  # 3 px
    two = np.zeros((48, 64), np.uint8)
    two[30:36, 4:10] = 1
    two[38:42, 18:24] = 1
    rect = np.zeros((30, 40), np.uint8)
    rect[3:20, 20:35] = 1
    return {
        "a.png": [
            ("cat", ellipse.astype(bool)),
            ("dog", donut.astype(bool)),
            ("cat", dot.astype(bool)),
            ("straße", line.astype(bool)),
            ("dog", two.astype(bool)),
        ],
        "sub/b.png": [("dog", rect.astype(bool))],
        "c.png": [],
    }


SIMPLE = {0, 2, 3, 5}  # indices (in flattened order) of one-part, hole-free masks
BOX = ("sub/b.png", "cat", (2.0, 22.0, 10.0, 6.0), 0.75)


def make_project(folder: Path) -> Project:
    """Images on disk + the project in `folder` (categories: cat, dog, unused, straße)."""
    rng = np.random.default_rng(0)
    for name, (w, h) in SIZES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / name)
    project = Project.open_folder(folder)
    for name in ("cat", "dog", "unused", "straße"):
        project.category_id(name)
    ids = {}
    for name, (w, h) in SIZES.items():
        ids[name] = project.add_image(name, w, h)
        for k, (category, mask) in enumerate(shapes()[name]):
            project.add_annotation(ids[name], mask, category, score=0.5 + k / 10)
    image, category, box, score = BOX
    store_extras.add_box(project, ids[image], project.category_id(category), box, score=score)
    return project


def expected_masks(project: Project) -> dict[str, list[tuple[str, np.ndarray]]]:
    """(category, mask) per image file name, from the project."""
    by_id = {i.id: i.file_name for i in project.images()}
    out: dict[str, list[tuple[str, np.ndarray]]] = {n: [] for n in by_id.values()}
    for a in project.annotations():
        out[by_id[a.image_id]].append((a.category, a.mask()))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def best_match(mask: np.ndarray, candidates: list[np.ndarray]) -> float:
    return max((iou(mask, c) for c in candidates), default=0.0)
