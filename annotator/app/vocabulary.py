"""The window's vocabulary: which file the settings name, a snapshot for the model thread, and
the entry type the editor and the undo commands edit. The window reaches `vocab/` only here."""

from __future__ import annotations

from pathlib import Path

from annotator.vocab.vocabulary import Entry, Vocabulary

SHIPPED = ("default", "coco", "lvis", "imagenet21k")  # the names the settings may give


def is_shipped(spec: str) -> bool:
    """Whether the settings' vocabulary is one shipped with the program (not a file of the user)."""
    return not spec or (spec in SHIPPED and not Path(spec).exists())


def load_vocabulary(spec: str) -> Vocabulary:
    """The vocabulary named in the settings: a shipped name, a file, or the default when empty."""
    if is_shipped(spec):
        return Vocabulary.shipped(spec or "default")
    return Vocabulary.load(Path(spec))


def apply_entry_change(vocabulary: Vocabulary, old: Entry | None, new: Entry | None) -> None:
    """Turn entry `old` into `new` (None on one side = add or remove)."""
    if old is not None and new is None:
        vocabulary.remove(old.name)
    elif old is None and new is not None:
        vocabulary.add(new.name, tuple(new.synonyms))
    elif old is not None and new is not None:
        if old.name != new.name:
            vocabulary.rename(old.name, new.name)
        if tuple(old.synonyms) != tuple(new.synonyms):
            vocabulary.set_synonyms(new.name, tuple(new.synonyms))


def snapshot(vocabulary: Vocabulary) -> Vocabulary:
    """A copy for the model thread (the window goes on editing its own)."""
    return Vocabulary.loads(vocabulary.dumps())


__all__ = [
    "SHIPPED",
    "Entry",
    "Vocabulary",
    "apply_entry_change",
    "is_shipped",
    "load_vocabulary",
    "snapshot",
]
