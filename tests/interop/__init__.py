"""Run datumaro and labelme in their own interpreter and bring back what they read or wrote.

They cannot live in the project's environment (datumaro pins pillow~=12 and opencv<5, labelme
imports PyQt5 beside our PySide6), so the format tests call read_dataset.py / write_dataset.py in
a side venv made by make_env.py. Which interpreter:

- ANNOTATOR_INTEROP_PYTHON when set. A reader missing there is a test *failure*: CI sets it, and a
  broken side install must not turn into a quiet skip.
- else this interpreter when it finds the package (still in a subprocess, so PyQt5 never loads
  next to PySide6);
- else the test skips, saying how to make the side venv.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
VARIABLE = "ANNOTATOR_INTEROP_PYTHON"
NO_TOOL = 3  # exit status of the scripts when the tool cannot be imported
SETUP = (
    f"make the side venv with `python tests/interop/make_env.py` and set {VARIABLE} to the "
    "python it prints (docs/adr/0007-dataset-formats.md)"
)


def interop_python(package: str) -> tuple[str, bool]:
    """(interpreter, whether it was asked for by ANNOTATOR_INTEROP_PYTHON) for `package`."""
    chosen = os.environ.get(VARIABLE)
    if chosen:
        return chosen, True
    if importlib.util.find_spec(package) is not None:
        return sys.executable, False
    pytest.skip(f"{package} is not installed: {SETUP}")


def _run(package: str, script: str, *args: str) -> None:
    python, asked = interop_python(package)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    if asked:  # the side venv is complete; the project's PYTHONPATH would only shadow it
        env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(
            [python, str(HERE / script), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except FileNotFoundError:
        pytest.fail(f"{VARIABLE}={python}: no such interpreter; {SETUP}")
    if done.returncode == NO_TOOL:
        message = f"{package} cannot be imported by {python}: {done.stderr.strip()}"
        if asked:
            pytest.fail(f"{message} ({VARIABLE} is set; {SETUP})")
        pytest.skip(message)
    if done.returncode != 0:
        pytest.fail(f"{script} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")


def read(fmt: str, path: Path, out: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What the tool of `fmt` reads at `path` (read_dataset.py's meta and its masks by key)."""
    _run("labelme" if fmt == "labelme" else "datumaro", "read_dataset.py", fmt, str(path), str(out))
    with np.load(out) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def write(spec: dict[str, Any], masks: dict[str, np.ndarray], scratch: Path) -> None:
    """Have the tool of spec["format"] write the dataset `spec` describes (write_dataset.py)."""
    path = scratch / "spec.npz"
    np.savez_compressed(path, spec=np.array(json.dumps(spec)), **masks)
    _run("labelme" if spec["format"] == "labelme" else "datumaro", "write_dataset.py", str(path))
