"""Vocabulary: the shipped files, the text format (round trip, bad files), edits, the union."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotator.errors import VocabularyError
from annotator.resources_path import vocabulary_file
from annotator.vocab import vocabulary as vocabulary_module
from annotator.vocab.vocabulary import MAX_NAME_LENGTH, Entry, Vocabulary
from tests.timing import record

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "build_vocabularies", ROOT / "scripts" / "build_vocabularies.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _unique(vocabulary: Vocabulary) -> bool:
    return len({n.casefold() for n in vocabulary.names()}) == len(vocabulary)


# ---- shipped files -------------------------------------------------------------------------------


def test_imagenet21k_has_every_synset_with_unique_names():
    imagenet = Vocabulary.shipped("imagenet21k")
    assert len(imagenet) == 21841
    assert _unique(imagenet)
    # colliding first lemmas are qualified from the gloss, the bare name is gone
    assert {"crane (bird)", "mouse (rodent)", "mouse (device)"} <= set(imagenet.names())
    assert "crane" not in imagenet
    # the other lemmas are kept as synonyms
    assert imagenet.get("organism").synonyms == ("being",)
    assert "Canis familiaris" in imagenet.get("dog").synonyms


def test_lvis_and_coco_files():
    lvis = Vocabulary.shipped("lvis")
    assert len(lvis) == 1203 and _unique(lvis)
    assert lvis.names()[0] == "aerosol can" and lvis.names()[-1] == "zucchini"
    assert lvis.get("aerosol can").synonyms == ("spray can",)
    assert lvis.get("bat (animal)") is not None  # underscores became spaces
    # the one glued LVIS synonym was split in two
    assert lvis.get("monitor (computer equipment)").synonyms == ("computer monitor",)
    coco = Vocabulary.shipped("coco")
    assert len(coco) == 80 and _unique(coco)
    assert coco.names()[:3] == ["person", "bicycle", "car"] and coco.names()[-1] == "toothbrush"
    assert set(coco.get("couch").synonyms) >= {"sofa"}
    assert set(coco.get("tv").synonyms) >= {"television"}


def test_default_is_the_deduplicated_union():
    default = Vocabulary.default()
    assert 21841 < len(default) < 21841 + 1203 + 80
    assert _unique(default)
    coco, lvis = Vocabulary.shipped("coco"), Vocabulary.shipped("lvis")
    assert default.names()[:80] == coco.names()  # COCO names are kept as display names
    for entry in lvis:  # every LVIS category is reachable, merged or not
        assert default.match(entry.name) is not None
    # merged: LVIS and ImageNet synonyms now belong to the COCO entries
    assert {"sofa", "lounge"} <= set(default.get("couch").synonyms)
    assert {"television receiver", "tv set"} <= set(default.get("tv").synonyms)
    assert default.match("computer mouse").name == "mouse"
    # a lone shared synonym does not merge unrelated senses ("knight, horse" the chess piece)
    assert "knight (chessman)" in default and "knight (chessman)" not in default.get("horse").texts


def test_default_loads_well_under_a_second():
    def cold() -> float:
        vocabulary_module._shipped_entries.cache_clear()
        vocabulary_module._default_entries.cache_clear()
        t0 = time.perf_counter()
        Vocabulary.default()
        return time.perf_counter() - t0

    first = min(cold(), cold())
    t0 = time.perf_counter()
    warm = Vocabulary.default()  # cached entries: only the dicts are rebuilt
    record("default vocabulary load", cold_s=first, warm_s=time.perf_counter() - t0, bound_was=1.0)
    assert len(warm) > 20_000


def test_generator_reproduces_imagenet21k_byte_for_byte():
    script = _script()
    text = script.imagenet21k_text(script.timm_info_dir())
    assert text.encode("utf-8") == vocabulary_file("imagenet21k").read_bytes()
    assert script.coco_text().encode("utf-8") == vocabulary_file("coco").read_bytes()


def test_generator_converts_lvis_sources(tmp_path):
    categories = [
        {"id": i, "name": f"thing_{i}", "synonyms": [f"thing_{i}"]} for i in range(1, 1204)
    ]
    categories[0] = {"id": 1, "name": "bull", "synonyms": ["horned_cow"]}
    categories[1] = {"id": 2, "name": "a_(b) c", "synonyms": ["a_(b) c", "d_e"]}
    source = tmp_path / "lvis.json"
    source.write_text(json.dumps({"categories": categories[::-1]}))  # any order: sorted by id
    entries = _script().lvis_entries(source)
    assert len(entries) == 1203
    assert entries[0] == Entry("bull", ("horned cow",))
    assert entries[1] == Entry("a (b)", ("c", "d e"))
    assert entries[2] == Entry("thing 3")
    py = tmp_path / "lvis_v1_categories.py"
    py.write_text(f"# fmt: off\nLVIS_CATEGORIES = {categories!r}  # noqa\n")
    assert _script().lvis_entries(py) == entries


# ---- format ---------------------------------------------------------------------------------------


def test_parse_comments_blanks_whitespace_and_synonyms():
    v = Vocabulary.loads("# header\n\n  dog ,puppy, Dog ,  pup  \n\t# indented comment\ncat,,\n")
    assert list(v) == [Entry("dog", ("puppy", "pup")), Entry("cat")]


def test_escapes():
    v = Vocabulary.loads("\\#1 hit, a\\,b, back\\\\slash\n")
    assert list(v) == [Entry("#1 hit", ("a,b", "back\\slash"))]
    assert v.dumps() == "\\#1 hit, a\\,b, back\\\\slash\n"


_item = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(bool)
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_item, st.lists(_item, max_size=3)), max_size=8))
def test_dumps_loads_round_trip(pairs):
    v = Vocabulary()
    for name, synonyms in pairs:
        if name not in v:
            v.add(name, tuple(synonyms))
    again = Vocabulary.loads(v.dumps())
    assert again == v
    assert again.dumps() == v.dumps()


def test_save_is_atomic_and_round_trips(tmp_path):
    v = Vocabulary.loads("dog, puppy\ncat\n")
    path = tmp_path / "sub" / "v.txt"
    v.save(path, header=["my words"])
    assert path.read_text(encoding="utf-8") == "# my words\ndog, puppy\ncat\n"
    assert Vocabulary.load(path) == v
    assert sorted(p.name for p in path.parent.iterdir()) == ["v.txt"]  # no temporary left


def test_empty_text_is_an_empty_vocabulary_but_an_empty_file_is_an_error(tmp_path):
    assert len(Vocabulary.loads("")) == 0
    for content in ("", "# only\n# comments\n\n"):
        path = tmp_path / "empty.txt"
        path.write_text(content)
        with pytest.raises(VocabularyError, match=r"empty\.txt: no entries"):
            Vocabulary.load(path)


def test_duplicate_names_name_both_lines(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("dog\ncat\n# c\nDog, hound\n")
    with pytest.raises(
        VocabularyError, match=r"dup\.txt:4: duplicate name 'Dog' \(first on line 1\)"
    ):
        Vocabulary.load(path)


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("dog\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(VocabularyError, match=r"latin1\.txt:2: not UTF-8"):
        Vocabulary.load(path)
    path.write_bytes("\ufeffcaf\u00e9\n".encode())  # a BOM is fine
    assert Vocabulary.load(path).names() == ["caf\u00e9"]


def test_long_names_and_missing_files(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("ok\n" + "x" * (MAX_NAME_LENGTH + 1) + "\n")
    with pytest.raises(VocabularyError, match=r"long\.txt:2: name longer than 200"):
        Vocabulary.load(path)
    path.write_text("ok, " + "y" * (MAX_NAME_LENGTH + 1) + "\n")
    with pytest.raises(VocabularyError, match=r"long\.txt:1:"):
        Vocabulary.load(path)
    assert len(Vocabulary.loads("x" * MAX_NAME_LENGTH)) == 1
    with pytest.raises(VocabularyError, match=r"missing\.txt: cannot read"):
        Vocabulary.load(tmp_path / "missing.txt")
    with pytest.raises(VocabularyError, match="unknown vocabulary 'nope'"):
        Vocabulary.shipped("nope")


# ---- edits and lookups ----------------------------------------------------------------------------


def test_edits():
    v = Vocabulary.loads("dog, puppy\ncat\nbird\n")
    assert v.add("fish, the", ("trout",)) == Entry("fish, the", ("trout",))
    with pytest.raises(VocabularyError, match="already an entry"):
        v.add("DOG")
    v.rename("cat", "Cat (pet)")
    assert v.names() == ["dog", "Cat (pet)", "bird", "fish, the"]  # position kept
    with pytest.raises(VocabularyError, match="is already an entry"):
        v.rename("bird", "dog")
    v.rename("bird", "Bird")  # a change of case is a rename
    v.set_synonyms("dog", ("hound", "dog", "hound"))
    assert v.get("DOG") == Entry("dog", ("hound",))
    v.remove("Bird")
    with pytest.raises(VocabularyError, match="no entry named 'bird'"):
        v.remove("bird")
    with pytest.raises(VocabularyError, match="empty name"):
        v.add("   ")
    assert "fish, the" in v and "bird" not in v
    assert Vocabulary.loads(v.dumps()) == v


def test_match_prefers_names_then_file_order():
    v = Vocabulary.loads("car, auto\nautomobile, car\nAuto\n")  # 'Auto' is a name: it wins
    assert v.match("CAR").name == "car"
    assert v.match("auto").name == "Auto"
    assert v.match("automobile").name == "automobile"
    assert v.match("nothing") is None
    v.remove("Auto")
    assert v.match("auto").name == "car"  # the match table follows edits


def test_union_merges_best_match_once():
    a = Vocabulary.loads("tv, television\ncouch, sofa\n")
    b = Vocabulary.loads(
        "television (broadcasting), telecasting, television\n"
        "television receiver, television, tv, tv set\n"
        "sofa, lounge\nknight, horse\ncrane (bird)\ncrane (machine)\ncrane\n"
    )
    u = Vocabulary.union(a, b)
    assert u.get("tv").synonyms == ("television", "television receiver", "tv set")
    assert u.get("couch").synonyms == ("sofa", "lounge")
    assert "television (broadcasting)" in u and "knight" in u
    assert u.names()[-3:] == ["crane (bird)", "crane (machine)", "crane"]
    c = Vocabulary.union(Vocabulary.loads("crane\n"), Vocabulary.loads("crane (bird)\n"))
    assert list(c) == [Entry("crane", ("crane (bird)",))]  # one qualified namesake: merged
    d = Vocabulary.union(Vocabulary.loads("crane\n"), Vocabulary.loads("crane (a)\ncrane (b)\n"))
    assert d.names() == ["crane", "crane (a)", "crane (b)"]  # two: no evidence for either


# ---------------------------------------------------------------- issue 11: in-place file edits
_HAND_WRITTEN = (
    "\ufeff# my animals\r\n"
    "\r\n"
    "# --- pets ---\r\n"
    "cat,kitty   ,  moggy\r\n"
    "dog, hound\r\n"
    "\r\n"
    "# --- birds (keep sorted) ---\r\n"
    "\\#hashtag bird, a\\, b\r\n"
    "crow"
)


def test_save_edits_the_file_in_place_keeping_comments_blanks_and_order(tmp_path):
    path = tmp_path / "animals.txt"
    path.write_bytes(_HAND_WRITTEN.encode("utf-8"))
    path.chmod(0o640)
    vocabulary = Vocabulary.load(path)
    vocabulary.add("hamster")
    vocabulary.save(path)
    assert path.read_bytes().decode("utf-8") == _HAND_WRITTEN + "\r\nhamster\r\n"
    assert path.stat().st_mode & 0o777 == 0o640

    vocabulary = Vocabulary.load(path)
    vocabulary.remove("dog")
    vocabulary.set_synonyms("crow", ["raven"])
    vocabulary.rename("cat", "house cat")
    vocabulary.save(path)
    assert path.read_bytes().decode("utf-8") == (
        "\ufeff# my animals\r\n"
        "\r\n"
        "# --- pets ---\r\n"
        "house cat, kitty, moggy\r\n"  # renamed in its place
        "\r\n"
        "# --- birds (keep sorted) ---\r\n"
        "\\#hashtag bird, a\\, b\r\n"  # unchanged: verbatim
        "crow, raven\r\n"
        "hamster\r\n"
    )
    assert Vocabulary.load(path).names() == ["house cat", "#hashtag bird", "crow", "hamster"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["animals.txt"]  # no temp file left


def test_new_entries_go_after_their_predecessor_and_first_ones_before_the_first_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("# header\nb\n# middle\nd\n# footer\n")
    vocabulary = Vocabulary.loads("a\nb\nc\nd\ne\n")
    vocabulary.save(path)
    assert path.read_text() == "# header\na\nb\nc\n# middle\nd\ne\n# footer\n"
    only_comments = tmp_path / "c.txt"
    only_comments.write_text("# just a comment, no newline")
    Vocabulary.loads("x").save(only_comments)
    assert only_comments.read_text() == "# just a comment, no newline\nx\n"


def test_save_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("# mine\na\n")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    vocabulary = Vocabulary.load(link)
    vocabulary.add("b")
    vocabulary.save(link)
    assert link.is_symlink() and real.read_text() == "# mine\na\nb\n"


def test_named_pipe_nul_byte_and_huge_files_are_one_line_errors(tmp_path, monkeypatch):
    import os

    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # nobody writes: read_bytes() would block forever
    with pytest.raises(VocabularyError, match="a named pipe, not a regular file"):
        Vocabulary.load(fifo)
    with pytest.raises(VocabularyError, match=r"a\\x00b.txt: the file name contains a NUL byte"):
        Vocabulary.load(Path("a\0b.txt"))
    big = tmp_path / "big.txt"
    big.write_text("a\n")
    monkeypatch.setattr(vocabulary_module, "MAX_FILE_BYTES", 1)
    with pytest.raises(VocabularyError, match="a vocabulary file may have"):
        Vocabulary.load(big)
