"""Reading a SAM checkpoint file safely: every failure one line, sizes bounded before anything is built.

Why a module of its own: a checkpoint is data from a file (a truncated download, a pickle with
code, a stride-0 tensor declaring gigabytes); these checks are what stands between it and torch.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from annotator.errors import CheckpointError
from annotator.models.sam_arch import MAX_GRID, MAX_IMAGE_SIZE, SamArch


def one_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's message on one line, cut to `limit`: a load error is one line for the user."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with every failure turned into a one-line `CheckpointError`."""
    if not path.exists():
        raise CheckpointError(f"SAM checkpoint {path}: file not found")
    if not path.is_file():
        raise CheckpointError(f"SAM checkpoint {path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"SAM checkpoint {path}: the file is empty")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here (RuntimeError, IndexError, ...)
        msg = one_line(exc)
        if isinstance(exc, pickle.UnpicklingError) and "weights only" in msg.lower():
            raise CheckpointError(
                f"SAM checkpoint {path}: holds Python objects besides tensors; only plain "
                "state dicts are loaded (weights_only)"
            ) from exc
        with open(path, "rb") as f:
            head = f.read(4)
        # zip (current torch format) or a legacy torch pickle that torch cannot finish reading
        if head.startswith(b"PK") or head.startswith(b"\x80\x02\x8a"):
            raise CheckpointError(
                f"SAM checkpoint {path}: truncated or corrupt file (an interrupted download?): {msg}"
            ) from exc
        raise CheckpointError(
            f"SAM checkpoint {path}: not a PyTorch checkpoint ({type(exc).__name__}: {msg})"
        ) from exc
    return unwrap_state_dict(obj, str(path))


def unwrap_state_dict(obj: object, where: str) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or one wrapped under "model"/"state_dict" (or "module." keys)."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(
            isinstance(k, str) and k.startswith("image_encoder.") for k in obj
        ):
            inner = next((obj[k] for k in ("model", "state_dict") if k in obj), None)
            if isinstance(inner, Mapping):
                obj = inner
                continue
        break
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"SAM checkpoint {where}: holds a {type(obj).__name__}, not a state dict"
        )
    keys = [k for k in obj if isinstance(k, str)]
    if keys and all(k.startswith("module.") for k in keys):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def hash_state_dict(sd: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, shapes and bytes: an identity for weights that never were a file."""
    h = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key].detach().cpu().contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_bounds(sd: Mapping[str, torch.Tensor], arch: SamArch, where: str, file_size: int | None):
    """Refuse sizes no real SAM has, and tensors that hold fewer bytes than they declare."""
    if arch.grid > MAX_GRID or arch.img_size > MAX_IMAGE_SIZE or arch.grid < 1:
        raise CheckpointError(
            f"SAM checkpoint {where}: declares a {arch.grid}x{arch.grid} grid at "
            f"{arch.img_size} px (at most {MAX_GRID} and {MAX_IMAGE_SIZE}): refused"
        )
    declared = 0
    for key, t in sd.items():
        declared += t.numel() * t.element_size()
        if t.numel() and any(st == 0 and n > 1 for st, n in zip(t.stride(), t.shape, strict=True)):
            raise CheckpointError(
                f"SAM checkpoint {where}: {key} is a broadcast (stride-0) tensor of shape "
                f"{list(t.shape)}, not stored weights: refused"
            )
    if file_size is not None and declared > file_size:
        raise CheckpointError(
            f"SAM checkpoint {where}: declares {declared} bytes of tensors in a {file_size}-byte "
            "file: refused"
        )
