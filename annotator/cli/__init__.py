"""The `annotator` command: the window with no subcommand (or a folder), headless subcommands otherwise.

One module per command group registers its subcommands and sets each one's `handler`; `main` parses
and calls it — the one dispatch. Bad input gives one line on stderr and exit code 2, never a
traceback: every user-facing failure is an `AnnotatorError` (see errors.py) and is caught here.
Building the parser imports no torch, so `--help`, `--version` and the file commands start fast.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from annotator import __version__
from annotator.cli import (
    autolabel,
    cache,
    discovery,
    evaluate,
    project,
    project_copy,
    refine,
    segment,
    track,  # issue 25: videos and frame sequences
    vocab,
    weights,
)
from annotator.cli.flags import (
    add_prompt_flags,
    bound_numbers,
    make_engine,
    model_flags,
    open_project,
)
from annotator.cli.segment import save_mask
from annotator.errors import AnnotatorError
from annotator.io.files import show_path

# Command groups, in the order `annotator --help` lists them.
GROUPS = (
    segment,
    project,
    project_copy,
    vocab,
    weights,
    cache,
    evaluate,
    discovery,
    autolabel,
    refine,
    track,
)

COMMANDS = (
    "embed",
    "segment",
    "export",
    "import",
    "project",
    "vocab",
    "weights",
    "cache",
    "eval",
    "find",
    "tag",
    "similar",
    "compare",
    "autolabel",
    "review",
    "refine",
    "track",
)


def build_parser() -> argparse.ArgumentParser:
    """The whole `annotator` parser (every subcommand, with help for each flag)."""
    models = model_flags()
    parser = argparse.ArgumentParser(
        prog="annotator",
        description="Click-to-segment COCO annotation. `annotator [FOLDER]` opens the window; "
        "the subcommands below work headless.",
    )
    parser.add_argument("--version", action="version", version=f"annotator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub, models)
    bound_numbers(parser)  # issue 22: every numeric flag finite and bounded (flags.NUMBER_BOUNDS)
    return parser


_NEGATIVE_VALUE = re.compile(r"-\d|-\.\d")


def _join_negative_values(argv: list[str]) -> list[str]:
    """`--point -5,10` -> `--point=-5,10`: argparse takes a value that starts with '-' and is not a
    plain number for an option, so points and boxes outside the image could not be given."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--point", "--box") and i + 1 < len(argv) and _NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _os_error_line(error: OSError) -> str:
    """One printable line for a file-system error on a user's path."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.filename is None:
        return show_path(reason)
    name = show_path(error.filename)
    return f"{name if len(name) <= 300 else name[:300] + '…'}: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv); returns the exit status."""
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    # `annotator`, `annotator FOLDER` and `annotator --flags FOLDER` all open the window.
    first = next((a for a in argv if not a.startswith("-")), None)
    if not any(a in ("-h", "--help", "--version") for a in argv[:1]) and first not in COMMANDS + (
        "gui",
    ):
        argv = ["gui", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except AnnotatorError as error:
        print(f"annotator: error: {error}", file=sys.stderr)
        return 2
    except UnicodeError as error:  # issue 22: an argument of bytes that are not UTF-8 text
        print(
            f"annotator: error: a value is not UTF-8 text ({error.reason}: "
            f"{show_path(str(error.object[error.start : error.end]))!s:.80}); use UTF-8 names",
            file=sys.stderr,
        )
        return 2
    except OSError as error:  # issue 22: the file system refused a user's path (too long, a loop…)
        print(f"annotator: error: {_os_error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("annotator: interrupted", file=sys.stderr)
        return 130


__all__ = [
    "COMMANDS",
    "add_prompt_flags",
    "build_parser",
    "main",
    "make_engine",
    "model_flags",
    "open_project",
    "save_mask",
]
