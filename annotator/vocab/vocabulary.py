"""Vocabulary: entries with a unique display name and synonyms, in a plain text format.

File format (documented for users in `resources/vocabularies/README.md`):

- UTF-8 text, one entry per line: `display name, synonym, synonym...`;
- a line whose first non-blank character is `#` is a comment; blank lines are ignored;
- items are separated by commas and trimmed; a literal comma is written `\\,`, a literal backslash
  `\\\\`, and a name that starts with `#` is written `\\#...`;
- display names are unique regardless of case (a duplicate is an error naming both lines), so that
  `match()` and COCO category names are never ambiguous;
- synonyms equal to the entry's name or repeated (regardless of case) are dropped;
- no item may be longer than `MAX_NAME_LENGTH` characters.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from annotator.atomic import atomic_write_bytes
from annotator.errors import VocabularyError
from annotator.names import MAX_NAME_LENGTH as MAX_NAME_LENGTH  # re-exported
from annotator.names import category_name

MAX_FILE_BYTES = 256 * 2**20
"""Largest vocabulary file read (the shipped 22k-name union is under 1 MB; 200k lines load in ~2 s)."""
SHIPPED = ("coco", "lvis", "imagenet21k")  # in the order `default()` merges them
_NAMES = (*SHIPPED, "default")


@dataclass(frozen=True)
class Entry:
    name: str
    synonyms: tuple[str, ...] = ()

    @property
    def texts(self) -> tuple[str, ...]:
        """The name followed by its synonyms: everything the text index encodes."""
        return (self.name, *self.synonyms)


def escape(item: str) -> str:
    """One name or synonym as written in a vocabulary file."""
    text = item.replace("\\", "\\\\").replace(",", "\\,")
    return "\\" + text if text.startswith("#") else text


def split_line(line: str) -> list[str]:
    """The trimmed items of one entry line, escapes resolved (`\\,` `\\\\` `\\#`)."""
    if "\\" not in line:
        return [item.strip() for item in line.split(",")]
    items: list[str] = []
    current: list[str] = []
    chars = iter(line)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            # only the three escapes exist; any other backslash is kept as written
            current.append(nxt if nxt in ",\\#" else "\\" + nxt)
        elif char == ",":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return items


def _check_item(item: str, where: str) -> str:
    """A trimmed, non-empty, single-line item of at most MAX_NAME_LENGTH characters."""
    return category_name(item, where, VocabularyError)


def _clean_synonyms(name: str, synonyms: Iterable[str], where: str) -> tuple[str, ...]:
    """Checked synonyms without empties, the name itself, or repeats (case-insensitive)."""
    seen = {name.casefold()}
    out: list[str] = []
    for synonym in synonyms:
        if not synonym.strip():
            continue  # "a, , b" or a trailing comma: nothing to keep
        synonym = _check_item(synonym, where)
        key = synonym.casefold()
        if key not in seen:
            seen.add(key)
            out.append(synonym)
    return tuple(out)


class Vocabulary:
    """An ordered, editable set of entries; names are unique regardless of case."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._entries: dict[str, Entry] = {}
        self._keys: dict[str, str] = {}  # casefolded name -> name
        self._match: dict[str, str] | None = None  # casefolded text -> name, built lazily
        for entry in entries:
            self.add(entry.name, entry.synonyms)

    # ---- reading and writing -------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a vocabulary file; a file without entries is an error (it is surely a mistake)."""
        from annotator.io.files import open_regular, show_path

        path = Path(path)
        try:
            with open_regular(path) as handle:  # a named pipe would block read_bytes forever
                size = os.fstat(handle.fileno()).st_size
                if size > MAX_FILE_BYTES:
                    raise VocabularyError(
                        f"{show_path(path)}: {size / 2**20:.0f} MB is more than the "
                        f"{MAX_FILE_BYTES / 2**20:.0f} MB a vocabulary file may have"
                    )
                data = handle.read()
        except OSError as error:
            raise VocabularyError(
                f"{show_path(path)}: cannot read ({error.strerror or error})"
            ) from None
        except ValueError:  # "embedded null byte"
            raise VocabularyError(f"{show_path(path)}: the file name contains a NUL byte") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise VocabularyError(
                f"{path}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x}); "
                "save the file as UTF-8"
            ) from None
        vocabulary = cls.loads(text, source=str(path))
        if not len(vocabulary):
            raise VocabularyError(f"{path}: no entries (only blank lines and comments)")
        return vocabulary

    @classmethod
    def loads(cls, text: str, source: str = "<text>") -> Vocabulary:
        """Parse the file format; `source` names the text in error messages."""
        vocabulary = cls()
        entries = vocabulary._entries
        keys = vocabulary._keys
        first_line: dict[str, int] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{source}:{number}"
            items = split_line(line)
            name = _check_item(items[0], where)
            key = name.casefold()
            if key in keys:
                raise VocabularyError(
                    f"{where}: duplicate name {name!r} (first on line {first_line[key]}); "
                    "merge the two lines or rename one"
                )
            first_line[key] = number
            keys[key] = name
            entries[name] = Entry(name, _clean_synonyms(name, items[1:], where))
        return vocabulary

    def dumps(self, header: Sequence[str] = ()) -> str:
        """The file format; `header` lines are written first as `# ` comments."""
        lines = [f"# {line}".rstrip() for line in header]
        lines.extend(self._entry_line(entry) for entry in self)
        return "".join(line + "\n" for line in lines)

    def save(self, path: Path, header: Sequence[str] = ()) -> None:
        """Write the vocabulary to `path`, editing an existing file in place (`vocab/edit.py`: its
        comments, blank lines, order and unchanged lines are kept; `header` is only for a new or
        empty file).

        Atomic (`annotator/atomic.py`): a crash never leaves half a vocabulary;
        the file keeps its mode, and a symlink keeps pointing at the file it named.
        """
        from annotator.io.files import open_regular, show_path
        from annotator.vocab.edit import edit_text

        path = Path(path)
        try:
            with open_regular(path) as handle:
                old: str | None = handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            old = None  # new (or unreadable: replaced whole, as before)
        if old:
            text = edit_text(old, list(self), self._parse_line, self._entry_line)
        else:
            text = self.dumps(header)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, text.encode("utf-8"))
        except OSError as error:
            raise VocabularyError(
                f"{show_path(path)}: cannot write ({error.strerror or error})"
            ) from None

    @staticmethod
    def _parse_line(line: str) -> Entry:
        items = split_line(line)
        name = _check_item(items[0], "vocabulary")
        return Entry(name, _clean_synonyms(name, items[1:], "vocabulary"))

    @staticmethod
    def _entry_line(entry: Entry) -> str:
        return ", ".join(escape(text) for text in entry.texts)

    # ---- shipped vocabularies ------------------------------------------------------------------
    @classmethod
    def default(cls) -> Vocabulary:
        """Union of the shipped coco, lvis and imagenet21k files, de-duplicated (~22k entries)."""
        return cls._trusted(_default_entries())

    @classmethod
    def shipped(cls, name: str) -> Vocabulary:
        """A vocabulary shipped with the application: "coco" | "lvis" | "imagenet21k" | "default"."""
        if name == "default":
            return cls.default()
        if name not in SHIPPED:
            raise VocabularyError(
                f"unknown vocabulary {name!r}: expected a file or one of {', '.join(_NAMES)}"
            )
        return cls._trusted(_shipped_entries(name))

    @classmethod
    def union(cls, *vocabularies: Vocabulary) -> Vocabulary:
        """Merge vocabularies; earlier ones keep their display names.

        An entry of a later vocabulary whose name or a synonym equals (case-insensitively) the
        display name or a synonym of an entry already in the result is merged into that entry (its
        name and synonyms become synonyms). Each result entry absorbs at most one entry from each
        later vocabulary and each entry merges at most once; the pairs are taken best match first
        (same display name; same name but for a qualifier, as "table" and "table (furniture)"; a
        name equal to the other's synonym; shared synonyms; ties by the number of shared texts, then
        file order), so that "television (broadcasting)" does not fold into "tv" when "television
        receiver" is there too. Unmatched entries are appended.
        """
        result: list[Entry] = []
        for vocabulary in vocabularies:
            result = _merge(result, list(vocabulary))
        return cls(result)

    # ---- queries -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries.values()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._keys

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return list(self._entries.values()) == list(other._entries.values())

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} entries)"

    def get(self, name: str) -> Entry | None:
        """The entry with this display name (case-insensitive), or None."""
        actual = self._keys.get(name.casefold())
        return None if actual is None else self._entries[actual]

    def names(self) -> list[str]:
        """Display names in file order (the row order of a `TextIndex`)."""
        return list(self._entries)

    def match(self, name: str) -> Entry | None:
        """The entry whose name or synonym equals `name` (case-insensitive).

        A display name wins over a synonym; among synonyms, the first entry in file order wins.
        """
        if self._match is None:
            table: dict[str, str] = {}
            for entry in self._entries.values():
                for synonym in entry.synonyms:
                    table.setdefault(synonym.casefold(), entry.name)
            table.update(self._keys)
            self._match = table
        actual = self._match.get(name.strip().casefold())
        return None if actual is None else self._entries[actual]

    # ---- edits ---------------------------------------------------------------------------------
    def add(self, name: str, synonyms: Sequence[str] = ()) -> Entry:
        """Append an entry; the name must be new (regardless of case)."""
        if isinstance(synonyms, str):
            synonyms = (synonyms,)
        name = _check_item(name, "vocabulary")
        existing = self._keys.get(name.casefold())
        if existing is not None:
            raise VocabularyError(f"vocabulary: {name!r} is already an entry ({existing!r})")
        entry = Entry(name, _clean_synonyms(name, synonyms, f"vocabulary entry {name!r}"))
        self._entries[name] = entry
        self._keys[name.casefold()] = name
        self._match = None
        return entry

    def remove(self, name: str) -> None:
        """Remove the entry with this display name (case-insensitive)."""
        actual = self._require(name)
        del self._entries[actual]
        del self._keys[actual.casefold()]
        self._match = None

    def rename(self, old: str, new: str) -> None:
        """Change a display name in place (the entry keeps its position and synonyms)."""
        actual = self._require(old)
        new = _check_item(new, "vocabulary")
        clash = self._keys.get(new.casefold())
        if clash is not None and clash != actual:
            raise VocabularyError(f"vocabulary: cannot rename {old!r}: {new!r} is already an entry")
        entry = self._entries[actual]
        renamed = Entry(new, _clean_synonyms(new, entry.synonyms, f"vocabulary entry {new!r}"))
        # rebuild to keep the entry's position
        self._entries = {
            (new if key == actual else key): (renamed if key == actual else value)
            for key, value in self._entries.items()
        }
        del self._keys[actual.casefold()]
        self._keys[new.casefold()] = new
        self._match = None

    def set_synonyms(self, name: str, synonyms: Sequence[str]) -> None:
        """Replace an entry's synonyms."""
        if isinstance(synonyms, str):
            synonyms = (synonyms,)
        actual = self._require(name)
        self._entries[actual] = Entry(
            actual, _clean_synonyms(actual, synonyms, f"vocabulary entry {actual!r}")
        )
        self._match = None

    def copy(self) -> Vocabulary:
        """An independent copy (entries are immutable, so this is cheap)."""
        clone = Vocabulary()
        clone._entries = dict(self._entries)
        clone._keys = dict(self._keys)
        return clone

    def _require(self, name: str) -> str:
        actual = self._keys.get(name.casefold())
        if actual is None:
            raise VocabularyError(f"vocabulary: no entry named {name!r}")
        return actual

    @classmethod
    def _trusted(cls, entries: Iterable[Entry]) -> Vocabulary:
        """Build from entries already checked (shipped files): skips re-validation for speed."""
        vocabulary = cls()
        for entry in entries:
            vocabulary._entries[entry.name] = entry
            vocabulary._keys[entry.name.casefold()] = entry.name
        return vocabulary


_QUALIFIED = re.compile(r"^(.*\S)\s+\(([^()]*)\)$")


def _split_qualifier(name: str) -> tuple[str, str]:
    """("crane", "bird") for "crane (bird)"; (name, "") without a qualifier; casefolded."""
    found = _QUALIFIED.match(name.casefold())
    if found is None:
        return name.casefold(), ""
    return found.group(1), found.group(2)


def _match_kind(target: Entry, entry: Entry, texts: set[str]) -> int:
    """How well two entries correspond: 4 same name; 3 same name but one has a qualifier
    ("table" / "table (furniture)"); 2 the new entry's name is a synonym of the target; 1 they
    share texts (accepted from two shared texts up: "horse" alone must not pull in "knight, horse")."""
    a, b = target.name.casefold(), entry.name.casefold()
    if a == b:
        return 4
    (base_a, qual_a), (base_b, qual_b) = _split_qualifier(a), _split_qualifier(b)
    if base_a == base_b and not (qual_a and qual_b):
        return 3
    if b in {s.casefold() for s in target.synonyms}:
        return 2
    return 1


def _merge(base: list[Entry], extra: list[Entry]) -> list[Entry]:
    """`Vocabulary.union` of two entry lists (see there)."""
    by_text: dict[str, list[int]] = {}
    by_bare: dict[str, list[int]] = {}
    for i, entry in enumerate(base):
        for text in entry.texts:
            by_text.setdefault(text.casefold(), []).append(i)
        by_bare.setdefault(_split_qualifier(entry.name)[0], []).append(i)
    candidates: list[tuple[int, int, int, int]] = []  # (-kind, -shared, extra index, base index)
    for j, entry in enumerate(extra):
        texts = {t.casefold() for t in entry.texts}
        hits: dict[int, int] = {}
        for text in texts:
            for i in by_text.get(text, ()):
                hits[i] = hits.get(i, 0) + 1
        for i in by_bare.get(_split_qualifier(entry.name)[0], ()):
            hits.setdefault(i, 0)
        for i, shared in hits.items():
            kind = _match_kind(base[i], entry, texts)
            if kind >= 3 or (kind == 2 and shared) or shared >= 2:
                candidates.append((-kind, -shared, j, i))
    # a bare name that several qualified entries share ("orange (fruit)", "orange (pigment)") and
    # nothing else is evidence for none of them
    guesses: dict[int, int] = {}
    for kind, shared, _, i in candidates:
        if kind == -3 and not shared:
            guesses[i] = guesses.get(i, 0) + 1
    candidates = [c for c in candidates if not (c[0] == -3 and not c[1] and guesses[c[3]] > 1)]
    candidates.sort()
    merged = list(base)
    used_base: set[int] = set()
    used_extra: set[int] = set()
    for _, _, j, i in candidates:
        if i in used_base or j in used_extra:
            continue
        used_base.add(i)
        used_extra.add(j)
        target = merged[i]
        merged[i] = Entry(
            target.name, _clean_synonyms(target.name, (*target.synonyms, *extra[j].texts), "")
        )
    names = {entry.name.casefold(): i for i, entry in enumerate(merged)}
    for j, entry in enumerate(extra):
        if j in used_extra:
            continue
        clash = names.get(entry.name.casefold())
        if clash is not None:  # its namesake already absorbed another entry: merge all the same
            target = merged[clash]
            merged[clash] = Entry(
                target.name, _clean_synonyms(target.name, (*target.synonyms, *entry.texts), "")
            )
            continue
        names[entry.name.casefold()] = len(merged)
        merged.append(entry)
    return merged


@functools.cache
def _shipped_entries(name: str) -> tuple[Entry, ...]:
    """Parsed once per process: entries are immutable, so every caller can share them."""
    from annotator.resources_path import vocabulary_file

    return tuple(Vocabulary.load(vocabulary_file(name)))


@functools.lru_cache(maxsize=1)
def _default_entries() -> tuple[Entry, ...]:
    parts = [Vocabulary._trusted(_shipped_entries(name)) for name in SHIPPED]
    return tuple(Vocabulary.union(*parts))


def load_vocabulary(vocabulary: Vocabulary | str | Path | None) -> Vocabulary:
    """A vocabulary from what the user named: None = the default, a shipped name, or a file.

    A file of the same name as a shipped list wins (the user's own `coco` file is theirs).
    """
    if vocabulary is None:
        return Vocabulary.default()
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    if isinstance(vocabulary, str) and vocabulary in _NAMES and not Path(vocabulary).exists():
        return Vocabulary.shipped(vocabulary)
    return Vocabulary.load(Path(vocabulary))
