"""Building an open_clip model from a local weights file without holding it twice.

Why a module of its own: how a weights file becomes a model (built on the meta device, the file's
tensors assigned to it, open_clip's own format conversions) decides the memory and the time a start
costs (issue 26: benchmarks/bench_large_image.py, benchmarks/bench_clip_load.py); `clip.py` runs
the model, `clip_config.py` reads configs.
"""

from __future__ import annotations

import re
from pathlib import Path

import open_clip
import torch
from open_clip.factory import load_checkpoint

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
    CheckpointErrors. The model is built without initialising it (`build_uninitialised`), then the
    file is loaded by open_clip's own `load_checkpoint` (strict, with its format conversions);
    where that cannot be done exactly, `open_clip.create_model` does both as usual."""
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
        load_checkpoint(model, checkpoint, strict=True, weights_only=True, device="cpu")
        return model.to(device)
    except Exception as e:  # torch/pickle/safetensors/timm raise many types
        what = f"model config {config}" if config is not None else f"CLIP model {name!r}"
        raise CheckpointError(f"{weights}: cannot load it as {what} ({one_line(e)})") from None


def build_uninitialised(name: str, preprocess: dict | None) -> torch.nn.Module | None:
    """`name` built on the meta device and given uninitialised CPU memory, or None when the model
    holds state that the checkpoint does not (anything but open_clip's causal `attn_mask`).

    Why: the usual build draws random weights for every parameter, which the checkpoint then
    overwrites: convnext_base_w from a local file takes 1.95 s that way and 0.76 s this way
    (benchmarks/bench_clip_load.py, 2 cores). Every parameter and persistent buffer is then
    written by the strict load (a key it lacks is an error, so nothing uninitialised survives);
    the causal masks, which are not saved, are rebuilt exactly as open_clip builds them."""
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
    model.to_empty(device="cpu")
    for buffer_name in unsaved:
        owner, _, attr = buffer_name.rpartition(".")
        mask = getattr(model.get_submodule(owner), attr)
        if mask.ndim != 2 or mask.shape[0] != mask.shape[1] or not mask.is_floating_point():
            return None
        mask.fill_(float("-inf"))  # open_clip's build_causal_mask: -inf above the diagonal
        mask.triu_(1)
    return model


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
