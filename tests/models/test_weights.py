"""Weights download against a local HTTP server and file:// URLs (never the internet)."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from annotator.errors import WeightsError
from annotator.models import weights
from annotator.models.weights import (
    DownloadCancelled,
    KnownWeights,
    cache_dir,
    download,
    download_known,
    known_name_for,
    list_known,
    resolve,
    verify,
)
from tests.file_server import FileServer

PAYLOAD = np.random.default_rng(0).bytes(int(2.5 * weights.CHUNK))  # spans several chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server() -> Iterator[FileServer]:
    s = FileServer({"/model.pth": PAYLOAD})
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ANNOTATOR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


def test_full_download_verified(server, tmp_path):
    seen: list[tuple[int, int]] = []
    path = download(
        f"{server.url}/model.pth",
        dest=tmp_path,
        progress=False,
        expected_sha256=SHA,
        progress_cb=lambda done, total: seen.append((done, total)),
    )
    assert path == tmp_path / "model.pth"
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "model.pth.part").exists()
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
    # Already there and verified: no second request.
    assert download(f"{server.url}/model.pth", tmp_path, False, SHA) == path
    assert len(server.requests) == 1


def test_hash_mismatch_deletes_download(server, tmp_path):
    with pytest.raises(WeightsError, match="sha256") as info:
        download(f"{server.url}/model.pth", tmp_path, progress=False, expected_sha256="0" * 64)
    assert f"{server.url}/model.pth" in str(info.value)
    assert not (tmp_path / "model.pth").exists()
    assert not (tmp_path / "model.pth.part").exists()


def test_resume_with_range(server, tmp_path):
    (tmp_path / "model.pth.part").write_bytes(PAYLOAD[:1000])
    path = download(f"{server.url}/model.pth", tmp_path, progress=False, expected_sha256=SHA)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("/model.pth", "bytes=1000-")]
    assert server.bytes_sent == len(PAYLOAD) - 1000


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.honour_range = False
    (tmp_path / "model.pth.part").write_bytes(b"garbage that is not a prefix")
    path = download(f"{server.url}/model.pth", tmp_path, progress=False, expected_sha256=SHA)
    assert path.read_bytes() == PAYLOAD
    assert server.bytes_sent == len(PAYLOAD)


def test_part_longer_than_file_restarts(server, tmp_path):
    (tmp_path / "model.pth.part").write_bytes(PAYLOAD + b"extra")
    path = download(f"{server.url}/model.pth", tmp_path, progress=False, expected_sha256=SHA)
    assert path.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [f"bytes={len(PAYLOAD) + 5}-", None]


def test_interrupted_download_resumes_next_time(server, tmp_path):
    server.cut_after = 1_500_000
    with pytest.raises(WeightsError, match="resumes"):
        download(f"{server.url}/model.pth", tmp_path, progress=False, expected_sha256=SHA)
    part = tmp_path / "model.pth.part"
    assert part.read_bytes() == PAYLOAD[:1_500_000]
    server.cut_after = None
    path = download(f"{server.url}/model.pth", tmp_path, progress=False, expected_sha256=SHA)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/model.pth", "bytes=1500000-")


def test_cancel_keeps_partial_file(server, tmp_path):
    calls = iter(range(100))
    with pytest.raises(DownloadCancelled):
        download(
            f"{server.url}/model.pth",
            tmp_path,
            progress=False,
            cancel=lambda: next(calls) >= 1,  # after the first chunk
        )
    assert (tmp_path / "model.pth.part").stat().st_size == weights.CHUNK
    assert not (tmp_path / "model.pth").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_url_message(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/sam_vit_b_01ec64.pth"
    with pytest.raises(WeightsError) as info:
        download(url, tmp_path, progress=False, timeout=5)
    msg = str(info.value)
    assert url in msg and "--sam-checkpoint PATH" in msg and "\n" not in msg


def test_http_error_message(server, tmp_path):
    with pytest.raises(WeightsError, match="HTTP 404"):
        download(f"{server.url}/missing.pth", tmp_path, progress=False)


def test_file_url_and_resume_without_range(tmp_path):
    src = tmp_path / "src" / "weights file.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    out = tmp_path / "out"
    out.mkdir()
    (out / "weights file.bin.part").write_bytes(b"xyz")  # file:// ignores Range: start over
    path = download(src.as_uri(), out, progress=False, expected_sha256=SHA)
    assert path == out / "weights file.bin" and path.read_bytes() == PAYLOAD


def test_registry_entries():
    names = {w.name: w for w in list_known()}
    assert names["sam_vit_b"].url.endswith("/segment_anything/sam_vit_b_01ec64.pth")
    assert names["sam_vit_b"].sha256 == (
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"
    )
    assert names["sam_vit_h"].size == 2_564_550_879
    assert {w.kind for w in list_known()} == {"sam", "clip", "sam2", "edgetam", "sam_hq"}
    assert [w.kind for w in list_known()][:3] == ["sam"] * 3
    assert list_known()[-1].kind == "clip"
    for name in ("sam2.1_hiera_tiny", "sam2.1_hiera_large", "edgetam", "sam_hq_vit_b"):
        assert names[name].files == ("config.json", "model.safetensors")
        assert names[name].flag == "--checkpoint PATH"
    for w in list_known():
        assert w.sha256 is None or len(w.sha256) == 64
    with pytest.raises(WeightsError, match="sam_vit_b"):
        download_known("sam_vit_x")


def test_cache_dir_follows_env(cache):
    assert cache_dir() == cache


def test_known_weights_download_resolve_verify(server, cache, tmp_path, monkeypatch):
    entry = KnownWeights(
        name="tiny_test",
        kind="sam",
        url=f"{server.url}/model.pth",
        filename="tiny_test.pth",
        size=len(PAYLOAD),
        sha256=SHA,
        description="test",
    )
    monkeypatch.setitem(weights.KNOWN, "tiny_test", entry)
    with pytest.raises(WeightsError, match="annotator weights download tiny_test"):
        resolve("tiny_test")
    path = download_known("tiny_test", progress=False)
    assert path == cache / "tiny_test.pth" and path.read_bytes() == PAYLOAD
    assert resolve("tiny_test") == path
    assert verify(path, "tiny_test")
    assert known_name_for(path) == "tiny_test"
    other = tmp_path / "other.pth"
    other.write_bytes(PAYLOAD[:-1] + b"\0")  # same size, other bytes
    assert known_name_for(other) is None
    assert not verify(other, "tiny_test")
    # A file changed in the cache is noticed (the remembered hash is tied to size + mtime).
    path.write_bytes(other.read_bytes())
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(WeightsError, match="sha256"):
        resolve("tiny_test")
    # download_known repairs it.
    assert download_known("tiny_test", progress=False).read_bytes() == PAYLOAD
    assert resolve("tiny_test") == path


def test_folder_weights_download_and_resolve(cache, tmp_path, monkeypatch):
    """A transformers folder is fetched file by file (file:// here) and resolves to the folder."""
    import dataclasses

    from annotator.models import weights

    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_bytes(b"x" * 1000)
    entry = dataclasses.replace(weights.KNOWN["sam2.1_hiera_tiny"], url=src.as_uri() + "/")
    monkeypatch.setitem(weights.KNOWN, "sam2.1_hiera_tiny", entry)
    with pytest.raises(WeightsError, match="not downloaded"):
        weights.resolve("sam2.1_hiera_tiny")
    folder = download_known("sam2.1_hiera_tiny", progress=False)
    assert (folder / "model.safetensors").read_bytes() == b"x" * 1000
    assert weights.resolve("sam2.1_hiera_tiny") == folder
    assert weights.default_segmenter("cpu") == "sam2.1_hiera_tiny"
    assert weights.default_segmenter("cuda") == "sam2.1_hiera_base_plus"
    assert weights.default_segmenter("cpu", "edgetam") == "edgetam"
