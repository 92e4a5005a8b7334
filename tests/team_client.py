"""A client process for the team-store tests (tests/store/test_team_store.py); not a test module itself.

    python tests/team_client.py URL IMAGE_NAME COUNT JOURNAL

Accepts COUNT masks into the project at URL, one transaction each, and appends each annotation's
id to JOURNAL only after its commit returned, so a SIGKILL at any moment may lose only the save in
flight, never a journaled one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotator.store import Project  # noqa: E402


def main() -> None:
    url, name, count, journal = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rng = np.random.default_rng(abs(hash(journal)) % 2**32)
    with Project(url) as project, open(journal, "a", buffering=1) as log:
        image_id = project.add_image(name, 32, 24)
        for k in range(count):
            mask = np.zeros((24, 32), bool)
            y, x = int(rng.integers(0, 20)), int(rng.integers(0, 28))
            mask[y : y + 4, x : x + 4] = True
            ann = project.add_annotation(image_id, mask, f"thing {k % 7}", 0.5, {"k": k})
            log.write(f"{ann}\n")


if __name__ == "__main__":
    main()
