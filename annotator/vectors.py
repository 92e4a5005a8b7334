"""Unit vectors: the one normaliser for CLIP embeddings (region heads, similarity, exemplars).

numpy only, so layers that must not load torch (vocab/, store/) can use it.
"""

from __future__ import annotations

import numpy as np


def unit_vector(vector: np.ndarray) -> np.ndarray:
    """(D,) float32 scaled to length 1 (a zero vector stays zero)."""
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
