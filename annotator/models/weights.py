"""Known model weights: where they come from, how big they are, their sha256; download + verify.

A registry dict instead of branches: the CLI (`annotator weights list|download|verify`) and the
engine look names up here. Downloads stream into `<file>.part` (resumed with an HTTP Range
request when one exists), are checked against the published sha256 and then renamed into place
atomically, so a half-written file never looks like a checkpoint.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from annotator import families
from annotator.cache import default_cache_dir
from annotator.errors import WeightsError
from annotator.hashing import sha256_file
from annotator.models.weight_sizes import APPROX_SIZE, size_label

CHUNK = 1 << 20
USER_AGENT = "annotator/0.1 (+weights download)"
SAM_FLAG = "--sam-checkpoint PATH"
CLIP_FLAG = "--clip-weights PATH"
CHECKPOINT_FLAG = "--checkpoint PATH"
# Families whose weights are a transformers folder (config.json + model.safetensors).
FOLDER_KINDS = tuple(name for name, f in families.FAMILIES.items() if f.folder)

ProgressCallback = Callable[[int, int], None]  # (bytes done, total bytes or 0 when unknown)


@dataclass(frozen=True)
class KnownWeights:
    """One downloadable checkpoint. `size`/`sha256` are None where no published value exists."""

    name: str
    kind: str  # "sam" | "clip" | a segmenter family of FOLDER_KINDS
    url: str  # the file's URL; for a folder, the URL prefix of its `files`
    filename: str  # file (or folder) name in the cache directory
    size: int | None
    sha256: str | None
    description: str
    files: tuple[str, ...] = ()  # a transformers folder: its files, fetched one by one
    approx_size: int | None = None  # estimated from the architecture: shown, never checked

    @property
    def size_label(self) -> str | None:
        return size_label(self.size, self.approx_size)  # "375 MB", "≈156 MB" or None

    @property
    def flag(self) -> str:
        """The command-line flag that takes a local copy of this file instead."""
        if self.kind in FOLDER_KINDS:
            return CHECKPOINT_FLAG
        return SAM_FLAG if self.kind == "sam" else CLIP_FLAG

    @property
    def is_folder(self) -> bool:
        return bool(self.files)


_SAM_BASE = "https://dl.fbaipublicfiles.com/segment_anything/"
_CLIP_HF = (
    "https://huggingface.co/laion/CLIP-convnext_base_w-laion2B-s13B-b82K-augreg/resolve/main/"
)

# sha256 and sizes of the official SAM files: the values published with the checkpoints and
# used by many downstream projects (e.g. micro-sam's pooch registry).
KNOWN: dict[str, KnownWeights] = {
    w.name: w
    for w in (
        KnownWeights(
            name="sam_vit_b",
            kind="sam",
            url=_SAM_BASE + "sam_vit_b_01ec64.pth",
            filename="sam_vit_b_01ec64.pth",
            size=375_042_383,
            sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            description="Segment Anything ViT-B (official, 91M parameters; fastest on a CPU)",
        ),
        KnownWeights(
            name="sam_vit_l",
            kind="sam",
            url=_SAM_BASE + "sam_vit_l_0b3195.pth",
            filename="sam_vit_l_0b3195.pth",
            size=1_249_524_607,
            sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            description="Segment Anything ViT-L (official, 308M parameters)",
        ),
        KnownWeights(
            name="sam_vit_h",
            kind="sam",
            url=_SAM_BASE + "sam_vit_h_4b8939.pth",
            filename="sam_vit_h_4b8939.pth",
            size=2_564_550_879,
            sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            description="Segment Anything ViT-H (official, 636M parameters; best masks)",
        ),
        # open_clip's hub file; no published size/sha256 offline: None (never invented).
        KnownWeights(
            name="clip_convnext_base_w_laion2b_s13b_b82k_augreg",
            kind="clip",
            url=_CLIP_HF + "open_clip_pytorch_model.bin",
            filename="clip_convnext_base_w_laion2b_s13b_b82k_augreg.bin",
            size=None,
            sha256=None,
            description="open_clip convnext_base_w, laion2b_s13b_b82k_augreg (default CLIP)",
            approx_size=APPROX_SIZE["clip_convnext_base_w_laion2b_s13b_b82k_augreg"],
        ),
    )
}
_HF_FILES = ("config.json", "model.safetensors")


def _hf(name: str, kind: str, repo: str, description: str) -> KnownWeights:
    """A transformers model repository on the hub; no size/sha256 offline: Content-Length check."""
    return KnownWeights(
        name=name,
        kind=kind,
        url=f"https://huggingface.co/{repo}/resolve/main/",
        filename=name,
        size=None,
        sha256=None,
        description=description,
        files=_HF_FILES,
        approx_size=APPROX_SIZE[name],
    )


_FB = "facebook/sam2.1-hiera-"
for _w in (
    _hf("sam2.1_hiera_tiny", "sam2", "facebook/sam2.1-hiera-tiny", "SAM 2.1 Hiera-T (CPU default)"),
    _hf("sam2.1_hiera_small", "sam2", "facebook/sam2.1-hiera-small", "SAM 2.1 Hiera-S"),
    _hf("sam2.1_hiera_base_plus", "sam2", _FB + "base-plus", "SAM 2.1 Hiera-B+ (CUDA default)"),
    _hf("sam2.1_hiera_large", "sam2", "facebook/sam2.1-hiera-large", "SAM 2.1 Hiera-L"),
    _hf("edgetam", "edgetam", "yonigozlan/EdgeTAM-hf", "EdgeTAM (RepViT-M1 trunk; fastest)"),
    _hf("sam_hq_vit_b", "sam_hq", "syscv-community/sam-hq-vit-base", "HQ-SAM ViT-B"),
    _hf("sam_hq_vit_l", "sam_hq", "syscv-community/sam-hq-vit-large", "HQ-SAM ViT-L"),
    _hf("sam_hq_vit_h", "sam_hq", "syscv-community/sam-hq-vit-huge", "HQ-SAM ViT-H"),
):
    KNOWN[_w.name] = _w

DEFAULT_SAM = "sam_vit_b"
# Per-device segmenter defaults (docs/adr/0006-segmenter-defaults.md); a user's choice wins.
DEFAULT_SEGMENTER = {
    "cpu": "sam2.1_hiera_tiny",
    "mps": "sam2.1_hiera_tiny",
    "cuda": "sam2.1_hiera_base_plus",
}
DEFAULT_BY_FAMILY = {name: f.default_weights for name, f in families.FAMILIES.items()}


def default_segmenter(device: str, family: str | None = None) -> str:
    """Registry name of the default segmenter weights for a device (and a family, if chosen).

    A chosen family gets its CPU-friendly size on a CPU; SAM 2.1 on CUDA gets base+.
    """
    kind = str(device).split(":")[0]
    if family is None or (family == "sam2" and kind == "cuda"):
        return DEFAULT_SEGMENTER.get(kind, DEFAULT_SEGMENTER["cpu"])
    return DEFAULT_BY_FAMILY[family]


def is_cached(name: str) -> bool:
    """Whether `name` is in the weights cache in full (not verified: `resolve` does that)."""
    w = known(name)
    path = cache_dir() / w.filename
    if w.is_folder:
        return all((path / f).is_file() for f in w.files)
    return path.is_file()


def default_choice(device: str) -> str:
    """The segmenter weights used when the user chose none: the device's default (ADR 6), except
    that someone who has only the previous default (SAM 1 ViT-B) downloaded keeps using it rather
    than being sent to download another model."""
    name = default_segmenter(device)
    if not is_cached(name) and is_cached("sam_vit_b"):
        return "sam_vit_b"
    return name


DEFAULT_CLIP = "clip_convnext_base_w_laion2b_s13b_b82k_augreg"


class DownloadCancelled(WeightsError):
    """The caller's `cancel()` returned True; the partial file is kept for a later resume."""


def cache_dir() -> Path:
    """Where downloaded weights live: `$ANNOTATOR_CACHE/weights`, else the user cache dir."""
    return default_cache_dir() / "weights"


def list_known() -> list[KnownWeights]:
    """Every registered checkpoint: segmenters first (SAM 1, then the others), CLIP last."""
    return sorted(KNOWN.values(), key=lambda w: (w.kind == "clip", w.kind != "sam", w.name))


def known(name: str) -> KnownWeights:
    """Registry lookup with a `WeightsError` that lists the valid names."""
    try:
        return KNOWN[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(sorted(KNOWN))}") from None


def cached_path(name: str) -> Path:
    """Where `name` is (or would be) stored in the cache."""
    return cache_dir() / known(name).filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _stamped_sha256(path: Path) -> str:
    """sha256 of a cached file, remembered next to it while its size and mtime do not change."""
    st = path.stat()
    stamp = _stamp_path(path)
    try:
        data = json.loads(stamp.read_text())
        if data["size"] == st.st_size and data["mtime_ns"] == st.st_mtime_ns:
            return str(data["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = sha256_file(path)
    try:
        stamp.write_text(
            json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest})
        )
    except OSError:
        pass  # read-only cache: just hash again next time
    return digest


def verify(path: str | Path, name: str) -> bool:
    """True when `path` has the published size and sha256 of `name` (what is known of them)."""
    w = known(name)
    path = Path(path)
    if not path.is_file():
        return False
    if w.size is not None and path.stat().st_size != w.size:
        return False
    if w.sha256 is not None:
        return sha256_file(path) == w.sha256
    return True


def known_name_for(path: str | Path) -> str | None:
    """Registry name of the file at `path` (size, then sha256), or None for unknown weights.

    Used to warn that random or unfamiliar weights make quality numbers meaningless.
    """
    path = Path(path)
    if not path.is_file():
        return None
    size = path.stat().st_size
    candidates = [w for w in KNOWN.values() if w.size == size]
    digest: str | None = None
    for w in candidates:
        if w.sha256 is None:
            return w.name
        digest = digest or sha256_file(path)
        if digest == w.sha256:
            return w.name
    return None


def resolve(name: str) -> Path:
    """The cached, verified file for `name`; `WeightsError` saying how to get it otherwise."""
    w = known(name)
    path = cache_dir() / w.filename
    if w.is_folder:
        missing = [f for f in w.files if not (path / f).is_file()]
        if missing:
            raise WeightsError(
                f"{name} is not downloaded ({path} lacks {', '.join(missing)}); run "
                f"`annotator weights download {name}` or pass a local folder with {w.flag}"
            )
        return path
    if not path.is_file():
        raise WeightsError(
            f"{name} is not downloaded ({path}); run `annotator weights download {name}` "
            f"or pass a local file with {w.flag}"
        )
    if w.size is not None and path.stat().st_size != w.size:
        raise WeightsError(
            f"{path} has {path.stat().st_size} bytes, expected {w.size}; delete it and run "
            f"`annotator weights download {name}`"
        )
    if w.sha256 is not None and _stamped_sha256(path) != w.sha256:
        raise WeightsError(
            f"{path} does not match the published sha256 of {name}; delete it and run "
            f"`annotator weights download {name}`"
        )
    return path


def download_known(
    name: str,
    progress: bool = True,
    progress_cb: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Download a registered checkpoint into the cache (a no-op when it is already there).

    A transformers folder is fetched file by file into `<cache>/<name>/`, each resumable.
    """
    w = known(name)
    if not w.is_folder:
        return download(name, progress=progress, progress_cb=progress_cb, cancel=cancel)
    folder = cache_dir() / w.filename
    folder.mkdir(parents=True, exist_ok=True)
    for filename in w.files:
        if (folder / filename).is_file():
            continue  # complete: only a finished download is renamed into place
        download(
            w.url + filename,
            dest=folder,
            progress=progress,
            progress_cb=progress_cb,
            cancel=cancel,
        )
    return folder


def _content_range_start(value: str | None) -> int | None:
    """First byte of `Content-Range: bytes START-END/TOTAL`, None when absent/unparsable."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def download(
    name_or_url: str,
    dest: str | Path | None = None,
    progress: bool = True,
    expected_sha256: str | None = None,
    *,
    progress_cb: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download a registered name or any http(s)/file URL to `dest` and return its path.

    `dest` defaults to the cache directory (a directory `dest` gets the file name). A `.part`
    file left by an interrupted download is resumed with a Range request; a server that ignores
    Range is read again from the start. The sha256 (given, or the registry's) is checked before
    the atomic rename; a mismatch deletes the download and raises `WeightsError`.
    """
    entry = KNOWN.get(name_or_url)
    if entry is not None:
        url = entry.url
        filename = entry.filename
        expected_sha256 = expected_sha256 or entry.sha256
        expected_size = entry.size
        flag = entry.flag
    else:
        url = name_or_url
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https", "file"):
            raise WeightsError(
                f"{url!r} is neither a known weights name ({', '.join(sorted(KNOWN))}) "
                "nor an http(s):// or file:// URL"
            )
        filename = Path(urllib.parse.unquote(parsed.path)).name or "download.bin"
        expected_size = None
        flag = f"{SAM_FLAG} or {CLIP_FLAG}"
    expected_sha256 = expected_sha256.lower() if expected_sha256 else None

    target = Path(dest) if dest is not None else cache_dir()
    if dest is None or target.is_dir():
        target = target / filename
    if target.is_file() and (
        (expected_sha256 is not None and _stamped_sha256(target) == expected_sha256)
        or (expected_sha256 is None and entry is not None and verify(target, entry.name))
    ):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")

    def fail(reason: str) -> WeightsError:
        return WeightsError(
            f"cannot download {url}: {reason}; check the network, or fetch the file "
            f"elsewhere and pass it with {flag}"
        )

    hasher = hashlib.sha256()
    for attempt in range(2):
        start = part.stat().st_size if part.is_file() else 0
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if start:
            req.add_header("Range", f"bytes={start}-")
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start and attempt == 0:
                part.unlink(missing_ok=True)  # our partial file is not a prefix: start over
                continue
            raise fail(f"HTTP {exc.code} {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise fail(" ".join(str(reason).split()) or type(exc).__name__) from exc

        with resp:
            status = getattr(resp, "status", None) or 200  # file:// answers without a status
            length = resp.headers.get("Content-Length")
            resumed = bool(start) and status == 206
            if resumed and _content_range_start(resp.headers.get("Content-Range")) not in (
                start,
                None,
            ):
                part.unlink(missing_ok=True)  # answered another range than asked: start over
                continue
            if resumed:
                mode, done = "ab", start
                with open(part, "rb") as f:
                    while chunk := f.read(CHUNK):
                        hasher.update(chunk)
            else:  # a fresh download, or a server that ignored Range: from the start
                mode, done = "wb", 0
            total = done + int(length) if length is not None else (expected_size or 0)

            bar = tqdm(
                total=total or None,
                initial=done,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=filename,
                disable=not progress,
                leave=False,
            )
            try:
                with open(part, mode) as out:
                    if progress_cb is not None:
                        progress_cb(done, total)
                    while True:
                        if cancel is not None and cancel():
                            raise DownloadCancelled(
                                f"download of {url} cancelled after {done} bytes; "
                                "running it again resumes"
                            )
                        try:
                            chunk = resp.read(CHUNK)
                        except (OSError, http.client.HTTPException) as exc:
                            raise fail(
                                f"interrupted after {done} bytes ({exc}); running it again resumes"
                            ) from exc
                        if not chunk:
                            break
                        out.write(chunk)
                        hasher.update(chunk)
                        done += len(chunk)
                        bar.update(len(chunk))
                        if progress_cb is not None:
                            progress_cb(done, total)
            finally:
                bar.close()
        break
    else:  # pragma: no cover - the second attempt never sends a Range header
        raise fail("the server answered a byte range that was not asked for")

    if total and done < total:
        raise fail(f"interrupted after {done} of {total} bytes; running it again resumes")
    if expected_size is not None and done != expected_size:
        part.unlink(missing_ok=True)
        raise WeightsError(
            f"downloaded {url} has {done} bytes, expected {expected_size}; the file was deleted"
        )
    digest = hasher.hexdigest()
    if expected_sha256 is not None and digest != expected_sha256:
        part.unlink(missing_ok=True)
        raise WeightsError(
            f"downloaded {url} has sha256 {digest}, expected {expected_sha256}; "
            "the file was deleted, try again"
        )
    os.replace(part, target)
    st = target.stat()
    try:
        _stamp_path(target).write_text(
            json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest})
        )
    except OSError:
        pass
    return target
