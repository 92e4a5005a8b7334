"""User-facing errors: each carries a one-line message that the CLI prints and the GUI shows.

Anything that is the user's input being wrong (a file, a flag, a checkpoint) raises a subclass of
`AnnotatorError`; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AnnotatorError(Exception):
    """Base class: `str(error)` is a complete, one-line explanation for the user."""


class CheckpointError(AnnotatorError):
    """A model file is missing, unreadable, or not the kind of checkpoint expected."""


class WeightsError(AnnotatorError):
    """A download failed, was interrupted, or its hash does not match."""


class ImageLoadError(AnnotatorError):
    """An image file cannot be decoded, is too large, or is not an image."""


class VocabularyError(AnnotatorError):
    """A vocabulary file or edit is invalid."""


class CocoFormatError(AnnotatorError):
    """A COCO document is malformed; nothing was imported."""


class ProjectError(AnnotatorError):
    """The project store cannot be opened or written."""


class PromptError(AnnotatorError):
    """Prompts that cannot produce a mask (no points and no box, a degenerate box...)."""
