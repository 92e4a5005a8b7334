"""Vocabulary: entries with a unique display name and synonyms, in a plain text format.

CONTRACT (filled in by the vocabulary work package; keep the public names and signatures).
File format: one entry per line, `display name, synonym, synonym...`, `#` starts a comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    name: str
    synonyms: tuple[str, ...] = ()

    @property
    def texts(self) -> tuple[str, ...]:
        """The name followed by its synonyms: everything the text index encodes."""
        return (self.name, *self.synonyms)


class Vocabulary:
    @classmethod
    def load(cls, path: Path) -> Vocabulary: ...
    @classmethod
    def loads(cls, text: str) -> Vocabulary: ...
    @classmethod
    def default(cls) -> Vocabulary:
        """Union of the shipped imagenet21k, lvis and coco files, de-duplicated (~22k entries)."""
        ...
    @classmethod
    def shipped(cls, name: str) -> Vocabulary: ...  # "coco" | "lvis" | "imagenet21k" | "default"
    def save(self, path: Path) -> None: ...  # atomic
    def dumps(self) -> str: ...
    def __len__(self) -> int: ...
    def __iter__(self): ...
    def __contains__(self, name: str) -> bool: ...
    def get(self, name: str) -> Entry | None: ...
    def names(self) -> list[str]: ...
    def add(self, name: str, synonyms: tuple[str, ...] = ()) -> Entry: ...
    def remove(self, name: str) -> None: ...
    def rename(self, old: str, new: str) -> None: ...
    def set_synonyms(self, name: str, synonyms: tuple[str, ...]) -> None: ...
    def match(self, name: str) -> Entry | None:
        """The entry whose name or synonym equals `name` (case-insensitive)."""
        ...
