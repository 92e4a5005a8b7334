"""Numeric precision per model part: what this machine does natively, what `auto` picks, and how.

`--precision auto|fp32|bf16|int8` (`ModelSpec.precision`) is resolved once per engine into a
`Plan`: one option per part (`PARTS`: the segmenter's image encoder, the CLIP image trunk, the
CLIP text encoder, the prompt decoders). `auto` looks the machine's `Capability` up in `AUTO`, a
table written from measurements (docs/adr/0025-precision-by-measurement.md), and applies an option
only where `EQUIVALENT` lists it for the loaded kind: the options
`tests/models/test_precision_equivalence.py` proves equivalent to fp32 on real photos (feature cosine >= 0.9999, masks IoU >= 0.99, the same top-1 label). A forced
`bf16`/`int8` applies to the encoders whatever the hardware (an emulated bf16 runs, slowly, so a
user can check the cost); the decoders always stay fp32 (a click's decode is milliseconds).

Options are applied to the loaded modules in place (`apply_segmenter`, `apply_clip`):

- `bf16`: the part's heavy submodules run under `torch.autocast(bfloat16)` (oneDNN: bf16 inputs,
  fp32 accumulation; softmax and norms stay fp32) and hand float32 back, so everything after them
  (the cache, the decoders, the region head) is unchanged;
- `int8`: `torch.ao.quantization.quantize_dynamic` on their `nn.Linear` layers (fbgemm/onednn
  int8 GEMMs, weights int8 per tensor, activations quantised per call);
- `channels_last`: an fp32 layout for convolutional trunks (same numbers up to summation order).

The cache identity of a half computed in bf16 or int8 carries the precision (`tagged`): such an
embedding never answers an fp32 request, unless the user allows mixing (`--allow-mixed-precision`,
`alternatives`). fp32 and channels-last keep the plain identity, so existing caches stay valid.

No Qt here; torch is imported only by the functions that touch modules.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.errors import AnnotatorError
from annotator.spec import PRECISIONS

log = logging.getLogger(__name__)

PARTS = ("segmenter", "clip", "text", "decoder")
OPTIONS = ("fp32", "channels_last", "bf16", "int8")
# What an option computes in: the cache identity's tag ("" = plain fp32 numbers).
NUMERICS = {"fp32": "", "channels_last": "", "bf16": "bf16", "int8": "int8"}

# The options tests/models/test_precision_equivalence.py proves equivalent to fp32, per part and kind
# (segmenter family, CLIP image tower; "*": any), which that test enforces; `auto` applies an
# option only where it is listed for the loaded kind (`allowed`). int8 dynamic quantisation
# fails the feature-cosine bound on every encoder; in bf16 SAM 2.1's masks move (IoU 0.989) and
# EdgeTAM's RepViT trunk fails the cosine bound (ADR 25): forced-only.
EQUIVALENT: dict[str, dict[str, tuple[str, ...]]] = {
    "segmenter": {
        "sam": ("fp32", "bf16"),
        "sam2": ("fp32",),
        "sam_hq": ("fp32", "bf16"),
        "edgetam": ("fp32",),
    },
    "clip": {"convnext": ("fp32", "channels_last", "bf16")},
    "text": {"*": ("fp32", "bf16")},
    "decoder": {"*": ("fp32",)},
}

# auto's choice per hardware class, from measurements (ADR 25). "cpu-bf16": AVX512-BF16 or
# AMX-BF16 (the Xeon: bf16 autocast 0.46-0.68x on the encoders, 1.44x on the text encoder);
# "cpu": AVX2/AVX512 without bf16 dot products (the AMD EPYC these tests run on: bf16 is emulated,
# 10-30x slower; int8 dynamic is 0.6-0.9x on some encoders but not equivalent; channels-last 1.13x);
# "cuda-bf16": GPUs with bf16 (compute capability >= 8); "cuda": older GPUs; "mps": Apple.
AUTO: dict[str, dict[str, str]] = {
    "cpu-bf16": {"segmenter": "bf16", "clip": "bf16", "text": "fp32", "decoder": "fp32"},
    "cpu": {"segmenter": "fp32", "clip": "fp32", "text": "fp32", "decoder": "fp32"},
    "cuda-bf16": {"segmenter": "bf16", "clip": "bf16", "text": "bf16", "decoder": "fp32"},
    "cuda": {"segmenter": "fp32", "clip": "fp32", "text": "fp32", "decoder": "fp32"},
    "mps": {"segmenter": "fp32", "clip": "fp32", "text": "fp32", "decoder": "fp32"},
}

# oneDNN ISA names (ONEDNN_MAX_CPU_ISA) from the weakest up, and the first with each feature.
_ONEDNN_ISAS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX10_1_512",
    "AVX512_CORE_FP16",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX512_CORE_AMX_FP16",
)
_BF16_FROM = _ONEDNN_ISAS.index("AVX512_CORE_BF16")
_VNNI_FROM = {"AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE_VNNI"}  # and every ISA past bf16
_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
_VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8", "avx512vnni"}


@dataclass(frozen=True)
class Capability:
    """What the device computes natively (`probe`); mockable, no hardware access of its own."""

    device: str = "cpu"  # cpu | cuda | mps
    isa: str = ""  # torch's CPU capability (AVX2, AVX512...) or the GPU's name
    bf16: bool = False  # native bf16 dot products (AVX512-BF16 / AMX; a GPU with bf16)
    int8: bool = False  # native int8 dot products (VNNI / AMX-INT8)
    onednn_cap: str | None = None  # ONEDNN_MAX_CPU_ISA when set

    @property
    def hardware_class(self) -> str:
        """The `AUTO` row this capability reads."""
        if self.device == "cpu":
            return "cpu-bf16" if self.bf16 else "cpu"
        if self.device == "cuda":
            return "cuda-bf16" if self.bf16 else "cuda"
        return "mps"

    def describe(self) -> str:
        extra = [name for name, on in (("bf16", self.bf16), ("int8", self.int8)) if on]
        cap = f", ONEDNN_MAX_CPU_ISA={self.onednn_cap}" if self.onednn_cap else ""
        return f"{self.device} {self.isa or '?'} (native: {', '.join(extra) or 'fp32 only'}{cap})"


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere or when unreadable."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def _torch_isa() -> str:
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch older than 2.1
        return ""


def probe(
    device: str = "cpu",
    flags: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
    torch_isa: str | None = None,
) -> Capability:
    """The capability of `device` ('cpu', 'cuda', 'cuda:N', 'mps'). On a CPU: native bf16 needs
    the avx512_bf16 or amx_bf16 flag and a torch build that dispatches to AVX512 or better, and
    ONEDNN_MAX_CPU_ISA (honoured as oneDNN honours it) below AVX512_CORE_BF16 turns it off.
    `flags`, `environ` and `torch_isa` replace what the machine says (tests)."""
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch

        index = int(device.partition(":")[2] or 0)
        return Capability(
            "cuda", torch.cuda.get_device_name(index), torch.cuda.is_bf16_supported(), True
        )
    if kind == "mps":
        return Capability("mps", "mps")
    flags = set(cpu_flags() if flags is None else flags)
    environ = os.environ if environ is None else environ
    isa = _torch_isa() if torch_isa is None else torch_isa
    bf16 = bool(flags & _BF16_FLAGS) and isa.upper().startswith("AVX512")
    int8 = bool(flags & _VNNI_FLAGS)
    cap = (environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if cap and cap not in ("ALL", "DEFAULT"):
        rank = _ONEDNN_ISAS.index(cap) if cap in _ONEDNN_ISAS else -1
        bf16 = bf16 and rank >= _BF16_FROM
        int8 = int8 and (cap in _VNNI_FROM or rank >= _BF16_FROM)
    return Capability("cpu", isa, bf16, int8, cap or None)


@dataclass(frozen=True)
class Plan:
    """The option each part runs with, and why (for `annotator` messages and benchmarks)."""

    requested: str  # auto | fp32 | bf16 | int8
    capability: Capability
    parts: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, part: str) -> str:
        return self.parts[part]

    def describe(self) -> str:
        chosen = ", ".join(f"{p} {o}" for p, o in self.parts.items())
        return f"precision {self.requested} on {self.capability.describe()}: {chosen}"


def resolve(requested: str | None, capability: Capability) -> Plan:
    """`--precision` (None = auto) on `capability` -> a `Plan`. Forced int8 off a CPU is an
    `AnnotatorError` (PyTorch's dynamic quantisation runs on CPUs only)."""
    requested = requested or "auto"
    if requested not in PRECISIONS:
        raise AnnotatorError(f"precision is one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "auto":
        return Plan("auto", capability, dict(AUTO[capability.hardware_class]))
    if requested == "int8" and capability.device != "cpu":
        raise AnnotatorError(
            f"--precision int8 runs on a CPU only (PyTorch dynamic quantisation), not on "
            f"{capability.device}; use bf16 or auto there"
        )
    if requested == "bf16" and capability.device == "cpu" and not capability.bf16:
        log.warning("this CPU has no native bf16: --precision bf16 is emulated and slower")
    parts = {p: requested for p in PARTS}
    parts["decoder"] = "fp32"
    return Plan(requested, capability, parts)


def allowed(part: str, kind: str, option: str) -> bool:
    """True when `option` is proven equivalent for `part` of this `kind` (`EQUIVALENT`)."""
    table = EQUIVALENT[part]
    return option == "fp32" or option in table.get(kind, table.get("*", ()))


def plan_for(requested: str | None, device: str) -> Plan:
    """`resolve` on this machine's `device` (the engine's entry point)."""
    return resolve(requested, probe(device))


def apply_plan(plan: Plan, segmenter: Any = None, clip: Any = None) -> None:
    """`plan` applied to a loaded segmenter and/or CLIP model; `auto` only where proven."""
    auto = plan.requested == "auto"
    if segmenter is not None:
        apply_segmenter(segmenter, plan["segmenter"], proven_only=auto)
    if clip is not None:
        apply_clip(clip, plan["clip"], plan["text"], proven_only=auto)


# ------------------------------------------------------------------------------------ identities
def tagged(identity: str, option: str) -> str:
    """The cache identity of `identity`'s output computed with `option` (unchanged for fp32)."""
    tag = NUMERICS[option]
    return f"{identity}@{tag}" if tag else identity


def untagged(identity: str) -> str:
    """`tagged`'s inverse: the fp32 identity."""
    for tag in ("@bf16", "@int8"):
        if identity.endswith(tag):
            return identity[: -len(tag)]
    return identity


def alternatives(identity: str) -> list[str]:
    """The identities of the same model's output in the other precisions (mixing allowed); a
    region identity (`CLIP[@tag]|HEAD`) carries the tag on its CLIP part."""
    model, bar, rest = identity.partition("|")
    base = untagged(model)
    found = (f"{m}{bar}{rest}" for m in (base, f"{base}@bf16", f"{base}@int8"))
    return [i for i in found if i != identity]


def precision_of(model_id: str, text: bool = False) -> str:
    """The precision a cached file's model identity says its numbers were computed in; with
    `text`, of a text index's file stem (`SLUG_bf16-KEY`, see `vocab.index.cache_file`)."""
    stem = re.sub(r"-[0-9a-f]{16}$", "", model_id) if text else ""
    for tag in ("bf16", "int8"):
        if f"@{tag}|" in model_id or model_id.endswith(f"@{tag}") or stem.endswith(f"_{tag}"):
            return tag
    return "fp32"


# ------------------------------------------------------------------------------------- applying
def _to_float32(value: Any) -> Any:
    """Tensors (also inside tuples, lists, dicts and transformers' ModelOutputs) back to float32."""
    import torch

    if isinstance(value, torch.Tensor):
        return (
            value.float() if value.is_floating_point() and value.dtype != torch.float32 else value
        )
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_to_float32(v) for v in value)
    if isinstance(value, list):
        return [_to_float32(v) for v in value]
    if isinstance(value, dict):
        for key in list(value.keys()):
            value[key] = _to_float32(value[key])
        return value
    return value


def _autocast(module, device_type: str) -> None:
    """Run `module`'s forward under bf16 autocast, returning float32 (instance attribute)."""
    import torch

    inner = module.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            out = inner(*args, **kwargs)
        return _to_float32(out)

    module.forward = forward


def _channels_last(module) -> None:
    """fp32 in channels-last layout: weights converted once, each 4-D input on the way in."""
    import torch

    module.to(memory_format=torch.channels_last)
    inner = module.forward

    def forward(x, *args: Any, **kwargs: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return inner(x, *args, **kwargs)

    module.forward = forward


def _quantize(module) -> None:
    """int8 dynamic quantisation of the module's `nn.Linear` layers, in place."""
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices: the API still works
        quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    for layer in module.modules():
        if isinstance(layer, DynamicLinear):
            # open_clip asks a block's compute dtype from `mlp.c_fc.weight.dtype`, which a
            # quantised layer answers with a method; this is the attribute it asks first
            layer.int8_original_dtype = torch.float32


def apply(modules: Iterable[Any], option: str, device_type: str) -> None:
    """Make `modules` (their forward, in place) compute with `option`."""
    for module in modules:
        if option == "bf16":
            _autocast(module, device_type)
        elif option == "int8":
            _quantize(module)
        elif option == "channels_last":
            _channels_last(module)
        elif option != "fp32":
            raise ValueError(f"unknown precision option {option!r}")


def segmenter_modules(segmenter: Any) -> list[Any]:
    """The segmenter's image encoder: what `encode` spends its time in (the decoders stay fp32)."""
    model = getattr(segmenter, "model", None)
    for name in ("image_encoder", "vision_encoder"):
        module = getattr(model, name, None)
        if module is not None:
            return [module]
    return []


def clip_image_modules(clip: Any) -> list[Any]:
    """The CLIP image tower's heavy blocks, where both region heads and `encode_image` go through
    them; the pooling head and the projection stay fp32."""
    visual = clip.model.visual
    trunk = getattr(visual, "trunk", None)
    if trunk is not None and hasattr(trunk, "stages"):  # timm ConvNeXt
        return [trunk.stem, *trunk.stages]
    if hasattr(visual, "layer1"):  # ModifiedResNet
        return [visual.layer1, visual.layer2, visual.layer3, visual.layer4]
    transformer = getattr(visual, "transformer", None)
    if transformer is not None and hasattr(transformer, "resblocks"):  # ViT
        return list(transformer.resblocks)
    return []


def clip_text_modules(clip: Any) -> list[Any]:
    """The text tower's transformer blocks (the fast encoder and open_clip's both call them)."""
    transformer = getattr(clip.model, "transformer", None)
    if transformer is None:
        transformer = getattr(getattr(clip.model, "text", None), "transformer", None)
    return list(getattr(transformer, "resblocks", []))


def apply_segmenter(segmenter: Any, option: str, proven_only: bool = False) -> None:
    """The segmenter's encoder with `option`; its identity tagged (what the cache keys on).
    `proven_only` (auto): fp32 unless the option is proven for this family."""
    family = getattr(segmenter, "family", "")
    if option == "channels_last" or (proven_only and not allowed("segmenter", family, option)):
        option = "fp32"
    modules = segmenter_modules(segmenter)
    if option != "fp32" and not modules:
        log.warning("%s: no image encoder found to run in %s; fp32", segmenter.identity, option)
        option = "fp32"
    device_type = _device_type(getattr(segmenter, "device", "cpu"))
    apply(modules, option, device_type)
    segmenter.precision = option
    segmenter.identity = tagged(untagged(segmenter.identity), option)


def apply_clip(clip: Any, image: str, text: str, proven_only: bool = False) -> None:
    """The CLIP image trunk with `image`, the text encoder with `text`; records both on the
    model (`clip.image_precision`, `clip.text_precision`) for the cache identities.
    `proven_only` (auto): fp32 where an option is not proven for this tower."""
    device_type = _device_type(clip.device)
    if proven_only:
        image = image if allowed("clip", clip.tower, image) else "fp32"
        text = text if allowed("text", clip.tower, text) else "fp32"
    modules = clip_image_modules(clip)
    if image != "fp32" and not modules:
        log.warning("CLIP tower %s: no blocks found to run in %s; fp32", clip.tower, image)
        image = "fp32"
    if image == "channels_last" and clip.tower not in ("convnext", "resnet"):
        image = "fp32"
    apply(modules, image, device_type)
    text_modules = clip_text_modules(clip)
    if text != "fp32" and not text_modules:
        text = "fp32"
    apply(text_modules, text, device_type)
    clip.image_precision, clip.text_precision = image, text


def image_identity(clip: Any) -> str:
    """The CLIP model's identity for image-side vectors (region heads, image embeddings)."""
    return tagged(clip.identity, getattr(clip, "image_precision", "fp32"))


def text_identity(clip: Any) -> str:
    """The CLIP model's identity for text vectors (the text index cache)."""
    return tagged(clip.identity, getattr(clip, "text_precision", "fp32"))


def _device_type(device: Any) -> str:
    return str(getattr(device, "type", device)).split(":")[0]


__all__ = [
    "AUTO",
    "EQUIVALENT",
    "PARTS",
    "Capability",
    "Plan",
    "alternatives",
    "allowed",
    "apply_clip",
    "apply_plan",
    "apply_segmenter",
    "plan_for",
    "precision_of",
    "probe",
    "resolve",
    "tagged",
]
