"""`hash_ahead`: a model's weights are hashed on another core while the models load; the result
is only taken for the same unchanged file."""

from __future__ import annotations

import hashlib
import os

import pytest

from annotator import hashing
from annotator.hashing import hash_ahead, sha256_file


def test_a_file_hashed_ahead_gives_the_same_digest_and_is_not_read_again(tmp_path, monkeypatch):
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(3 << 20))
    hash_ahead(path)
    job = next(iter(hashing._ahead.values()))
    assert job.done.wait(30)
    monkeypatch.setattr(hashing, "_sha256_now", lambda *a, **k: pytest.fail("read again"))
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not hashing._ahead  # each result is used once


def test_a_file_changed_after_hash_ahead_is_hashed_again(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    hash_ahead(path)
    next(iter(hashing._ahead.values())).done.wait(30)
    path.write_bytes(b"b" * 2000)  # another size (and mtime): another key
    assert sha256_file(path) == hashlib.sha256(b"b" * 2000).hexdigest()
    hashing._ahead.clear()


def test_missing_paths_folders_and_pipes_are_skipped(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    hash_ahead(tmp_path / "missing", tmp_path, fifo)  # never blocks on the pipe
    assert not hashing._ahead
    with pytest.raises(OSError):
        sha256_file(fifo)
