"""Side by side: the same image and clicks through two model choices (SAM checkpoints, CLIP models,
region heads), with the masks' agreement, both label lists and what each click cost.

The clicks are replayed one at a time, as a user would make them (click 1, then clicks 1-2, ...),
and every `Engine.segment` call is timed; the last answer is the result of each side.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.engine import Box, Engine, Point
from annotator.errors import PromptError
from annotator.io.masks import mask_iou


@dataclass(frozen=True)
class Side:
    """One model choice's answer."""

    model_id: str
    mask: np.ndarray  # bool (H, W) after the last click
    score: float  # SAM's predicted IoU of that mask
    labels: list[tuple[str, float]]  # top-k, best first
    embed_seconds: float  # Engine.embed (reading the disk cache when the image was seen before)
    click_seconds: tuple[float, ...]  # one Engine.segment per click, in click order

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    iou: float  # between a.mask and b.mask (1.0 when both are empty)


def _steps(points: Sequence[Point], box: Box | None) -> list[tuple[list[Point], Box | None]]:
    if not points and box is None:
        raise PromptError("compare needs at least one point or a box")
    if not points:
        return [([], box)]
    return [(list(points[: i + 1]), box) for i in range(len(points))]


def run_side(
    engine: Engine,
    image: np.ndarray | Path | str,
    points: Sequence[Point],
    box: Box | None = None,
    top_k: int = 5,
) -> Side:
    """Embed the image with one engine and replay the clicks, timing each."""
    start = time.perf_counter()
    embedding = engine.embed(image)
    embed_seconds = time.perf_counter() - start
    clicks = []
    proposal = None
    for step_points, step_box in _steps(points, box):
        start = time.perf_counter()
        proposal = engine.segment(embedding, step_points, step_box, top_k=top_k)
        clicks.append(time.perf_counter() - start)
    assert proposal is not None
    return Side(
        model_id=engine.model_id,
        mask=proposal.mask,
        score=float(proposal.score),
        labels=list(proposal.labels),
        embed_seconds=embed_seconds,
        click_seconds=tuple(clicks),
    )


def compare(
    engine_a: Engine,
    engine_b: Engine,
    image: np.ndarray | Path | str,
    points: Sequence[Point],
    box: Box | None = None,
    top_k: int = 5,
) -> Comparison:
    """The same image and prompts through both engines; plain data for the CLI and the GUI."""
    a = run_side(engine_a, image, points, box, top_k)
    b = run_side(engine_b, image, points, box, top_k)
    return Comparison(a=a, b=b, iou=mask_iou(a.mask, b.mask))


def format_comparison(comparison: Comparison, names: tuple[str, str] = ("A", "B")) -> str:
    """A plain-text report: models, areas, IoU, the two label lists side by side, timings."""
    a, b = comparison.a, comparison.b
    width = 36
    lines = [
        f"{names[0]}: {a.model_id}",
        f"{names[1]}: {b.model_id}",
        "",
        f"{'':<14}{names[0]:<{width}}{names[1]}",
        f"{'mask area':<14}{a.area:<{width}}{b.area}",
        f"{'SAM score':<14}{a.score:<{width}.3f}{b.score:.3f}",
        f"{'embed':<14}{a.embed_seconds * 1e3:<{width}.1f}{b.embed_seconds * 1e3:.1f} ms",
    ]
    for i, (ta, tb) in enumerate(zip(a.click_seconds, b.click_seconds, strict=True), 1):
        lines.append(f"{f'click {i}':<14}{ta * 1e3:<{width}.1f}{tb * 1e3:.1f} ms")
    lines.append(f"{'mask IoU':<14}{comparison.iou:.3f}")
    lines.append("labels")
    for i in range(max(len(a.labels), len(b.labels))):
        left = f"{a.labels[i][0]} {a.labels[i][1]:.3f}" if i < len(a.labels) else ""
        right = f"{b.labels[i][0]} {b.labels[i][1]:.3f}" if i < len(b.labels) else ""
        lines.append(f"{f'  {i + 1}':<14}{left[: width - 1]:<{width}}{right}")
    return "\n".join(lines)


def comparison_json(comparison: Comparison) -> dict:
    """The comparison without the masks' pixels (areas, IoU, labels, timings in ms)."""

    def side(s: Side) -> dict:
        return {
            "model": s.model_id,
            "area": s.area,
            "score": round(s.score, 6),
            "labels": [{"name": n, "score": round(float(p), 6)} for n, p in s.labels],
            "embed_ms": round(s.embed_seconds * 1e3, 3),
            "click_ms": [round(t * 1e3, 3) for t in s.click_seconds],
        }

    return {"a": side(comparison.a), "b": side(comparison.b), "iou": round(comparison.iou, 6)}


__all__ = [
    "Comparison",
    "Side",
    "compare",
    "comparison_json",
    "format_comparison",
    "mask_iou",
    "run_side",
]
