"""Encoders' working memory bounded: per-token layers run on slices of their input.

Why: at 1,024 px the largest tensors of an encode are the hidden layer of the first stages' MLPs
(ConvNeXt's 4x-wide hidden layer over 256 x 256 positions is 134 MB, its activation another 134 MB)
and the qkv of Hiera's first windowed attention (150 MB). They exist for one layer each, but they
set the encode's peak, and a large image's working window (issue 26) is encoded on a laptop beside
the window, the pyramid's tiles and both models' weights: the peak RSS bound of 2 GB. A per-token
layer (an MLP of `Linear` layers and elementwise activations) gives each position's output from that
position alone, and a windowed attention gives each window's output from that window alone, so the
same layer on slices of 4,096 positions (or of windows) gives the same numbers, bit for bit (tested
for each encoder family: tests/models/test_lowmem.py), with each slice's hidden layer a fraction of
the whole one.

Only layers known to be per token are sliced: an MLP module whose every leaf is a `Linear`, a
`LayerNorm`, a dropout, an identity or an activation (so a `ConvMlp` of 1x1 convolutions on
channels-first input is left alone), and the windowed attentions of Hiera (transformers' SAM 2.1)
and of segment-anything's ViT, sliced over their first axis (the windows); a global attention has
one entry there and runs whole. The layers are patched per instance (`module.forward`), so the
state dict, the parameters and the reference pipelines that run the same modules are unchanged.
"""

from __future__ import annotations

import types

import torch
from torch import nn

# Positions per slice: the hidden layer of a ConvNeXt-Base first-stage MLP is then 8 MB (of 134).
CHUNK_ROWS = 4096

# Attention classes whose entries along the first axis (windows of one image) are independent.
WINDOWED_ATTENTION = {
    ("transformers.models.sam2.modeling_sam2", "Sam2MultiScaleAttention"),
    ("segment_anything.modeling.image_encoder", "Attention"),
}

_ELEMENTWISE = (nn.Linear, nn.LayerNorm, nn.Dropout, nn.Identity)


def _is_activation(module: nn.Module) -> bool:
    kind = type(module)
    if kind.__module__ == "torch.nn.modules.activation":
        return True
    name = kind.__name__.lower()
    parameter_free = not any(p.numel() for p in module.parameters())
    return parameter_free and (
        "gelu" in name or "activation" in name or name in ("silu", "relu", "swish", "tanh")
    )


def is_per_token_mlp(module: nn.Module) -> bool:
    """True for a module made only of `Linear` layers (one at least), layer norms, dropouts,
    identities and activations: it maps each position's last axis alone."""
    containers = (nn.ModuleList, nn.ModuleDict, nn.Sequential)  # an empty one has no layer
    leaves = [
        m
        for m in module.modules()
        if not any(True for _ in m.children()) and not isinstance(m, containers)
    ]
    if not leaves or not any(isinstance(m, nn.Linear) for m in leaves):
        return False
    return all(isinstance(m, _ELEMENTWISE) or _is_activation(m) for m in leaves)


def _sliced_rows(module: nn.Module, rows: int) -> None:
    forward = type(module).forward

    def sliced(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[-1] == 0:
            return forward(self, x)
        count = x.numel() // x.shape[-1]
        if count <= rows:
            return forward(self, x)
        flat = x.reshape(count, x.shape[-1])
        out = None
        for start in range(0, count, rows):
            part = forward(self, flat[start : start + rows])
            if out is None:
                out = part.new_empty((count, part.shape[-1]))
            out[start : start + rows] = part
            del part
        return out.reshape(*x.shape[:-1], out.shape[-1])

    module.forward = types.MethodType(sliced, module)


def _sliced_windows(module: nn.Module, rows: int) -> None:
    forward = type(module).forward

    def sliced(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        windows = hidden_states.shape[0]
        per_window = hidden_states[0].numel() // max(1, hidden_states.shape[-1])
        if args or windows <= 1 or windows * per_window <= rows:
            return forward(self, hidden_states, *args, **kwargs)
        step = max(1, rows // max(1, per_window))
        out = None
        for start in range(0, windows, step):
            part = forward(self, hidden_states[start : start + step], **kwargs)
            if not isinstance(part, torch.Tensor):  # an attention that also returns weights
                return forward(self, hidden_states, **kwargs)
            if out is None:
                out = part.new_empty((windows, *part.shape[1:]))
            out[start : start + step] = part
            del part
        return out

    module.forward = types.MethodType(sliced, module)


def _per_block(model: nn.Module):
    """(module, how) for each layer sliced here: a windowed attention or a per-token MLP."""
    for name, module in model.named_modules():
        kind = (type(module).__module__, type(module).__name__)
        if kind in WINDOWED_ATTENTION:
            yield module, _sliced_windows
        elif name.rsplit(".", 1)[-1] == "mlp" and is_per_token_mlp(module):
            yield module, _sliced_rows


def add_yield_points(model: nn.Module) -> int:
    """A `preempt.model_yield_point` before each layer `slice_per_token_layers` slices (one or
    two per encoder block): an encode inside `interruptible(..., inside_models=True)` gives way to
    a click within one block. Elsewhere a yield point does nothing. Returns how many. Idempotent."""
    from annotator.preempt import model_yield_point

    added = 0
    for module, _how in _per_block(model):
        if not getattr(module, "_annotator_yields", False):
            module.register_forward_pre_hook(lambda _module, _args: model_yield_point())
            module._annotator_yields = True
            added += 1
    return added


def slice_per_token_layers(model: nn.Module, rows: int = CHUNK_ROWS) -> int:
    """Patch `model`'s per-token MLPs and windowed attentions to run on slices of `rows`
    positions when their input is larger; returns how many layers were patched. Idempotent."""
    patched = 0
    for module, how in _per_block(model):
        if not getattr(module, "_annotator_sliced", False):
            how(module, rows)
            module._annotator_sliced = True
            patched += 1
    return patched
