"""Where the shipped data files (vocabularies, icons) are, in a checkout and when installed."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent / "resources"


def resources_dir() -> Path:
    """The `resources/` folder: the repository's own in a source checkout, else the installed copy."""
    if _CHECKOUT.is_dir() and (_CHECKOUT.parent / "pyproject.toml").is_file():
        return _CHECKOUT
    frozen = getattr(sys, "_MEIPASS", None)  # a PyInstaller build (packaging/annotator.spec)
    if frozen is not None:
        return Path(frozen) / "annotator" / "resources"
    return Path(str(resources.files("annotator.resources")))


def vocabulary_file(name: str) -> Path:
    """A shipped vocabulary such as ``"coco"`` or ``"imagenet21k"``."""
    return resources_dir() / "vocabularies" / f"{name}.txt"
