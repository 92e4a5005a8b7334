"""Write a vocabulary back into its file the way a person would edit it: in place.

`Vocabulary.save` onto an existing file goes through `edit_text(old_text, entries)`, which keeps
everything the user wrote that is still true:

- comment lines, blank lines, the order of lines, a UTF-8 byte-order mark and the line endings
  (CRLF stays CRLF) are kept byte for byte;
- an entry line whose entry is unchanged is kept verbatim (its spacing, its escapes);
- a changed entry (new synonyms) is rewritten on its own line; a removed entry loses its line (the
  comments around it stay: they may be about the section, not the entry);
- a new entry goes right after the entry that precedes it in the vocabulary (so `add` appends after
  the last entry, and a renamed entry stays where the old name was); where the file's first entry
  line was when nothing precedes it, at the end of a file that has no entry yet;
- entries the vocabulary orders differently from the file: the longest run already in order stays,
  the others move (as if removed and added), so the file always loads to exactly the vocabulary;
- lines that do not parse (someone edited the file since it was loaded) are kept as written: they
  are not ours to delete, and the next load names them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from annotator.errors import VocabularyError


class EntryLike(Protocol):
    """What `edit_text` needs of an entry (`vocabulary.Entry`); equality compares name and synonyms."""

    @property
    def name(self) -> str: ...


def _newline(lines: Sequence[str]) -> str:
    for line in lines:
        if line.endswith("\r\n"):
            return "\r\n"
        if line.endswith(("\n", "\r")):
            return line[-1]
    return "\n"


def _body(line: str) -> tuple[str, str]:
    """(text, line ending) of one line of `str.splitlines(keepends=True)`."""
    parts = line.splitlines()  # the same line breaks as `Vocabulary.loads` (\x1c, \u2028...)
    body = parts[0] if parts else ""
    return body, line[len(body) :]


def _stay(lines: Sequence[str], parse: Callable[[str], EntryLike], order: list[str]) -> set[str]:
    """Names whose lines can stay where they are: the longest run of the file's entry lines that is
    already in the vocabulary's order (the others are moved, as if removed and added again)."""
    rank = {key: i for i, key in enumerate(order)}
    keys: list[str] = []
    seen: set[str] = set()
    for line in lines:
        stripped = _body(line)[0].strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            key = parse(stripped).name.casefold()
        except VocabularyError:
            continue
        if key in rank and key not in seen:
            seen.add(key)
            keys.append(key)
    # longest increasing subsequence of ranks (patience sorting), O(n log n)
    tails: list[int] = []  # index into keys of the smallest tail of each length
    parent: list[int | None] = [None] * len(keys)
    for i, key in enumerate(keys):
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if rank[keys[tails[mid]]] < rank[key]:
                lo = mid + 1
            else:
                hi = mid
        parent[i] = tails[lo - 1] if lo else None
        if lo == len(tails):
            tails.append(i)
        else:
            tails[lo] = i
    stay: set[str] = set()
    at = tails[-1] if tails else None
    while at is not None:
        stay.add(keys[at])
        at = parent[at]
    return stay


def edit_text(
    text: str,
    entries: Sequence[EntryLike],
    parse: Callable[[str], EntryLike],
    write: Callable[[EntryLike], str],
) -> str:
    """`text` (a vocabulary file's content) edited so that it holds exactly `entries`, in order.

    `parse` turns one stripped entry line into an entry (raising VocabularyError if it cannot);
    `write` gives an entry's line without its line ending. Both come from `vocabulary`, which owns
    the format; this module owns only where lines go.
    """
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    lines = text[len(bom) :].splitlines(keepends=True)
    newline = _newline(lines)
    wanted = {entry.name.casefold(): entry for entry in entries}
    in_place = _stay(lines, parse, [entry.name.casefold() for entry in entries])
    out: list[str] = []
    position: dict[str, int] = {}  # casefolded name -> index in `out`
    first_entry: int | None = None
    for line in lines:
        body, ending = _body(line)
        stripped = body.strip()
        if not stripped or stripped.startswith("#"):
            out.append(line)
            continue
        try:
            found = parse(stripped)
        except VocabularyError:
            out.append(line)  # not ours to judge or drop
            continue
        key = found.name.casefold()
        entry = wanted.get(key)
        if first_entry is None:
            first_entry = len(out)  # where the first entry line was, kept or not
        if entry is None or key in position or key not in in_place:
            continue  # removed, a second line of the same name, or moved (written below)
        position[key] = len(out)
        out.append(line if found == entry else write(entry) + ending)

    after: dict[int | None, list[str]] = {}
    anchor: int | None = None
    for entry in entries:
        key = entry.name.casefold()
        if key in position:
            anchor = position[key]
        else:
            after.setdefault(anchor, []).append(write(entry) + newline)
    at_end = bool(after.get(len(out) - 1)) or (first_entry is None and None in after)
    if out and not out[-1].endswith(("\n", "\r")) and at_end:
        out[-1] += newline  # the last line had no line break and something follows it now
    result: list[str] = []
    leading = after.pop(None, [])
    for index, line in enumerate(out):
        if index == first_entry:
            result.extend(leading)
            leading = []
        result.append(line)
        result.extend(after.get(index, ()))
    result.extend(leading)  # no entry line at all: new entries go at the end
    return bom + "".join(result)
