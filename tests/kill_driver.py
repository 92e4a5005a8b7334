"""Run one annotator command and SIGKILL itself at its N-th file-system step (tests/robustness/test_output_targets.py).

`python -m tests.kill_driver N annotator-args...`: every call of os.replace, os.rename, os.link,
os.fsync, os.mkdir and shutil.copyfile is a step; on step N the process kills itself with SIGKILL
*before* the step runs (so N=1 dies before anything is written). N=0 runs to the end and prints
the number of steps on stderr as `steps=K`. Hooks at these calls are deterministic kill points
across the whole command: every write the code does goes through one of them.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys


def main() -> int:
    kill_at = int(sys.argv[1])
    count = 0

    def hook(original):
        def step(*args, **kwargs):
            nonlocal count
            count += 1
            if count == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        return step

    for name in ("replace", "rename", "link", "fsync", "mkdir"):
        setattr(os, name, hook(getattr(os, name)))
    shutil.copyfile = hook(shutil.copyfile)
    from annotator.cli import main as cli

    code = cli(sys.argv[2:])
    print(f"steps={count}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
