"""Generate the shipped vocabularies in `resources/vocabularies/`.

    python scripts/build_vocabularies.py                 # imagenet21k.txt and coco.txt
    python scripts/build_vocabularies.py --lvis-source lvis_v1_val.json   # lvis.txt as well
    python scripts/build_vocabularies.py --check         # compare with the shipped files, write nothing

imagenet21k.txt comes from the synset lists inside the installed `timm` wheel (`timm/data/_info/`):
`imagenet22k_synsets.txt` (the 21,841 synsets of the ImageNet-21k "fall11" release; the
`imagenet21k_goog_synsets.txt` list has two more), `imagenet_synset_to_lemma.txt` (", "-separated
lemmas) and `imagenet_synset_to_definition.txt` (WordNet glosses). The first lemma is the display
name, the others are synonyms. First lemmas that collide (case-insensitively: "crane" the bird and
"crane" the machine) get a qualifier in parentheses, tried in this order until the group is unique:

1. the head noun of the gloss's first noun phrase ("crane (bird)"), singularised;
2. a synonym that no other synset of the group has ("crane (lifting device)" if it had one);
3. the first two, then three words of the gloss's first phrase;
4. the WordNet id ("n01234567"), always unique.

lvis.txt comes from the LVIS v1 category list: either an LVIS annotation file (`lvis_v1_val.json`,
its "categories") or detectron2's `detectron2/data/datasets/lvis_v1_categories.py`. Underscores
become spaces; the name is the display name, the synonyms follow. LVIS has one synonym with a space in
it ("monitor_(computer_equipment) computer_monitor"): two synonyms glued together, split on the space.

coco.txt is the 80 COCO category names in COCO id order with a few obvious synonyms (below).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from annotator.vocab.vocabulary import Entry, Vocabulary

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "resources" / "vocabularies"

IMAGENET_FILES = (
    "imagenet22k_synsets.txt",
    "imagenet_synset_to_lemma.txt",
    "imagenet_synset_to_definition.txt",
)

# COCO 2017 categories in id order; synonyms where the name is ambiguous or has a common variant.
COCO: tuple[tuple[str, ...], ...] = (
    ("person", "human", "people"),
    ("bicycle", "bike"),
    ("car", "automobile"),
    ("motorcycle", "motorbike"),
    ("airplane", "aeroplane", "plane"),
    ("bus",),
    ("train",),
    ("truck", "lorry"),
    ("boat", "ship"),
    ("traffic light", "traffic signal"),
    ("fire hydrant", "hydrant"),
    ("stop sign",),
    ("parking meter",),
    ("bench",),
    ("bird",),
    ("cat",),
    ("dog",),
    ("horse",),
    ("sheep",),
    ("cow", "cattle"),
    ("elephant",),
    ("bear",),
    ("zebra",),
    ("giraffe",),
    ("backpack", "rucksack"),
    ("umbrella",),
    ("handbag", "purse"),
    ("tie", "necktie"),
    ("suitcase",),
    ("frisbee",),
    ("skis", "ski"),
    ("snowboard",),
    ("sports ball", "ball"),
    ("kite",),
    ("baseball bat",),
    ("baseball glove", "baseball mitt"),
    ("skateboard",),
    ("surfboard",),
    ("tennis racket", "tennis racquet"),
    ("bottle",),
    ("wine glass", "wineglass"),
    ("cup",),
    ("fork",),
    ("knife",),
    ("spoon",),
    ("bowl",),
    ("banana",),
    ("apple",),
    ("sandwich",),
    ("orange",),
    ("broccoli",),
    ("carrot",),
    ("hot dog", "hotdog"),
    ("pizza",),
    ("donut", "doughnut"),
    ("cake",),
    ("chair",),
    ("couch", "sofa"),
    ("potted plant", "houseplant"),
    ("bed",),
    ("dining table", "table"),
    ("toilet",),
    ("tv", "television", "television set", "tv monitor"),
    ("laptop", "laptop computer"),
    ("mouse", "computer mouse"),
    ("remote", "remote control"),
    ("keyboard", "computer keyboard"),
    ("cell phone", "mobile phone", "cellphone"),
    ("microwave", "microwave oven"),
    ("oven",),
    ("toaster",),
    ("sink",),
    ("refrigerator", "fridge"),
    ("book",),
    ("clock",),
    ("vase",),
    ("scissors",),
    ("teddy bear",),
    ("hair drier", "hair dryer"),
    ("toothbrush",),
)

# ---- ImageNet-21k --------------------------------------------------------------------------------

# Words after which the first noun phrase of a gloss has ended.
_PHRASE_END = frozenset(
    "of in on for with that which who whose whom from by to used having made consisting as at "
    "into onto over under when where while is are was being resembling like than between "
    "around about along across without within through after before during against among "
    "characterized related native found grown cultivated bearing containing covered designed "
    "worn held shaped out up off down back away behind together so such".split()
)
# Heads that name no kind of thing ("any of various birds", "young of domestic cattle"): skip on.
_VAGUE = frozenset(
    "a an the any one some several various numerous many most all each either other another kind "
    "type sort form variety member members genus species family group piece part small large "
    "young something someone thing anything anyone everything".split()
)
_ADVERBS = frozenset("esp especially usually often typically sometimes formerly chiefly".split())
# Past participles that end a noun phrase after its head ("fruit eaten fresh").
_PARTICIPLES = frozenset(
    "eaten known built drawn driven kept sold given taken seen borne set spun woven sewn".split()
)
_NOT_PLURAL = frozenset(
    "species series means news lens bus gas grass glass class mass moss cross dress boss chess "
    "clothes trousers pants scissors shears pliers tongs glasses binoculars genus virus bonus "
    "cactus fungus octopus platypus iris axis analysis basis crisis thesis oasis".split()
)


_IRREGULAR = {
    "leaves": "leaf", "knives": "knife", "wolves": "wolf", "halves": "half", "loaves": "loaf",
    "shelves": "shelf", "calves": "calf", "wives": "wife", "lives": "life", "thieves": "thief",
    "men": "man", "women": "woman", "children": "child", "teeth": "tooth", "feet": "foot",
    "geese": "goose", "mice": "mouse", "people": "person",
}  # fmt: skip


def _singular(word: str) -> str:
    """A plural gloss head in the singular ("birds" -> "bird"); leaves the doubtful alone."""
    lower = word.lower()
    if lower in _NOT_PLURAL or len(word) <= 3 or lower.endswith(("ss", "us", "is", "ics")):
        return word
    if lower in _IRREGULAR:
        return word[: -len(lower)] + _IRREGULAR[lower]
    if lower.endswith("ies"):
        return word[:-3] + "y"
    if lower.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if lower.endswith("s"):
        return word[:-1]
    return word


def _gloss_words(gloss: str) -> list[str]:
    """The gloss's first clause as words: parentheses dropped, cut at ; : , or a quote."""
    text = re.sub(r"\([^)]*\)", " ", gloss)
    text = re.split(r"[;:,\"`]", text, maxsplit=1)[0]
    return re.findall(r"[A-Za-z][A-Za-z'-]*", text)


def _trim(phrase: list[str]) -> list[str]:
    """A noun phrase without leading adverbs and without a participle after its head."""
    phrase = [w for w in phrase if w.lower() not in _ADVERBS]
    for k in range(1, len(phrase)):
        word = phrase[k].lower()
        nxt = phrase[k + 1].lower() if k + 1 < len(phrase) else None
        participle = word.endswith("ed") and "-" not in word and nxt in (None, "or", "and")
        if word in _PARTICIPLES or participle:
            phrase = phrase[:k]
            break
    while phrase and phrase[-1].lower() in ("or", "and"):
        phrase = phrase[:-1]
    return phrase


def _head_phrase(gloss: str) -> tuple[list[str], list[str]]:
    """(the gloss's first noun phrase, head last; the clause's words after the head)."""
    words = _gloss_words(gloss)
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and words[j].lower() not in _PHRASE_END:
            j += 1
        phrase = _trim(words[i:j])
        if phrase:
            head = phrase[-1].lower()
            if head not in _VAGUE and not head.endswith("ly"):
                after = words[i + len(phrase) :] if phrase == words[i : i + len(phrase)] else []
                return phrase, after
        i = j + 1
    return [], []


def _qualifier_candidates(lemmas: list[str], gloss: str, others: set[str]) -> list[str]:
    """Qualifiers to try for one member of a colliding group, best first."""
    phrase, after = _head_phrase(gloss)
    synonyms = [s for s in lemmas[1:] if s.casefold() not in others]
    domain = re.match(r"\s*\(([^)]{1,30})\)", gloss)  # "(chess) the most powerful piece"
    domains = [domain.group(1).strip()] if domain else []
    if not phrase:
        return [*domains, *synonyms]
    head = _singular(phrase[-1])
    out: list[str] = [head, *synonyms, *domains]
    for n in (2, 3):
        words = [w for w in phrase[-n:-1] if w.lower() not in _VAGUE]
        if len(words) == n - 1:
            out.append(" ".join([*words, head]))
    tail = after[:4]
    while tail and (tail[-1].lower() in _PHRASE_END or tail[-1].lower() in _VAGUE):
        tail = tail[:-1]
    if tail:
        out.append(" ".join([phrase[-1], *tail]))
    return out


def imagenet21k_entries(info_dir: Path) -> list[Entry]:
    """The 21,841 ImageNet-21k synsets as entries with unique display names (see module doc)."""
    synsets = [s.strip() for s in (info_dir / IMAGENET_FILES[0]).read_text().splitlines()]
    synsets = [s for s in synsets if s]
    lemmas = _read_tsv(info_dir / IMAGENET_FILES[1])
    glosses = _read_tsv(info_dir / IMAGENET_FILES[2])
    names = {s: [x.strip() for x in lemmas[s].split(", ") if x.strip()] for s in synsets}

    groups: dict[str, list[str]] = defaultdict(list)
    for s in synsets:
        groups[names[s][0].casefold()].append(s)
    plain = {key for key, members in groups.items() if len(members) == 1}

    display: dict[str, str] = {}
    taken = set(plain)
    for key, members in groups.items():
        if len(members) == 1:
            display[members[0]] = names[members[0]][0]
            continue
        candidates = {}
        for s in members:
            others = {x.casefold() for o in members if o != s for x in names[o]}
            base = names[s][0]
            options = _qualifier_candidates(names[s], glosses.get(s, ""), others)
            candidates[s] = [f"{base} ({q})" for q in options if q.casefold() != key]
        chosen = _resolve_group(members, candidates, taken)
        for s in members:
            name = chosen.get(s) or f"{names[s][0]} ({s})"
            taken.add(name.casefold())
            display[s] = name
    entries = []
    for s in synsets:
        first, *rest = names[s]
        name = display[s]
        synonyms = [x for x in rest if x.casefold() != name.casefold()]
        entries.append(Entry(name, tuple(synonyms)))
    return entries


def _resolve_group(members: list[str], candidates: dict[str, list[str]], taken: set[str]) -> dict:
    """Give each member a distinct qualified name, in rounds.

    Round r offers each unresolved member its r-th candidate; a name offered by several members goes
    to the first in file order (the others go on to their next candidate), a name already taken
    elsewhere in the file to nobody. Members left over get the WordNet id from the caller.
    """
    chosen: dict[str, str] = {}
    used = set(taken)
    depth = max((len(c) for c in candidates.values()), default=0)
    for r in range(depth):
        for s in members:
            if s not in chosen and r < len(candidates[s]):
                key = candidates[s][r].casefold()
                if key not in used:
                    chosen[s] = candidates[s][r]
                    used.add(key)
    return chosen


def imagenet21k_text(info_dir: Path) -> str:
    """The complete imagenet21k.txt, header included."""
    digest = hashlib.sha256()
    for name in IMAGENET_FILES:
        digest.update((info_dir / name).read_bytes())
    header = [
        "ImageNet-21k (fall11): 21,841 WordNet synsets, one per line.",
        "Generated by scripts/build_vocabularies.py from timm/data/_info/ "
        f"({', '.join(IMAGENET_FILES)}; sha256 {digest.hexdigest()[:16]}).",
        "Display name = first lemma; repeated first lemmas are qualified from the WordNet gloss.",
        "Format: resources/vocabularies/README.md. Do not edit by hand: re-run the script.",
    ]
    return Vocabulary(imagenet21k_entries(info_dir)).dumps(header)


def _read_tsv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            key, value = line.split("\t", 1)
            out[key.strip()] = value.strip()
    return out


def timm_info_dir() -> Path:
    """`timm/data/_info` of the installed timm, found without importing it (and torch)."""
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None or spec.origin is None:
        raise SystemExit("timm is not installed")
    return Path(spec.origin).resolve().parent / "data" / "_info"


# ---- LVIS ----------------------------------------------------------------------------------------


def lvis_categories(source: Path) -> list[dict]:
    """The category dicts from an LVIS json file or detectron2's lvis_v1_categories.py."""
    text = source.read_text(encoding="utf-8")
    if source.suffix == ".py":
        tree = ast.parse(text)
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "LVIS_CATEGORIES" for t in node.targets
            ):
                categories = ast.literal_eval(node.value)
                break
        else:
            raise SystemExit(f"{source}: no LVIS_CATEGORIES list")
    else:
        data = json.loads(text)
        categories = data["categories"] if isinstance(data, dict) else data
    categories = sorted(categories, key=lambda c: c["id"])
    if len(categories) != 1203:
        raise SystemExit(f"{source}: {len(categories)} categories, LVIS v1 has 1203")
    return categories


def _lvis_text(raw: str) -> list[str]:
    return [part.replace("_", " ").strip() for part in raw.split(" ") if part.strip()]


def lvis_entries(source: Path) -> list[Entry]:
    entries = []
    for category in lvis_categories(source):
        name, *glued = _lvis_text(category["name"])
        synonyms = [*glued]
        for raw in category.get("synonyms", []):
            synonyms += _lvis_text(raw)
        entries.append(Entry(name, tuple(dict.fromkeys(s for s in synonyms if s != name))))
    return entries


def lvis_text(source: Path) -> str:
    header = [
        "LVIS v1: the 1,203 categories in id order with their synonyms (underscores as spaces).",
        f"Generated by scripts/build_vocabularies.py from the LVIS v1 category list ({source.name}).",
        "Format: resources/vocabularies/README.md.",
    ]
    return Vocabulary(lvis_entries(source)).dumps(header)


def coco_text() -> str:
    header = [
        "COCO 2017: the 80 category names in id order, with common synonyms.",
        "Generated by scripts/build_vocabularies.py. Format: resources/vocabularies/README.md.",
    ]
    return Vocabulary(Entry(n, tuple(s)) for n, *s in COCO).dumps(header)


# ---- command line --------------------------------------------------------------------------------


def build(lvis_source: Path | None = None) -> dict[str, str]:
    """File name -> complete text of every vocabulary this run can generate."""
    out = {"imagenet21k.txt": imagenet21k_text(timm_info_dir()), "coco.txt": coco_text()}
    if lvis_source is not None:
        out["lvis.txt"] = lvis_text(lvis_source)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lvis-source", type=Path, help="lvis_v1_*.json or lvis_v1_categories.py")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    args = parser.parse_args(argv)
    status = 0
    for name, text in build(args.lvis_source).items():
        path = args.out / name
        data = text.encode("utf-8")
        if args.check:
            same = path.is_file() and path.read_bytes() == data
            print(f"{path}: {'up to date' if same else 'DIFFERS'}")
            status |= not same
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"{path}: written")
    return status


if __name__ == "__main__":
    sys.exit(main())
