"""`annotator cache report | prune | export | import`, including hostile archives."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from annotator.cache import ArrayCache
from annotator.cli import main

SAM, CLIP = "sam-vit_b-0123456789abcdef", "open_clip:tiny|pool@256"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def filled(tmp_path):
    """A folder of 3 'images' (only their bytes matter), a cache holding 2 of them for 2 models
    plus one file of an image that is not in the folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    images = []
    for i in range(3):
        path = folder / f"p{i}.jpg"
        path.write_bytes(f"image {i}".encode() * 50)
        images.append(path)
    root = tmp_path / "cache"
    cache = ArrayCache(root / "embeddings")
    rng = np.random.default_rng(0)
    for path in images[:2]:
        cache.save("sam", SAM, digest(path), {"features": rng.random((4, 8, 8), np.float32)})
        cache.save("clip", CLIP, digest(path), {"features": rng.random((3, 5), np.float32)})
    cache.save("sam", SAM, "f" * 64, {"features": np.zeros(3, np.float32)})
    return folder, root, cache, images


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_report_groups_by_kind_and_model(filled, capsys):
    _, root, _, _ = filled
    assert main(["cache", "report", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert SAM in out and CLIP in out and "total: 5 files" in out
    assert main(["cache", "report", "--cache-dir", str(root), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    counts = {(r["kind"], r.get("model")): r["files"] for r in rows}
    assert counts[("sam", SAM)] == 3 and counts[("clip", CLIP)] == 2


def test_prune_by_model_and_age_with_a_dry_run(filled, capsys):
    _, root, cache, images = filled
    before = files_under(root)
    assert (
        main(["cache", "prune", "--cache-dir", str(root), "--model", "open_clip", "--dry-run"]) == 0
    )
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert files_under(root) == before

    assert main(["cache", "prune", "--cache-dir", str(root), "--model", "open_clip"]) == 0
    assert not cache.contains("clip", CLIP, digest(images[0]))
    assert cache.contains("sam", SAM, digest(images[0]))

    old = cache.path("sam", SAM, digest(images[1]))
    month_ago = time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    assert main(["cache", "prune", "--cache-dir", str(root), "--older-than", "30d"]) == 0
    assert not old.exists() and cache.contains("sam", SAM, digest(images[0]))
    assert "removed 1 files" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["cache", "prune"],
        ["cache", "prune", "--older-than", "soon"],
        ["cache", "import", "nowhere.tar"],
        ["cache", "export", "nowhere", "-o", "x.tar"],
        ["cache", "import", "ARCHIVE", "--max-size", "lots"],
    ],
)
def test_bad_input_is_one_line(filled, tmp_path, capsys, argv):
    _, root, _, _ = filled
    argv = [str(tmp_path / "x.tar") if a == "ARCHIVE" else a for a in argv]
    (tmp_path / "x.tar").write_bytes(b"")
    assert main([*argv, "--cache-dir", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("annotator: error:") and len(err.splitlines()) == 1


def test_export_then_import_copies_exactly_what_the_folder_needs(filled, tmp_path, capsys):
    folder, root, cache, images = filled
    archive = tmp_path / "subset.tar"
    assert main(["cache", "export", str(folder), "-o", str(archive), "--cache-dir", str(root)]) == 0
    assert "exported 4 files" in capsys.readouterr().err  # 2 images x 2 models; not the stranger
    laptop = tmp_path / "laptop"
    assert main(["cache", "import", str(archive), "--cache-dir", str(laptop)]) == 0
    assert "imported 4 files" in capsys.readouterr().err
    copied = files_under(laptop / "embeddings")
    original = files_under(root / "embeddings")
    assert len(copied) == 4 and all(original[name] == data for name, data in copied.items())
    source = cache.path("sam", SAM, digest(images[0]))
    target = ArrayCache(laptop / "embeddings").path("sam", SAM, digest(images[0]))
    assert int(target.stat().st_mtime) == int(source.stat().st_mtime)  # age survives the copy
    assert ArrayCache(laptop / "embeddings").load("clip", CLIP, digest(images[1])) is not None

    assert main(["cache", "import", str(archive), "--cache-dir", str(laptop)]) == 0
    assert "4 were already cached" in capsys.readouterr().err

    only_sam = tmp_path / "sam.tar.gz"
    argv = ["cache", "export", str(folder), "-o", str(only_sam), "--model", "sam-vit_b"]
    assert main([*argv, "--cache-dir", str(root)]) == 0
    with tarfile.open(only_sam) as tar:
        assert sum(n.startswith("embeddings/sam/") for n in tar.getnames()) == 2
        assert not any(n.startswith("embeddings/clip/") for n in tar.getnames())


def _good_npz(model_id: str) -> bytes:
    from annotator.cache import write_npz

    meta = json.dumps({"version": 1, "model_id": model_id}).encode()
    buffer = io.BytesIO()
    write_npz(buffer, {"__meta__": np.frombuffer(meta, np.uint8), "features": np.ones(4)})
    return buffer.getvalue()


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], manifest=True):
    with tarfile.open(path, "w") as tar:
        if manifest:
            meta = {"format": "annotator-cache-subset", "version": 1, "files": len(members)}
            data = json.dumps(meta).encode()
            info = tarfile.TarInfo("annotator-cache.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _valid_name(model_id: str = SAM, h: str = "a" * 64) -> str:
    from annotator.cache import model_folder

    return f"embeddings/sam/{model_folder(model_id)}/{h[:2]}/{h}.npz"


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _pickled() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.zeros(2, np.uint8), evil=np.array([{"a": 1}], dtype=object))
    return buffer.getvalue()


def _deflated() -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, features=np.zeros(1 << 20, np.uint8))
    return buffer.getvalue()


HOSTILE = {
    "traversal": [_file("../../evil.npz", b"x")],
    "absolute": [_file("/tmp/evil.npz", b"x")],
    "inside-then-out": [_file("embeddings/sam/m/aa/../../../../evil.npz", b"x")],
    "symlink": [_link(_valid_name(), "/etc/passwd")],
    "hardlink": [_link(_valid_name(), "annotator-cache.json", tarfile.LNKTYPE)],
    "folder": [(tarfile.TarInfo("embeddings/sam"), None)],
    "not-npz": [_file(_valid_name(), b"just bytes")],
    "pickle": [_file(_valid_name(), _pickled())],
    "deflated": [_file(_valid_name(), _deflated())],
    "wrong-model-folder": [_file(_valid_name(), _good_npz("another model"))],
    "wrong-prefix": [_file(_valid_name().replace("/aa/", "/bb/"), _good_npz(SAM))],
    "good-then-bad": [_file(_valid_name(), _good_npz(SAM)), _file("x/../../y.npz", b"x")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_whole(case, tmp_path, capsys):
    archive = tmp_path / "evil.tar"
    folder_entry = HOSTILE[case]
    for info, _ in folder_entry:
        if info.name == "embeddings/sam":
            info.type = tarfile.DIRTYPE
    _archive(archive, folder_entry)
    root = tmp_path / "deep" / "cache"
    assert main(["cache", "import", str(archive), "--cache-dir", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("annotator: error:") and len(err.splitlines()) == 1
    assert "nothing was imported" in err
    assert not (root / "embeddings").exists()
    assert list(root.iterdir()) == []  # the staging folder is gone too
    assert not (tmp_path / "evil.npz").exists() and not (tmp_path / "deep" / "evil.npz").exists()


def test_archives_that_are_not_ours_or_too_big_are_refused(tmp_path, capsys):
    root = tmp_path / "cache"
    plain = tmp_path / "plain.tar"
    _archive(plain, [_file(_valid_name(), _good_npz(SAM))], manifest=False)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(2048))
    truncated = tmp_path / "truncated.tar"
    good = tmp_path / "good.tar"
    _archive(good, [_file(_valid_name(), _good_npz(SAM))])
    truncated.write_bytes(good.read_bytes()[:1200])
    for path, flags in ((plain, []), (junk, []), (truncated, []), (good, ["--max-size", "100"])):
        assert main(["cache", "import", str(path), "--cache-dir", str(root), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("annotator: error:") and len(err.splitlines()) == 1, err
    assert not (root / "embeddings").exists()
    assert main(["cache", "import", str(good), "--cache-dir", str(root)]) == 0
    with zipfile.ZipFile(root / _valid_name()) as z:
        assert "features.npy" in z.namelist()
