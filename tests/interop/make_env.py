"""Create (or reuse) the side virtual environment that holds the `interop` readers.

datumaro pins pillow~=12 and opencv-python-headless<5, and labelme imports PyQt5 and onnxruntime:
installed beside the project they would downgrade our Pillow/OpenCV and put PyQt5 next to PySide6.
So they live in a venv of their own, and the format tests run them there through a subprocess
(tests/interop/read_dataset.py, write_dataset.py). The requirement strings are read from the
`interop` extra of pyproject.toml, the one list of them.

    python tests/interop/make_env.py [DIR]      # default DIR: .ci-interop/ (git-ignored)

Prints the venv's python on the last line of stdout; point ANNOTATOR_INTEROP_PYTHON at it. A venv
whose stamp matches the requirements is reused, so a second run takes a second. Used by .ci/run
and by developers alike: one code path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STAMP = "annotator-interop.json"


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The `interop` extra's requirement strings, verbatim, plus numpy (the scripts' own need)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the stdlib parser came in 3.11
        import tomli as tomllib  # type: ignore[no-redef]

    extras = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    return [*extras["interop"], "numpy"]


def python_of(env: Path) -> Path:
    """The interpreter inside venv `env` (Scripts\\python.exe on Windows)."""
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def make_env(env: Path) -> Path:
    """Build `env` with the interop requirements unless its stamp says it already has them."""
    reqs = requirements()
    stamp = env / STAMP
    want = {"requirements": reqs, "python": sys.version.split()[0]}
    if python_of(env).exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text(encoding="utf-8")) == want:
                return python_of(env)
        except ValueError:
            pass  # a torn stamp: rebuild
    start = time.monotonic()
    # clear=True: a half-built venv from an interrupted run must not be mistaken for a good one
    venv.EnvBuilder(clear=True, with_pip=True).create(env)
    python = python_of(env)
    # One pip call: the resolver sees every pin at once. Its output is shown only when it fails,
    # so CI's log keeps the timing line and not a page of index warnings.
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *reqs],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print((done.stdout + done.stderr)[-6000:], file=sys.stderr)
        raise subprocess.CalledProcessError(done.returncode, done.args)
    stamp.write_text(json.dumps(want), encoding="utf-8")
    print(
        f"interop env: installed {' '.join(reqs)} into {env} in {time.monotonic() - start:.0f} s",
        file=sys.stderr,
    )
    return python


def main(argv: list[str]) -> int:
    env = Path(argv[1]) if len(argv) > 1 else ROOT / ".ci-interop"
    try:
        python = make_env(env.resolve())
    except (subprocess.CalledProcessError, OSError) as error:
        print(f"interop env: could not build {env}: {error}", file=sys.stderr)
        return 1
    print(python)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
