"""Safe loading of a transformers checkpoint folder (config.json + model.safetensors).

Nothing is allocated from what a file declares until it is bounded: the config's integers and
lists are capped before a model is built (on the meta device, which allocates nothing); the
safetensors header is length-checked, parsed, and every tensor's byte range must lie inside the
file and match its dtype x shape, so the parameter count can never exceed what the file holds;
then keys and shapes are compared with the model the config describes. Only then does
`from_pretrained` read the weights. Every failure is one `CheckpointError` line naming the file.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from annotator.errors import CheckpointError

CONFIG_MAX_BYTES = 1 << 20  # a config.json is a few KB; never read a huge one into memory


def read_config(folder: Path) -> dict:
    """config.json of a transformers folder as a dict, bounded and with one-line errors."""
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {folder}: no config.json (a transformers folder needs one)"
        )
    size = path.stat().st_size
    if size > CONFIG_MAX_BYTES:
        raise CheckpointError(f"checkpoint {path}: {size} bytes, too large for a model config")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"checkpoint {path}: not a JSON object")
    return config


HEADER_MAX_BYTES = 100 << 20  # official headers are ~100 KB
MAX_CONFIG_INT = 1 << 16  # widths, depths, sizes: all far below this in every published config
MAX_CONFIG_LIST = 4096
MAX_CONFIG_DEPTH = 12
MAX_IMAGE_SIZE = 4096  # pixels per side of the model's input
WEIGHTS_NAME = "model.safetensors"

DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve_folder(path: Path) -> tuple[Path, Path]:
    """(folder, weights file) for a folder or a model.safetensors / config.json inside one."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: file not found")
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.name not in (WEIGHTS_NAME, "config.json"):
        raise CheckpointError(
            f"checkpoint {path}: a transformers checkpoint is a folder with config.json and "
            f"{WEIGHTS_NAME}; pass the folder"
        )
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        if (folder / (WEIGHTS_NAME + ".index.json")).is_file():
            raise CheckpointError(
                f"checkpoint {folder}: sharded weights are not supported; save with "
                "max_shard_size large enough for one file"
            )
        raise CheckpointError(f"checkpoint {folder}: no {WEIGHTS_NAME} next to config.json")
    return folder, weights


def check_config_bounds(value: object, where: str, path: str = "config", depth: int = 0) -> None:
    """Refuse any integer, list or nesting that no real model has (before anything is built)."""
    if depth > MAX_CONFIG_DEPTH:
        raise CheckpointError(f"checkpoint {where}: {path} is nested too deeply")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > MAX_CONFIG_INT:
            raise CheckpointError(f"checkpoint {where}: {path} = {value} is out of range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise CheckpointError(f"checkpoint {where}: {path} = {value} is not finite")
    elif isinstance(value, list):
        if len(value) > MAX_CONFIG_LIST:
            raise CheckpointError(f"checkpoint {where}: {path} has {len(value)} entries")
        for i, item in enumerate(value):
            check_config_bounds(item, where, f"{path}[{i}]", depth + 1)
    elif isinstance(value, dict):
        if len(value) > MAX_CONFIG_LIST:
            raise CheckpointError(f"checkpoint {where}: {path} has {len(value)} keys")
        for key, item in value.items():
            check_config_bounds(item, where, f"{path}.{key}", depth + 1)


def read_safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) from a safetensors header, every entry checked against the file."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CheckpointError(f"checkpoint {path}: {size} bytes, not a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length == 0 or length > min(HEADER_MAX_BYTES, size - 8):
            raise CheckpointError(
                f"checkpoint {path}: bad safetensors header (declares {length} header bytes in a "
                f"{size}-byte file)"
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path}: bad safetensors header ({error})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {path}: bad safetensors header (not a JSON object)")
    data_size = size - 8 - length
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = entry["dtype"]
            shape = tuple(entry["shape"])
            start, end = entry["data_offsets"]
            itemsize = DTYPE_BYTES[dtype]
            if not all(isinstance(d, int) and d >= 0 for d in shape):
                raise ValueError(f"shape {list(shape)}")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end):
                raise ValueError(f"offsets {start}-{end}")
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(
                f"checkpoint {path}: bad safetensors entry {name!r} ({_one_line(error, 80)})"
            ) from None
        if end > data_size:
            raise CheckpointError(
                f"checkpoint {path}: tensor {name!r} ends at byte {end} of {data_size} "
                "(truncated file?)"
            )
        if math.prod(shape) * itemsize != end - start:
            raise CheckpointError(
                f"checkpoint {path}: tensor {name!r} declares shape {list(shape)} {dtype} but "
                f"holds {end - start} bytes"
            )
        out[name] = (dtype, shape)
    return out


def compare_with_model(model, header: dict, where: Path, extra_allowed: bool = False) -> None:
    """Keys and shapes of the file against the (meta-device) model the config describes
    (`extra_allowed`: tensors the model lacks are ignored, as a video folder's memory is by the
    image class)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    missing = [k for k in expected if k not in header and k not in tied]
    if missing:
        more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
        raise CheckpointError(
            f"checkpoint {where}: missing {', '.join(missing[:3])}{more} for the architecture "
            "in config.json"
        )
    unexpected = [k for k in header if k not in expected]
    if unexpected and not extra_allowed:
        more = f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3 else ""
        raise CheckpointError(
            f"checkpoint {where}: unexpected tensors {', '.join(unexpected[:3])}{more} for the "
            "architecture in config.json"
        )
    for key, shape in expected.items():
        if key in header and header[key][1] != shape:
            raise CheckpointError(
                f"checkpoint {where}: {key} has shape {list(header[key][1])}, the config "
                f"implies {list(shape)}"
            )


def load_model(
    path: Path,
    model_type: str,
    config_class,
    model_class,
    fix_config=None,
    check_config=None,
    superset_types: tuple[str, ...] = (),
):
    """(model, folder, weights file) after every check above; float32, eval mode, on the CPU.

    `fix_config(dict) -> dict` repairs known config quirks; `check_config(config, where)` bounds
    the family's geometry before the model is built. `superset_types`: model types whose folders
    hold this model plus more (a `sam2_video` folder holds `Sam2Model`'s weights and a memory):
    loaded as `from_pretrained` does, the extra tensors unused.
    """
    import torch
    from transformers.utils import logging as hf_logging

    folder, weights = resolve_folder(path)
    config_dict = read_config(folder)
    superset = config_dict.get("model_type") in superset_types
    if config_dict.get("model_type") != model_type and not superset:
        raise CheckpointError(
            f"checkpoint {folder / 'config.json'}: model_type {config_dict.get('model_type')!r}, "
            f"expected {model_type!r}"
        )
    check_config_bounds(config_dict, str(folder / "config.json"))
    if fix_config is not None:
        config_dict = fix_config(config_dict)
    header = read_safetensors_header(weights)
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        try:
            config = config_class.from_dict(config_dict)
        except Exception as error:  # strict configs raise TypeError/ValueError/KeyError...
            raise CheckpointError(
                f"checkpoint {folder / 'config.json'}: invalid config ({_one_line(error)})"
            ) from None
        if check_config is not None:
            check_config(config, str(folder / "config.json"))
        try:
            with torch.device("meta"):
                skeleton = model_class(config)
        except Exception as error:
            raise CheckpointError(
                f"checkpoint {folder / 'config.json'}: cannot build the model it describes "
                f"({_one_line(error)})"
            ) from None
        compare_with_model(skeleton, header, weights, extra_allowed=superset)
        del skeleton
        try:
            model = model_class.from_pretrained(folder, config=config, dtype=torch.float32)
        except Exception as error:
            raise CheckpointError(
                f"checkpoint {weights}: cannot be read ({_one_line(error)})"
            ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval(), folder, weights
