"""`annotator vocab list | add | remove | build`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from annotator.cli.flags import make_engine


def register(sub, models: argparse.ArgumentParser) -> None:
    p = sub.add_parser("vocab", help="list, edit or encode a vocabulary")
    vsub = p.add_subparsers(dest="vocab_command", metavar="ACTION", required=True)
    q = vsub.add_parser("list", help="print the entries")
    q.add_argument("--vocabulary", help="file or shipped name (default: default)")
    q.add_argument("--search", help="only entries whose name or synonyms contain this")
    q.set_defaults(handler=cmd_list)
    q = vsub.add_parser("add", help="add an entry to a vocabulary file")
    q.add_argument("name", help="display name of the new entry")
    q.add_argument("--synonym", action="append", default=[], help="another name for it; repeatable")
    q.add_argument("--vocabulary", type=Path, required=True, help="the file to edit")
    q.set_defaults(handler=cmd_edit)
    q = vsub.add_parser("remove", help="remove an entry from a vocabulary file")
    q.add_argument("name", help="display name of the entry")
    q.add_argument("--vocabulary", type=Path, required=True, help="the file to edit")
    q.set_defaults(handler=cmd_edit)
    q = vsub.add_parser(
        "build", parents=[models], help="encode the vocabulary's text index into the cache"
    )
    q.set_defaults(handler=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    engine = make_engine(args)
    print(f"{len(engine.vocabulary)} entries encoded for {engine.clip.identity}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from annotator.vocab.vocabulary import load_vocabulary

    vocab = load_vocabulary(args.vocabulary)
    needle = (args.search or "").lower()
    for entry in vocab:
        if not needle or any(needle in text.lower() for text in entry.texts):
            print(", ".join(entry.texts))
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from annotator.io.outputs import check_output
    from annotator.vocab.vocabulary import Vocabulary

    path: Path = args.vocabulary
    check_output(path)  # issue 22: never into .annotator/ or over an SQLite file (a project)
    vocab = Vocabulary.load(path) if path.exists() else Vocabulary.loads("")
    if args.vocab_command == "add":
        vocab.add(args.name, tuple(args.synonym))
    else:
        vocab.remove(args.name)
    vocab.save(path)
    print(f"{path}: {len(vocab)} entries", file=sys.stderr)
    return 0
