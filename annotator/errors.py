"""User-facing errors: each carries a one-line message that the CLI prints and the GUI shows.

Anything that is the user's input being wrong (a file, a flag, a checkpoint) raises a subclass of
`AnnotatorError`; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AnnotatorError(Exception):
    """Base class: `str(error)` is a complete, one-line explanation for the user.

    Control characters (a newline or NUL in a file name, an escape sequence in a JSON string) are
    shown as \\xNN, so that no message can split its error line or drive the terminal."""

    def __str__(self) -> str:
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", super().__str__())


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


class CacheError(AnnotatorError):
    """The cache folder cannot be used at all (it is a file, say); unreadable entries are not errors."""


class DatasetFormatError(AnnotatorError):
    """A dataset file (YOLO, VOC, CVAT, labelme, PNG masks) is malformed; nothing was imported."""


class SequenceError(AnnotatorError):
    """A video or a folder of frames cannot be used as a sequence (no frames, corrupt, mixed sizes)."""
