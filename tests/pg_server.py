"""A throwaway PostgreSQL server for the tests: a cluster in a temp folder on a loopback port.

`.ci/run` starts one and exports ANNOTATOR_TEST_PG; without it the `pg_url` fixture starts its own
when `initdb` is found (Debian keeps it in /usr/lib/postgresql/*/bin) and skips with the reason
otherwise. PostgreSQL refuses to run as root, so as root the cluster belongs to `nobody`.
Run `python tests/pg_server.py` to get one by hand (it prints the URL, Ctrl-C stops it).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def find_bin(name: str) -> str | None:
    """`name` (initdb, pg_ctl) on PATH or in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


class Cluster:
    """One running server; `url` names its `postgres` database; `stop()` removes everything."""

    def __init__(self) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL is not installed (no initdb/pg_ctl)")
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="annotator-pg-"))
        self.data = self.root / "data"
        user = "annotator"
        if os.geteuid() == 0:
            shutil.chown(self.root, "nobody", "nogroup")
        self.port = _free_port()
        run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
        try:
            subprocess.run(
                [
                    *_as_user(),
                    initdb,
                    "-D",
                    str(self.data),
                    "-U",
                    user,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ],
                **run,
            )
            subprocess.run(
                [
                    *_as_user(),
                    pg_ctl,
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "log"),
                    "-w",
                    "-o",
                    f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1"
                    " -c max_connections=100",
                    "start",
                ],
                **run,
            )
        except subprocess.CalledProcessError as error:
            shutil.rmtree(self.root, ignore_errors=True)
            detail = error.stderr.decode(errors="replace")
            raise RuntimeError(f"cannot start PostgreSQL: {detail}") from None
        self.url = f"postgresql://{user}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*_as_user(), self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    cluster = Cluster()
    print(cluster.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        sys.exit(0)
