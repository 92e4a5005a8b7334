"""What a category (class, label) name may be: one rule for every way a name comes in.

Every importer (COCO, YOLO, VOC, CVAT, labelme, PNG masks), `autolabel --classes`, the `vocab`
commands and vocabulary files, the window (through `app/`) and the store itself call `category_name`,
so a name one of them accepts is accepted by all, and any name in a project can be exported and
imported back (a format that cannot hold a valid name warns on export, docs/adr/0007).

A valid name is trimmed (leading and trailing whitespace is not part of it), not empty, at most
`MAX_NAME_LENGTH` characters, and on one line: no C0/C1 control characters, DEL, or the Unicode line
and paragraph separators (every text format we write keeps one name per line, and Python's
`splitlines` breaks at those); and text every format can hold: no lone surrogate (not UTF-8, which
SQLite, JSON and YAML files need) and no U+FFFE / U+FFFF (XML 1.0, CVAT and VOC, cannot hold them).
Anything else is allowed: spaces, punctuation, quotes, `<&>`, `:`,
`#`, leading digits, any script.
"""

from __future__ import annotations

import re

from annotator.errors import AnnotatorError

__all__ = ["MAX_NAME_LENGTH", "InvalidName", "category_name", "name_problem"]

MAX_NAME_LENGTH = 200
_NOT_ON_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


class InvalidName(AnnotatorError, ValueError):
    """A category name breaks the rule above (a ValueError too, for callers that expect one)."""


def name_problem(text: object) -> str | None:
    """None for a valid name (after trimming), else what is wrong with it, in a few words."""
    if not isinstance(text, str):
        return f"a name must be text, got {type(text).__name__}"
    name = text.strip()
    if not name:
        return "empty name"
    if len(name) > MAX_NAME_LENGTH:
        return f"name longer than {MAX_NAME_LENGTH} characters ({len(name)}): {name[:40]!r}..."
    bad = _NOT_ON_ONE_LINE.search(name)
    if bad:
        code = ord(bad.group())
        what = "control character" if code < 0xD800 else "character no text file can hold"
        return f"{what} in name {name[:60]!r} (U+{code:04X})"
    return None


def category_name(
    text: object, where: str = "category name", error: type[AnnotatorError] = InvalidName
) -> str:
    """The trimmed name, or `error` with one line naming `where` and what is wrong."""
    problem = name_problem(text)
    if problem is not None:
        raise error(f"{where}: {problem}")
    assert isinstance(text, str)
    return text.strip()
