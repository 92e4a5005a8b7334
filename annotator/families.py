"""Segmenter families: one record per family, read by the CLI, the window, the model registry and
the weights registry (ADR 0028).

Qt-free and torch-free (a light CLI command and the window's settings read it without loading a
model): the record names the class that loads the family by its import path, resolved only when a
model is built (`models/registry.load_segmenter`). Adding a family is one module implementing
`models.segmenter.Segmenter` plus one `register(SegmenterFamily(...))` line below (and its
downloadable weights in `models/weights.KNOWN`, where `default_weights` must name one).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SegmenterFamily:
    """One segmenter family's facts."""

    name: str  # the --segmenter value, the settings' key, the weights registry's `kind`
    title: str  # short, for messages ("SAM 2.1")
    choice: str  # the window's settings list entry (says what file it takes)
    default_weights: str  # `models.weights.KNOWN` name of its default (CPU-friendly) size
    loader: str  # "module:Class" with a `load(path, device=..., **loader_kwargs)` classmethod
    loader_kwargs: dict[str, Any] = field(default_factory=dict)
    folder: bool = True  # weights are a transformers folder (config.json + model.safetensors)
    model_type: str | None = None  # config.json's model_type that names this family
    video: bool = False  # the model has a memory for video (SAM 2 style): `annotator track`
    video_model_type: str | None = None  # a folder saved from the video class (serves images too)

    def load(self, path: Path, device: str) -> Any:
        """Build the family's segmenter from `path` (imports the model code, torch, now)."""
        module, _, name = self.loader.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls.load(path, device=device, **self.loader_kwargs)


FAMILIES: dict[str, SegmenterFamily] = {}


def register(family: SegmenterFamily) -> SegmenterFamily:
    """Add a family (its name must be new)."""
    if family.name in FAMILIES:
        raise ValueError(f"segmenter family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


register(
    SegmenterFamily(
        "sam",
        "SAM 1",
        "SAM 1 (segment-anything .pth)",
        default_weights="sam_vit_b",
        loader="annotator.models.sam:SamModel",
        folder=False,
    )
)
register(
    SegmenterFamily(
        "sam2",
        "SAM 2.1",
        "SAM 2.1 (transformers folder)",
        default_weights="sam2.1_hiera_tiny",
        loader="annotator.models.sam2:Sam2Segmenter",
        loader_kwargs={"family": "sam2"},
        model_type="sam2",
        video=True,
        video_model_type="sam2_video",
    )
)
register(
    SegmenterFamily(
        "edgetam",
        "EdgeTAM",
        "EdgeTAM (transformers folder)",
        default_weights="edgetam",
        loader="annotator.models.sam2:Sam2Segmenter",
        loader_kwargs={"family": "edgetam"},
        model_type="edgetam",
        video=True,
        video_model_type="edgetam_video",
    )
)
register(
    SegmenterFamily(
        "sam_hq",
        "HQ-SAM",
        "HQ-SAM (transformers folder)",
        default_weights="sam_hq_vit_b",
        loader="annotator.models.sam_hq:SamHQSegmenter",
        model_type="sam_hq",
    )
)

NAMES: tuple[str, ...] = tuple(FAMILIES)
"""The family names in the order the CLI and the window list them."""


def get(name: str) -> SegmenterFamily:
    """The record of family `name` (KeyError naming the known ones when there is none)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown segmenter {name!r}; known: {', '.join(FAMILIES)}") from None


__all__ = ["FAMILIES", "NAMES", "SegmenterFamily", "get", "register"]
