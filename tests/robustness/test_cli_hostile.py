"""No traceback, ever, from the CLI (issue 22): every subcommand on hostile values of every flag.

The subcommands and their flags are enumerated from the argparse parser itself (`build_parser`),
so a flag added later is covered without touching this file. Each flag gets hostile values of its
kind — numbers: nan, ±inf, huge, negative, 0; paths: missing, a FIFO, a folder, `..`, a symbolic
link loop, /dev/zero, a damaged SQLite file, 10k characters; names: empty, control characters,
10k characters; project locations: malformed PostgreSQL URLs too — and the command must exit 0
or 2 with exactly one error line on stderr.

The examples run in one long-lived child process (tests/cli_worker.py, faulthandler on, data
memory capped at 2 GiB): a crash in C code kills it, a hang stalls it past the per-example
timeout, and both fail the test with the command line that did it. The models are never loaded:
the cache is an empty folder, so a model-using command stops at "not downloaded" unless a flag
stops it earlier (the numeric flags are bounded before any handler runs: cli/flags.NUMBER_BOUNDS).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotator.cli import build_parser
from tests.formats_data import make_project

ROOT = Path(__file__).resolve().parents[2]
SKIP = {("gui",)}  # opens the window; its flags are the model flags every other command has
PER_EXAMPLE_S = 60

NUMBERS = ["nan", "inf", "-inf", "1e308", "-1e308", "99999999999999999999999", "-1", "0", "1e-320",
           "0x10", "", " 7", "1_000"]  # fmt: skip
NAMES = ["", "\n", "a\nb", "\x1b[2J\x1b[31mred", "\x00", "a" * 10_000, "\udcff\udcfe", "-", " ",
         "..", "é"]  # fmt: skip
URLS = ["postgresql://", "postgresql://[::1/db", "postgresql://u@h:99999/db?project=x",
        "postgresql://u@h:notaport/db", "postgresql:///?project=", "postgres://x/y?project=a%00b",
        "postgresql://u@127.0.0.1:9/db?project=" + "p" * 300]  # fmt: skip


def sandbox(root: Path) -> dict[str, list[str]]:
    """The hostile values, by kind, made in `root`."""
    root.mkdir(exist_ok=True)
    os.mkfifo(root / "fifo")
    (root / "folder").mkdir()
    (root / "loop").symlink_to(root / "loop")
    (root / "damaged.db").write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    (root / "text.txt").write_text("not what anyone expects\n")
    project = root / "project"
    project.mkdir()
    make_project(project).close()
    con = sqlite3.connect(root / "foreign.db")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    paths = [str(root / "missing" / "x"), str(root / "fifo"), str(root / "folder"), "..",
             str(root / "loop"), "/dev/zero", str(root / "damaged.db"), str(root / "foreign.db"),
             str(root / "text.txt"), "", "a" * 10_000, str(root / "a\nb"), str(project),
             str(project / ".annotator" / "project.db"), str(project / "a.png"),
             str(root / "new-output")]  # fmt: skip
    return {"number": NUMBERS, "path": paths, "name": NAMES, "location": paths + URLS}


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, its parser) for every runnable subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaves(sub, (*path, name))


def kind_of(action: argparse.Action) -> str:
    kind = getattr(action.type, "__name__", "")
    if kind in ("int", "float"):
        return "number"
    if kind == "project_location":
        return "location"
    if action.type is Path or kind in ("Path",):
        return "path"
    return "name"


COMMANDS = [(p, parser) for p, parser in leaves(build_parser()) if p not in SKIP]


@st.composite
def command_lines(draw, values: dict[str, list[str]]) -> list[str]:
    path, parser = draw(st.sampled_from(COMMANDS))
    argv = list(path)
    chosen = set()  # one member of each required group (--classes | --label-set, …)
    for group in parser._mutually_exclusive_groups:
        if group.required:
            chosen.add(id(draw(st.sampled_from(group._group_actions))))
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        required = action.required or (not action.option_strings and action.nargs != "?")
        required = required or id(action) in chosen
        if not required and not draw(st.booleans()):
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            argv.append(action.option_strings[0])
            continue
        if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
            options = [*map(str, action.choices), "not-a-choice"]
            value = draw(st.sampled_from(options))
        else:
            value = draw(st.sampled_from(values[kind_of(action)]))
        if action.option_strings:
            argv.append(f"{action.option_strings[-1]}={value}")  # '=' keeps '-1' a value
        else:
            argv.append(value)
    return argv


class Worker:
    """tests/cli_worker.py, restarted after a crash or a hang."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd, self.proc = env, cwd, None

    def run(self, argv: list[str]) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.cli_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,  # relative hostile paths ('..', '') land in the sandbox, not here
                text=True,
                errors="surrogateescape",
            )
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], PER_EXAMPLE_S)
        if not ready:
            self.close()
            raise AssertionError(f"ran past {PER_EXAMPLE_S} s: {argv!r:.500}")
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            self.proc = None
            raise AssertionError(f"the process died (C crash?): {argv!r:.500}\n{err[-1500:]}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def check(result: dict, argv: list[str]) -> None:
    code, err = result["code"], result["err"]
    assert code in (0, 2), f"exit {code} for {argv!r:.300}:\n{err[-1500:]}"
    assert "Traceback" not in err, f"{argv!r:.300}:\n{err[-1500:]}"
    if code == 2:
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1, f"{argv!r:.300}: not one error line:\n{err[-1500:]}"


class Fixture(tuple):
    """(worker, values) with a short repr: hypothesis prints it with every failing example."""

    def __new__(cls, worker: Worker, values: dict) -> Fixture:
        return super().__new__(cls, (worker, values))

    def __repr__(self) -> str:
        return "<worker>"


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    values = sandbox(root / "sandbox")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ANNOTATOR_CACHE": str(root / "cache"),  # empty: no model can load
        "HF_HUB_OFFLINE": "1",
        "https_proxy": "http://127.0.0.1:9",  # a download fails at once instead of waiting
        "http_proxy": "http://127.0.0.1:9",
        "QT_QPA_PLATFORM": "offscreen",
    }
    w = Worker(env, root / "sandbox" / "folder")
    yield Fixture(w, values)
    w.close()


def test_every_numeric_flag_refuses_every_hostile_number(worker):
    """A sweep, not a sample: every number flag of every command, each hostile number."""
    run, values = worker
    count = 0
    for path, parser in COMMANDS:
        required = []
        for action in parser._actions:
            if action.required or (not action.option_strings and action.nargs not in ("?", "*")):
                if isinstance(action, argparse._SubParsersAction):
                    continue
                value = str(values["path"][2]) if kind_of(action) != "number" else "1"
                if action.choices:
                    value = str(next(iter(action.choices)))
                required += (
                    [f"{action.option_strings[-1]}={value}"] if action.option_strings else [value]
                )
        for action in parser._actions:
            if kind_of(action) != "number" or not action.option_strings:
                continue
            for number in NUMBERS:
                argv = [*path, *required, f"{action.option_strings[-1]}={number}"]
                check(run.run(argv), argv)
                count += 1
    assert count > 100  # the enumeration found the numeric flags


@settings(
    max_examples=int(os.environ.get("ANNOTATOR_HOSTILE_EXAMPLES", "250")),
    deadline=None,
    derandomize="ANNOTATOR_HOSTILE_RANDOM" not in os.environ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_command_line_gives_a_traceback(worker, data):
    run, values = worker
    argv = data.draw(command_lines(values))
    check(run.run(argv), argv)
