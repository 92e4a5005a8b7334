"""`hash_ahead`: a model's weights are hashed on another core while the models load; the result
is only taken for the same unchanged file."""

from __future__ import annotations

import hashlib
import os

import pytest

from annotator import hashing
from annotator.hashing import hash_ahead, sha256_file


def test_a_file_hashed_ahead_gives_the_same_digest_and_is_not_read_again(tmp_path, monkeypatch):
    hashing._ahead.clear()  # (a failed model load elsewhere may leave its result unused)
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(3 << 20))
    hash_ahead(path)
    job = hashing._ahead[hashing._key(path)]
    assert job.done.wait(30)
    monkeypatch.setattr(hashing, "_sha256_now", lambda *a, **k: pytest.fail("read again"))
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not hashing._ahead  # each result is used once


def test_a_file_changed_after_hash_ahead_is_hashed_again(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    hash_ahead(path)
    assert hashing._ahead[hashing._key(path)].done.wait(30)
    path.write_bytes(b"b" * 2000)  # another size (and mtime): another key
    assert sha256_file(path) == hashlib.sha256(b"b" * 2000).hexdigest()
    hashing._ahead.clear()


def test_missing_paths_folders_and_pipes_are_skipped(tmp_path):
    hashing._ahead.clear()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    hash_ahead(tmp_path / "missing", tmp_path, fifo)  # never blocks on the pipe
    assert not hashing._ahead
    with pytest.raises(OSError):
        sha256_file(fifo)


def test_results_never_taken_are_dropped_oldest_first(tmp_path):
    """A model load that fails before it hashes leaves its result unused: at most MAX_AHEAD stay."""
    hashing._ahead.clear()
    paths = []
    for i in range(hashing.MAX_AHEAD + 3):
        paths.append(tmp_path / f"w{i}.bin")
        paths[-1].write_bytes(bytes([i]) * 100)
        hash_ahead(paths[-1])
    assert len(hashing._ahead) == hashing.MAX_AHEAD
    assert hashing._key(paths[0]) not in hashing._ahead
    assert hashing._key(paths[-1]) in hashing._ahead
    assert sha256_file(paths[0]) == hashlib.sha256(bytes([0]) * 100).hexdigest()
    hashing._ahead.clear()
