"""Fork server for the kill -9 test (tests/robustness/test_crash_safety.py); not a test module itself.

Importing torch and loading models takes seconds, far too long to start a fresh process for each of a
hundred kills. This process loads everything once (torch limited to one thread, so no thread pool exists at
fork time), then forks one saver per line read on stdin. Each saver appends a JSON line to its journal
*after* each save has returned; the test kills it with SIGKILL at a random moment and then checks the store
against the journal.

    python tests/crash_server.py CONFIG_JSON      (stdin: "<seed> <mode>" per line; stdout: "<pid>")
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotator.cache import ArrayCache  # noqa: E402
from annotator.cli import save_mask  # noqa: E402
from annotator.engine import Engine  # noqa: E402
from annotator.io.masks import mask_to_rle  # noqa: E402
from annotator.store import Project  # noqa: E402


def saver(
    engine, embedding, image: Path, project: Path, journal: Path, seed: int, mode: str
) -> None:
    """Save masks forever through the real paths; journal each save after it returned."""
    rng = random.Random(seed)
    height, width = embedding.size
    names = engine.vocabulary.names()
    store = None
    if mode == "gui":
        from PySide6.QtGui import QUndoStack

        from annotator.gui.commands import AcceptCommand

        store = Project(
            project if project.suffix == ".db" else project / ".annotator" / "project.db"
        )
        stack = QUndoStack()
        image_id = store.add_image(image.name, width, height)
    cache = ArrayCache(journal.parent / "cache")
    with open(journal, "a", buffering=1) as log:
        counter = 0
        while True:
            counter += 1
            if mode == "cache":
                # The embedding cache under the same treatment: each file is written atomically.
                key = f"{seed:08x}{counter:056x}"
                values = np.full(50_000, counter % 251, dtype=np.float32)
                cache.save("sam", "model", key, {"features": values})
                log.write(json.dumps({"key": key, "value": counter % 251}) + "\n")
                continue
            x, y = rng.uniform(0, width - 1), rng.uniform(0, height - 1)
            proposal = engine.segment(embedding, [(x, y, True)], top_k=1)
            mask = proposal.mask
            if not mask.any():
                mask = np.zeros(embedding.size, dtype=bool)
                mask[int(y) : int(y) + 5, int(x) : int(x) + 5] = True
            category = rng.choice(names)
            prompts = {"points": [[x, y, 1]], "box": None}
            if mode == "cli":
                ann_id = save_mask(project, image, mask, category, proposal.score, prompts)
            else:
                command = AcceptCommand(
                    store, lambda _: None, image_id, mask, category, proposal.score, prompts
                )
                stack.push(command)
                ann_id = command.ann_id
            rle = mask_to_rle(mask)
            log.write(
                json.dumps({"id": ann_id, "counts": rle["counts"], "category": category}) + "\n"
            )


def main() -> None:
    config = json.loads(sys.argv[1])
    engine = Engine.from_paths(**config["engine"], cache_dir=Path(config["cache_dir"]))
    image = Path(config["image"])
    embedding = engine.embed(image)
    engine.segment(embedding, [(1.0, 1.0, True)])  # warm every code path before forking
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    for line in sys.stdin:
        seed, mode = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                saver(
                    engine,
                    embedding,
                    image,
                    Path(config["project"]),
                    Path(config["journal"]),
                    int(seed),
                    mode,
                )
            finally:
                os._exit(1)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
