"""A long-lived process that runs many `annotator` command lines (tests/robustness/test_cli_hostile.py).

Reads one JSON list of arguments per line on stdin; runs `annotator.cli.main(argv)` with stdout
and stderr captured; writes one JSON line {"code": ..., "err": ...} on its real stdout. A crash in
C code (faulthandler prints the stack on the real stderr) or a hang ends or stalls this process,
which the test sees. Memory is capped (RLIMIT_DATA, 2 GiB) so that a flag that makes a command allocate
without bound fails here instead of swapping the machine.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import os
import resource
import sys


def main() -> int:
    faulthandler.enable()
    # 2 GiB of data (heap and private anonymous mappings): the bound on what a flag may
    # make a command allocate. RLIMIT_DATA rather than RLIMIT_AS: torch maps its CUDA libraries
    # (gigabytes of address space, no memory) on import.
    limit = int(os.environ.get("ANNOTATOR_WORKER_MEMORY", str(2 * 2**30)))
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    from annotator.cli import main as cli

    out = sys.stdout
    for line in sys.stdin:
        argv = json.loads(line)
        err, sink = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(err):
                code = cli(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # a traceback: the failure the test looks for
            import traceback

            code = "traceback"
            err.write(traceback.format_exc())
        out.write(json.dumps({"code": code, "err": err.getvalue()}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
