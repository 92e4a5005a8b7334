"""What the window says about the model thread's work: an error in one line, the segmenter's name.

Apart from `model_host.py` (which re-exports both) to keep the host to its scheduling."""

from __future__ import annotations

from pathlib import Path

from annotator import families
from annotator.errors import AnnotatorError
from annotator.spec import ModelSpec


def describe_error(error: BaseException) -> str:
    """One line for the user: our own errors are already phrased for them, others get their type."""
    if isinstance(error, AnnotatorError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def segmenter_name(spec: ModelSpec) -> str:
    """What the window calls the segmenter: the checkpoint's file or folder name, else the
    chosen family's readable name, else "default segmenter"."""
    if spec.checkpoint:
        return Path(spec.checkpoint).name or str(spec.checkpoint)
    if spec.segmenter:
        family = families.FAMILIES.get(spec.segmenter)
        return (family.choice if family is not None else spec.segmenter).split(" (")[0]
    return "default segmenter"
