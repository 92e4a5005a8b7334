"""Building an open_clip model from a local weights file without holding it twice.

Why a module of its own: how a weights file becomes a model (built on the meta device, the file's
tensors assigned to it, open_clip's own format conversions) decides the memory and the time a start
costs (issue 26: benchmarks/bench_large_image.py, benchmarks/bench_clip_load.py); `clip.py` runs
the model, `clip_config.py` reads configs.
"""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import open_clip
import open_clip.factory
import torch
from open_clip.factory import load_checkpoint
from open_clip.transform import merge_preprocess_dict

from annotator.errors import CheckpointError

_BYTES_PER_PARAM = 2  # weights may be stored in half precision: the smallest a parameter can take


def check_parameter_count(config: Path, name: str, weights: Path) -> None:
    """Build the model on the meta device (no memory), count its parameters and refuse it when the
    weights file is too small to hold them: a config claiming a huge model next to a small file is
    refused before open_clip allocates it."""
    try:
        size = weights.stat().st_size
    except OSError as e:
        raise CheckpointError(
            f"{weights}: cannot read the CLIP weights file ({e.strerror})"
        ) from None
    try:
        # the context puts every tensor made while building on the meta device; device="meta"
        # keeps open_clip's final `.to(device)` there too
        with quiet_open_clip(), torch.device("meta"):
            meta = open_clip.create_model(name, pretrained=None, device="meta")
    except Exception as e:  # the config is invalid in a way the bounds do not catch
        raise CheckpointError(f"{config}: invalid CLIP model config ({one_line(e)})") from None
    count = sum(p.numel() for p in meta.parameters())
    del meta
    needed = count * _BYTES_PER_PARAM
    if needed > size:
        raise CheckpointError(
            f"{config}: the config describes a model of {count:,} parameters (at least "
            f"{needed / 1e6:.1f} MB) but {weights.name} holds only {size / 1e6:.1f} MB"
        )


class quiet_open_clip:
    """Silence open_clip's 'No pretrained weights loaded' warning for the meta-device count."""

    def __enter__(self) -> None:
        import logging

        self._logger = logging.getLogger()
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


def create_from_file(
    name: str,
    checkpoint: str,
    weights: Path,
    config: Path | None,
    device: str,
    preprocess: dict | None = None,
) -> torch.nn.Module:
    """Build `name` and load a local weights file, with load failures turned into one-line
    CheckpointErrors. The model is built on the meta device (`build_uninitialised`) and the file is
    loaded by open_clip's own `load_checkpoint` (strict, with its format conversions) with its
    tensors assigned to the model (`load_assigned`): the weights are in memory once. Where that
    cannot be done exactly, `open_clip.create_model` does both as usual."""
    try:
        model = build_uninitialised(name, preprocess)
        if model is None:
            return open_clip.create_model(
                name,
                pretrained=checkpoint,
                device=device,
                force_preprocess_cfg=preprocess or None,
                pretrained_text=False,  # never fetch HF text weights for a config-built model
            )
        load_assigned(model, checkpoint)
        return model.to(device)
    except Exception as e:  # torch/pickle/safetensors/timm raise many types
        what = f"model config {config}" if config is not None else f"CLIP model {name!r}"
        raise CheckpointError(f"{weights}: cannot load it as {what} ({one_line(e)})") from None


def tag_preprocess(tag_cfg: dict) -> dict:
    """The preprocessing a pretrained tag sets, as `open_clip.create_model` merges it (its
    PreprocessCfg fields; the size stays the built tower's, as open_clip resets it)."""
    merged = merge_preprocess_dict({}, tag_cfg)
    merged.pop("size", None)
    return merged


def create_from_tag(name: str, tag: str, device: str) -> torch.nn.Module:
    """`open_clip.create_model(name, pretrained=tag)` without its random initialisation and with
    the weights in memory once: open_clip's own download (`download_pretrained`, into its cache)
    gives the file, which is loaded as a local file is (`build_uninitialised` + `load_assigned`)
    with the tag's preprocessing. Why: the default CLIP reaches every user this way, and through
    `create_model` it costs the random draw and twice the weights at the peak (issue 26). Download
    failures raise as open_clip's do (the caller words them); a tag whose model cannot be built
    that way takes `create_model`."""
    tag_cfg = open_clip.get_pretrained_cfg(name, tag)
    preprocess = tag_preprocess(tag_cfg) if tag_cfg else None
    model = build_uninitialised(name, preprocess) if tag_cfg else None
    if model is None:
        return open_clip.create_model(name, pretrained=tag, device=device)
    checkpoint = open_clip.download_pretrained(tag_cfg)
    if not checkpoint:
        raise RuntimeError(f"open_clip has no download for {name}/{tag}")
    try:
        load_assigned(model, checkpoint)
    except Exception as e:  # the downloaded file does not fit the model
        raise CheckpointError(
            f"{checkpoint}: cannot load it as CLIP model {name!r} ({one_line(e)})"
        ) from None
    return model.to(device)


def build_uninitialised(name: str, preprocess: dict | None) -> torch.nn.Module | None:
    """`name` built on the meta device with its causal masks made on the CPU, or None when the
    model holds state that the checkpoint does not (anything but open_clip's causal `attn_mask`).

    Why: the usual build draws random weights for every parameter, which the checkpoint then
    overwrites: convnext_base_w from a local file takes 1.95 s that way and 0.76 s without the
    random draw (benchmarks/bench_clip_load.py, 2 cores); and it holds the built model and the
    loaded file at once (issue 26: 2x the weights at the peak). On the meta device nothing is
    allocated; `load_assigned` gives every parameter and persistent buffer the file's tensor (a
    key the file lacks is an error, so no meta tensor survives); the causal masks, which are not
    saved, are made exactly as open_clip builds them."""
    with quiet_open_clip(), torch.device("meta"):
        model = open_clip.create_model(
            name,
            pretrained=None,
            device="meta",
            force_preprocess_cfg=preprocess or None,
            pretrained_text=False,
        )
    saved = set(model.state_dict())
    unsaved = [n for n, _ in model.named_buffers() if n not in saved]
    if any(n.rsplit(".", 1)[-1] != "attn_mask" for n in unsaved):
        return None
    for buffer_name in unsaved:
        owner_name, _, attr = buffer_name.rpartition(".")
        owner = model.get_submodule(owner_name)
        meta = getattr(owner, attr)
        if meta.ndim != 2 or meta.shape[0] != meta.shape[1] or not meta.is_floating_point():
            return None
        # open_clip's build_causal_mask: -inf above the diagonal; set through the module, so the
        # buffer stays registered as not persistent
        mask = torch.full(tuple(meta.shape), float("-inf"), dtype=meta.dtype, device="cpu")
        setattr(owner, attr, mask.triu_(1))
    return model


def load_assigned(model: torch.nn.Module, checkpoint: str) -> None:
    """open_clip's `load_checkpoint` (strict, its conversions of other layouts) into a model built
    on the meta device, the file's tensors taking the parameters' places instead of being copied
    into them.

    Each tensor is first given the dtype the model declares (a half-precision file gives a float32
    model, as a copy into the built model would) and made contiguous, so the model is the one the
    copy gives, bit for bit (tests/models/test_clip.py compares them)."""
    own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    load = model.load_state_dict

    def assign(state_dict, strict: bool = True, assign: bool = False):
        for key in list(state_dict):  # in place: a converted tensor's original is freed at once
            target, value = own.get(key), state_dict[key]
            if target is not None and value.dtype != target.dtype:
                value = value.to(target.dtype)
            state_dict[key] = value.contiguous()
        return load(state_dict, strict=strict, assign=True)

    model.load_state_dict = assign  # what load_checkpoint calls; the instance's own, for this load
    try:
        with mock.patch.object(open_clip.factory, "load_state_dict", mapped_state_dict):
            load_checkpoint(model, checkpoint, strict=True, weights_only=True, device="cpu")
    finally:
        del model.load_state_dict
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # strict loading leaves none; a guard, since a meta tensor would fail far later
        raise RuntimeError(f"{len(left)} tensors not in the weights file, e.g. {left[0]}")


def mapped_state_dict(checkpoint_path: str, device: str = "cpu", weights_only: bool = True) -> dict:
    """open_clip's `load_state_dict` for a torch file, its tensors mapped from the file
    (`torch.load(mmap=True)`) instead of read into memory; other files go to open_clip's own.

    Why: with the tensors assigned to the model (`load_assigned`), a mapped tensor is read from
    the page cache only when a forward first touches it. The CLIP text tower runs only while the
    vocabulary's text index is built; once that index is cached (every start after the first) its
    pages are never touched and never count in the process's memory: ~350 MB of the default
    `convnext_base_w` (issue 26's 2 GB bound, benchmarks/bench_large_image.py). The mapping is
    private (copy-on-write) and the weights download replaces a file by renaming a new one over
    it (`os.replace`), so a mapped file is never rewritten under a running model. A file that
    cannot be mapped (torch's legacy, non-zip format) is read as before."""
    if str(checkpoint_path).endswith((".safetensors", ".npz", ".npy")):
        return _OPEN_CLIP_LOAD_STATE_DICT(checkpoint_path, device=device, weights_only=weights_only)
    try:
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise
        return _OPEN_CLIP_LOAD_STATE_DICT(checkpoint_path, device=device, weights_only=weights_only)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]  # a training checkpoint, as open_clip unwraps it
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise RuntimeError("the file holds no state dict")
    if next(iter(checkpoint)).startswith("module"):  # saved from DataParallel, as open_clip strips
        checkpoint = {key[7:]: value for key, value in checkpoint.items()}
    return checkpoint


_OPEN_CLIP_LOAD_STATE_DICT = open_clip.factory.load_state_dict


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line; torch's state-dict errors (one line per problem, each
    listing many keys) are summarised as counts plus the first key."""
    message = str(error)
    if "Error(s) in loading state_dict" in message:
        counts, first = [], ""
        for label, pattern in (
            ("missing", r"Missing key\(s\) in state_dict: (.*)"),
            ("unexpected", r"Unexpected key\(s\) in state_dict: (.*)"),
        ):
            found = re.search(pattern, message)
            if found:
                keys = re.findall(r'"([^"]+)"', found.group(1))
                counts.append(f"{len(keys)} {label} tensors")
                first = first or keys[0]
        sizes = re.findall(r"size mismatch for ([^:]+):", message)
        if sizes:
            counts.append(f"{len(sizes)} tensors of another shape")
            first = first or sizes[0]
        if counts:
            return f"{', '.join(counts)}, e.g. {first}"
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    text = text or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
