"""Interactive-segmentation benchmark: the standard click simulation and NoC / mIoU@k metrics.

The click rule is the one of RITM / SimpleClick (and the papers comparing against them), so numbers are
comparable: the first click is the interior point of the object farthest from its boundary; each next click
is the point farthest from the boundary of the worst error region, positive in a missed (false-negative)
region, negative in a false-positive one; the distance transform is taken on the error mask padded by one
pixel, so the image border counts as a boundary. Ignore-band pixels are neither error nor clickable, and a
pixel is never clicked twice. NoC@t counts `max_clicks` for an object that never reaches IoU t.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from annotator.evaluation.datasets import Dataset, GroundTruth, load_rgb
from annotator.io.masks import mask_iou

THRESHOLDS = (0.85, 0.90)
# Refinement clicks pass the previous answer's low-res logits as the mask prompt, as SAM's
# interactive evaluation does (`eval clicks --mask-input on|off`, default on); a segmenter's
# session keeps them between calls, since each call gets all clicks so far.
MASK_INPUT_DEFAULT = True
IOU_AT = (1, 3, 5)


@dataclass(frozen=True)
class Click:
    """A simulated click at pixel (x, y)."""

    x: int
    y: int
    positive: bool

    def as_point(self) -> tuple[float, float, bool]:
        """The engine's point format: x, y in image pixels, True = positive."""
        return float(self.x), float(self.y), self.positive


Session = Callable[[Sequence[Click]], np.ndarray]  # all clicks so far -> bool (H, W) mask


class Segmenter(Protocol):
    """Anything that turns clicks into a mask; `start` does the per-image work once per object."""

    def start(self, image: np.ndarray) -> Session: ...


# -------------------------------------------------------------------------------------- the rule
def iou(prediction: np.ndarray, truth: GroundTruth) -> float:
    """IoU of a bool mask with the ground truth, ignore band excluded."""
    return mask_iou(prediction, truth.mask, truth.valid)


def _padded_distance(region: np.ndarray) -> np.ndarray:
    padded = np.pad(region.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def next_click(
    truth: GroundTruth,
    prediction: np.ndarray | None,
    clicked: np.ndarray | None = None,
) -> Click | None:
    """The next simulated click for this prediction (None: nothing left to correct).

    `clicked`: bool (H, W) pixels already clicked, never chosen again.
    """
    prediction = np.zeros_like(truth.mask) if prediction is None else prediction.astype(bool)
    if prediction.shape != truth.mask.shape:
        raise ValueError(
            f"prediction {prediction.shape} and ground truth {truth.mask.shape} differ"
        )
    valid = truth.valid
    missed = truth.mask & ~prediction & valid
    extra = prediction & ~truth.mask & valid
    best: tuple[float, int, bool] | None = None
    for region, positive in ((missed, True), (extra, False)):
        if not region.any():
            continue
        distance = _padded_distance(region)
        if clicked is not None:
            distance[clicked] = 0
        index = int(np.argmax(distance))
        value = float(distance.flat[index])
        # A tie goes to the false positive, as in RITM (`is_positive = fn_max > fp_max`).
        if value > 0 and (best is None or value >= best[0]):
            best = (value, index, positive)
    if best is None:
        return None
    y, x = np.unravel_index(best[1], truth.mask.shape)
    return Click(int(x), int(y), best[2])


# ----------------------------------------------------------------------------------- simulation
@dataclass
class ObjectResult:
    """IoU after each click (always `max_clicks` long: carried forward once nothing is left to fix)."""

    name: str
    ious: list[float]
    clicks: list[Click]

    def noc(self, threshold: float) -> int:
        """Clicks needed to reach `threshold`; max_clicks when never reached."""
        return next((i + 1 for i, v in enumerate(self.ious) if v >= threshold), len(self.ious))

    def reached(self, threshold: float) -> bool:
        return any(v >= threshold for v in self.ious)


def simulate(
    session: Session, truth: GroundTruth, max_clicks: int = 20, name: str = ""
) -> ObjectResult:
    """Click until `max_clicks` (or until the mask is perfect), recording the IoU after each click."""
    if max_clicks < 1:
        raise ValueError("max_clicks must be at least 1")
    clicks: list[Click] = []
    ious: list[float] = []
    clicked = np.zeros(truth.mask.shape, dtype=bool)
    prediction: np.ndarray | None = None
    while len(clicks) < max_clicks:
        click = next_click(truth, prediction, clicked)
        if click is None:
            break
        clicks.append(click)
        clicked[click.y, click.x] = True
        prediction = np.asarray(session(list(clicks)), dtype=bool)
        if prediction.shape != truth.mask.shape:
            raise ValueError(f"{name}: mask {prediction.shape} for an image of {truth.mask.shape}")
        ious.append(iou(prediction, truth))
    last = ious[-1] if ious else 0.0
    ious.extend([last] * (max_clicks - len(ious)))
    return ObjectResult(name, ious, clicks)


@dataclass
class ClicksReport:
    """Per-object IoU curves and the standard summary numbers."""

    dataset: str
    max_clicks: int
    objects: list[ObjectResult]
    notes: list[str] = field(default_factory=list)

    def noc(self, threshold: float) -> float:
        return float(np.mean([o.noc(threshold) for o in self.objects])) if self.objects else 0.0

    def not_reached(self, threshold: float) -> int:
        """Objects that never reach `threshold` within max_clicks."""
        return sum(not o.reached(threshold) for o in self.objects)

    def mean_iou_curve(self) -> list[float]:
        """Mean IoU after 1..max_clicks clicks."""
        if not self.objects:
            return []
        return [float(v) for v in np.mean([o.ious for o in self.objects], axis=0)]

    def miou_at(self, clicks: int) -> float | None:
        curve = self.mean_iou_curve()
        return curve[clicks - 1] if 0 < clicks <= len(curve) else None

    def summary(self) -> dict[str, float | int | None]:
        """The headline numbers, keyed as in the JSON and the table."""
        out: dict[str, float | int | None] = {"objects": len(self.objects)}
        for t in THRESHOLDS:
            out[f"NoC@{round(t * 100)}"] = self.noc(t)
        for t in THRESHOLDS:
            out[f"not_reached@{round(t * 100)}"] = self.not_reached(t)
        for k in IOU_AT:
            out[f"mIoU@{k}"] = self.miou_at(k)
        return out


def evaluate_clicks(
    dataset: Dataset,
    segmenter: Segmenter,
    max_clicks: int = 20,
    progress: Callable[[int], None] | None = None,
) -> ClicksReport:
    """Run the click simulation on every object of `dataset`; `progress(1)` after each object.

    Objects whose image cannot be read, whose mask does not have the image's size, or whose mask is
    empty are skipped with a note (a benchmark run should not die on one bad file).
    """
    from annotator.errors import AnnotatorError

    report = ClicksReport(dataset.name, max_clicks, [], list(dataset.notes))
    for image_path, samples in dataset.by_image():
        image: np.ndarray | None = None
        for sample in samples:
            try:
                truth = sample.load()
                if image is None:
                    image = load_rgb(image_path, truth.mask.shape)
            except AnnotatorError as error:
                report.notes.append(f"{sample.name}: skipped ({error})")
            else:
                if image.shape[:2] != truth.mask.shape:
                    report.notes.append(
                        f"{sample.name}: skipped (mask {truth.mask.shape[::-1]} but image "
                        f"{image.shape[1::-1]})"
                    )
                elif not (truth.mask & truth.valid).any():
                    report.notes.append(f"{sample.name}: skipped (empty mask)")
                else:
                    session = segmenter.start(image)
                    report.objects.append(simulate(session, truth, max_clicks, sample.name))
            if progress is not None:
                progress(1)
    return report
