"""What a tracker takes and gives, shared by models/ (which track) and app/ (which stores): plain
numpy, no torch, so the application layer can build prompts without importing a model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ObjectPrompt:
    """Clicks and/or a box for one object on one frame (frame index within the tracked range)."""

    object_id: int
    frame: int
    points: np.ndarray | None = None  # (N, 2) image pixels
    labels: np.ndarray | None = None  # (N,) 1 object, 0 background
    box: np.ndarray | None = None  # (4,) x0, y0, x1, y1

    def to_json(self) -> dict:
        return {
            "points": None if self.points is None else np.asarray(self.points).tolist(),
            "labels": None if self.labels is None else np.asarray(self.labels).tolist(),
            "box": None if self.box is None else np.asarray(self.box).tolist(),
        }

    @classmethod
    def from_json(cls, object_id: int, frame: int, data: dict) -> ObjectPrompt:
        points = data.get("points")
        box = data.get("box")
        return cls(
            int(object_id),
            int(frame),
            None if points is None else np.asarray(points, dtype=np.float64).reshape(-1, 2),
            None if points is None else np.asarray(data.get("labels"), dtype=np.int64),
            None if box is None else np.asarray(box, dtype=np.float64),
        )


@dataclass
class FrameMasks:
    """Every tracked object's mask on one frame: bool (H, W) and a score in [0, 1]."""

    frame: int
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    scores: dict[int, float] = field(default_factory=dict)
