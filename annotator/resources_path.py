"""Where the shipped data files (vocabularies, icons) are, in a checkout and when installed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent / "resources"


def resources_dir() -> Path:
    """The `resources/` folder: the repository's own in a source checkout, else the installed copy."""
    if _CHECKOUT.is_dir():
        return _CHECKOUT
    return Path(str(resources.files("annotator.resources")))


def vocabulary_file(name: str) -> Path:
    """A shipped vocabulary such as ``"coco"`` or ``"imagenet21k"``."""
    return resources_dir() / "vocabularies" / f"{name}.txt"
