"""`ModelSpec`: the one description of the models an `Engine` is built from.

The CLI flags, the window's saved settings and the `KEY=VALUE` sides of `annotator compare` all become a
`ModelSpec`, and `engine.build_engine(spec)` is the one way from a spec to an `Engine`. A new model option is then
one field here, one flag in `cli/flags.py` and one key in `SIDE_KEYS` — not five hand-written copies.

This module imports neither torch nor Qt: the CLI parses a spec before deciding whether it needs models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from annotator.errors import AnnotatorError

REGION_HEADS = ("pool", "crop")
# `--precision`: auto picks per model part from measurements (models/precision.py, ADR 25).
PRECISIONS = ("auto", "fp32", "bf16", "int8")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")

# A spec field -> how its text form (a flag value, a settings string, a compare side) becomes a value.
_PATH_FIELDS = ("checkpoint", "clip_weights", "clip_config", "cache_dir")


@dataclass(frozen=True)
class ModelSpec:
    """What to load: the segmenter, the CLIP model and region head, the vocabulary, the device.

    `None` means "the default": the spec records what the user chose, so a saved choice survives and a
    default can change between releases without rewriting anyone's settings.
    """

    segmenter: str | None = None  # a registry family (sam, sam2...); None: the device default
    checkpoint: Path | None = None  # the segmenter's file or folder; None: the cached default
    clip_model: str | None = None  # open_clip model name; None: convnext_base_w
    clip_pretrained: str | None = None  # open_clip pretrained tag (downloads on first use)
    clip_weights: Path | None = None  # a local open_clip weights file
    clip_config: Path | None = None  # an open_clip model config JSON (with clip_weights)
    region_head: str | None = None  # pool | crop; None: the CLIP family's default
    vocabulary: str | None = None  # a file, or a shipped name (default, coco, lvis, imagenet21k)
    device: str = "auto"
    cache_dir: Path | None = None  # embeddings and text indexes; None: the user cache
    precision: str | None = None  # auto | fp32 | bf16 | int8; None: auto
    # a cached embedding computed in another precision may answer (e.g. bf16 for fp32)
    mix_precision: bool = False

    def __post_init__(self) -> None:
        if self.region_head is not None and self.region_head not in REGION_HEADS:
            raise AnnotatorError(
                f"region head is one of {', '.join(REGION_HEADS)}, not {self.region_head!r}"
            )
        if self.precision is not None and self.precision not in PRECISIONS:
            raise AnnotatorError(
                f"precision is one of {', '.join(PRECISIONS)}, not {self.precision!r}"
            )

    # ----------------------------------------------------------------------------------- parsing
    @classmethod
    def from_args(cls, args: Any) -> ModelSpec:
        """From the parsed model flags (an argparse namespace or any object with those attributes).

        `--checkpoint` and `--sam-checkpoint` name the same thing; the older flag keeps working for
        segment-anything files.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = getattr(args, f.name, None)
            if value is not None and value != "":
                values[f.name] = value
        sam_checkpoint = getattr(args, "sam_checkpoint", None)
        if sam_checkpoint is not None and "checkpoint" not in values:
            values["checkpoint"] = sam_checkpoint
        return cls._make(values)

    @classmethod
    def from_settings(cls, saved: Mapping[str, str]) -> ModelSpec:
        """From saved settings: every value a string, "" for unset (what QSettings stores)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in saved.items() if k in known and v not in ("", None)}
        if "sam_checkpoint" in saved and saved["sam_checkpoint"] and "checkpoint" not in values:
            values["checkpoint"] = saved["sam_checkpoint"]
        return cls._make(values)

    def to_settings(self) -> dict[str, str]:
        """The inverse of `from_settings`: every field as a string, "" for unset."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = "" if value is None else str(value)
        return out

    def with_side(self, side: Mapping[str, Any]) -> ModelSpec:
        """This spec with one `compare` side's overrides (as `parse_side` returns them) applied."""
        return self._make({**self._values(), **side})

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed (`dataclasses.replace`, with the text forms converted)."""
        return self._make({**self._values(), **changes})

    def differs_only_in_head(self, other: ModelSpec) -> bool:
        """True when both load the same models: `compare` can then share them and swap the head."""
        return dataclasses.replace(self, region_head=None) == dataclasses.replace(
            other, region_head=None
        )

    def _values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def _make(cls, values: Mapping[str, Any]) -> ModelSpec:
        converted = {}
        for name, value in values.items():
            if name == "sam_checkpoint":
                continue
            if name in _PATH_FIELDS and value is not None and not isinstance(value, Path):
                value = Path(str(value))
            if name == "mix_precision" and not isinstance(value, bool):
                value = _flag(value)
            converted[name] = value
        return cls(**converted)

    # ---------------------------------------------------------------------------------- defaults
    def clip_choice(self) -> tuple[str | None, str | None]:
        """(open_clip model name, pretrained tag) after defaults: convnext_base_w + its LAION tag when
        the user named no CLIP files; no pretrained tag for another named model (its config decides)."""
        from annotator.models.clip import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

        name, pretrained = self.clip_model, self.clip_pretrained
        if self.clip_config is None and self.clip_weights is None and pretrained is None:
            name = name or DEFAULT_CLIP_MODEL
            pretrained = DEFAULT_CLIP_PRETRAINED if name == DEFAULT_CLIP_MODEL else None
        if self.clip_config is not None:
            name = None
        return name, pretrained

    def missing_files(self) -> list[str]:
        """The user-named files that are absent, as short readable phrases (for the window)."""
        missing = []
        for label, value in (
            ("segmenter checkpoint", self.checkpoint),
            ("CLIP weights", self.clip_weights),
            ("CLIP config", self.clip_config),
        ):
            if value is not None and not Path(value).exists():
                missing.append(f"{label} {value}")
        return missing


def _flag(value: object) -> bool:
    """A boolean field's text form (settings store "True"/"False"; a compare side "1"/"yes")."""
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise AnnotatorError(f"expected yes or no, not {str(value)[:40]!r}")


# The `compare` side keys (`--a KEY=VALUE,...`): the model flags a side may override.
SIDE_KEYS: dict[str, str] = {
    "segmenter": "segmenter",
    "checkpoint": "checkpoint",
    "sam-checkpoint": "checkpoint",
    "clip-model": "clip_model",
    "clip-pretrained": "clip_pretrained",
    "clip-weights": "clip_weights",
    "clip-config": "clip_config",
    "region-head": "region_head",
    "vocabulary": "vocabulary",
    "precision": "precision",
}


def parse_side(text: str) -> dict[str, Any]:
    """`KEY=VALUE,KEY=VALUE` -> {spec field: value}; KEY is a model flag without its dashes.

    Raises ValueError with a one-line message (argparse turns it into a usage error).
    """
    out: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lstrip("-"), value.strip()
        if not sep or key not in SIDE_KEYS or not value:
            raise ValueError(
                f"a model choice is KEY=VALUE[,KEY=VALUE...] with KEY one of "
                f"{', '.join(SIDE_KEYS)}; not {item!r}"
            )
        if key == "region-head" and value not in REGION_HEADS:
            raise ValueError(f"region-head is pool or crop, not {value!r}")
        if key == "precision" and value not in PRECISIONS:
            raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, not {value!r}")
        field = SIDE_KEYS[key]
        out[field] = Path(value) if field in _PATH_FIELDS else value
    return out


__all__ = ["PRECISIONS", "SIDE_KEYS", "ModelSpec", "parse_side"]
