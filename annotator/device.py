"""The one device choice: what `--device` (or the settings) names, checked before any model loads.

'auto' picks CUDA, then Apple's MPS, then the CPU. A name torch does not know, or a device this
machine does not have, is a one-line `AnnotatorError` rather than a traceback from deep in a model.
"""

from __future__ import annotations

import os
import platform
import re
import sys

from annotator.errors import AnnotatorError

_FORM = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,3})?)$")


def resolve_device(device: str | None) -> str:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' -> the torch device string to use."""
    text = (device or "auto").strip().lower()
    if not _FORM.match(text):
        raise AnnotatorError(
            f"unknown device {str(device)[:40]!r}: use auto, cpu, cuda, cuda:N or mps"
        )
    import torch

    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if text == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if has_mps else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AnnotatorError(f"device {text!r}: this machine has no usable CUDA GPU")
        index = int(text.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise AnnotatorError(
                f"device {text!r}: there are only {torch.cuda.device_count()} CUDA GPUs"
            )
    if text == "mps" and not has_mps:
        raise AnnotatorError("device 'mps': Apple's Metal backend is not available here")
    return text


def likely_device(device: str | None) -> str:
    """The device kind ('cpu' | 'cuda' | 'mps') `resolve_device` will most likely pick, without
    importing torch (the GUI thread asks it to offer the default weights before any model loads).

    A named device is taken at its word; for 'auto', torch is asked only if something already
    imported it, else an NVIDIA driver (Linux `/proc/driver/nvidia`, `nvcuda.dll` on Windows)
    means CUDA and Apple silicon means MPS. A guess that is wrong only changes which default
    weights are offered first; the engine still resolves the device itself.
    """
    text = (device or "auto").strip().lower()
    if text != "auto":
        kind = text.split(":")[0]
        return kind if kind in ("cpu", "cuda", "mps") else "cpu"
    if "torch" in sys.modules:
        try:
            return resolve_device("auto").split(":")[0]
        except AnnotatorError:  # pragma: no cover - 'auto' always resolves
            return "cpu"
    if os.path.exists("/proc/driver/nvidia/version"):
        return "cuda"
    windir = os.environ.get("WINDIR")
    if windir and os.path.exists(os.path.join(windir, "System32", "nvcuda.dll")):
        return "cuda"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "mps"
    return "cpu"
