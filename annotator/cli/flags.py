"""The flags several commands share: the model flags (-> one `ModelSpec`), prompts, projects.

Nothing here imports torch: building the parser (and so `annotator --help`) stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from annotator import families
from annotator.errors import AnnotatorError
from annotator.spec import PRECISIONS, ModelSpec

SEGMENTER_FAMILIES = families.NAMES  # the records: annotator/families.py (no torch)

if TYPE_CHECKING:
    from annotator.engine import Engine
    from annotator.store import Project


def model_flags() -> argparse.ArgumentParser:
    """The model flags every model-using subcommand (and the GUI) accepts; see `ModelSpec`."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("models")
    group.add_argument(
        "--segmenter",
        choices=SEGMENTER_FAMILIES,
        help="segmenter family: "
        + ", ".join(f"{f.name} ({f.title})" for f in families.FAMILIES.values())
        + "; default: SAM 2.1 "
        "tiny on a CPU, SAM 2.1 base+ on CUDA (or SAM 1 ViT-B if that is what is downloaded)",
    )
    group.add_argument(
        "--checkpoint",
        type=Path,
        help="the segmenter's weights: a file, or a folder with config.json + model.safetensors",
    )
    group.add_argument(
        "--sam-checkpoint",
        type=Path,
        help="segment-anything (SAM 1) checkpoint (.pth); the same as --segmenter sam --checkpoint",
    )
    group.add_argument("--clip-model", help="open_clip model name (default convnext_base_w)")
    group.add_argument(
        "--clip-pretrained", help="open_clip pretrained tag (downloads on first use)"
    )
    group.add_argument("--clip-weights", type=Path, help="local open_clip weights file")
    group.add_argument(
        "--clip-config", type=Path, help="open_clip model config JSON (with --clip-weights)"
    )
    group.add_argument(
        "--region-head", choices=("pool", "crop"), help="how a mask becomes a CLIP embedding"
    )
    group.add_argument(
        "--vocabulary", help="vocabulary file, or one of: default, coco, lvis, imagenet21k"
    )
    group.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)"
    )
    group.add_argument(
        "--cache-dir", type=Path, help="where embeddings and text indexes are cached"
    )
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="numeric precision of the encoders: auto (default: per model part, what this "
        "machine runs faster and the project has proven equivalent to fp32), fp32, bf16 or int8",
    )
    group.add_argument(
        "--allow-mixed-precision",
        dest="mix_precision",
        action="store_true",
        default=None,
        help="let a cached embedding computed in another precision answer (e.g. bf16 for fp32)",
    )
    return parent


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
    """The `ModelSpec` the model flags describe."""
    checkpoint, sam_checkpoint = (
        getattr(args, "checkpoint", None),
        getattr(args, "sam_checkpoint", None),
    )
    if checkpoint is not None and sam_checkpoint is not None:
        raise AnnotatorError("pass --checkpoint or --sam-checkpoint, not both")
    if sam_checkpoint is not None and getattr(args, "segmenter", None) not in (None, "sam"):
        raise AnnotatorError(
            f"--sam-checkpoint is a SAM 1 file; for --segmenter {args.segmenter} use --checkpoint"
        )
    spec = ModelSpec.from_args(args)
    if sam_checkpoint is not None and spec.segmenter is None:
        spec = spec.replace(segmenter="sam")
    return spec


def make_engine(
    args: argparse.Namespace | ModelSpec, quiet: bool = False, build_index: bool = True
) -> Engine:
    """Build the engine the model flags (or a spec) describe, with a progress bar for the first
    text encoding of a large vocabulary (`build_index=False`: no text index, e.g. `--top-k 0`)."""
    from annotator.engine import build_engine

    spec = args if isinstance(args, ModelSpec) else spec_from_args(args)
    bars: dict[str, object] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if quiet or total < 2000:
            return
        from tqdm import tqdm

        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(
                total=total, desc=f"encoding {stage}", unit="text", file=sys.stderr
            )
        bar.n = done
        bar.refresh()

    try:
        return build_engine(spec, progress=progress, build_index=build_index)
    finally:
        for bar in bars.values():
            bar.close()


# ------------------------------------------------------------------------------------------ prompts
def _point(text: str) -> tuple[float, float, bool]:
    parts = text.split(",")
    try:
        if len(parts) == 2:
            return float(parts[0]), float(parts[1]), True
        if len(parts) == 3 and parts[2].strip() in ("0", "1"):
            return float(parts[0]), float(parts[1]), parts[2].strip() == "1"
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"a point is X,Y or X,Y,1 (positive) / X,Y,0 (negative), not {text!r}"
    )


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a box is X0,Y0,X1,Y1, not {text!r}") from None
    return x0, y0, x1, y1


def add_prompt_flags(parser: argparse.ArgumentParser) -> None:
    """`--point` and `--box`, the same for every command that takes clicks."""
    parser.add_argument(
        "--point",
        type=_point,
        action="append",
        default=[],
        metavar="X,Y[,0|1]",
        help="a click in image pixels; 1 (default) = object, 0 = background; repeatable",
    )
    parser.add_argument(
        "--box", type=_box, metavar="X0,Y0,X1,Y1", help="a box around the object, in pixels"
    )


def check_positive(name: str, value: int | None) -> None:
    """Counts such as --top-k: at least 1 (argparse's int type lets 0 and negatives through)."""
    if value is not None and value < 1:
        raise AnnotatorError(f"{name} must be at least 1, not {value}")


# ----------------------------------------------------------------------------------------- projects
def project_location(text: str) -> Path | str:
    """argparse type of a project argument: a folder, a .db file, or a PostgreSQL URL
    (`postgresql://USER@HOST:PORT/DB?project=NAME`, kept as text: a Path would mangle it)."""
    from annotator.store.backend import is_url

    return text if is_url(text) else Path(text)


def project_db(path: Path) -> Path:
    """A project is named by its folder (db in `.annotator/`) or by the .db file itself."""
    return path if path.suffix == ".db" else path / ".annotator" / "project.db"


def project_exists(location: Path | str) -> bool:
    """True when the project is there already (a URL: the server decides when it is opened)."""
    from annotator.store.backend import is_url

    return True if is_url(location) else project_db(Path(location)).is_file()


def open_project(path: Path | str, create: bool = True) -> Project:
    """The project at a folder, .db path or PostgreSQL URL; `create` makes `.annotator/` in an
    existing folder (or the project's schema in the database)."""
    from annotator.store import Project
    from annotator.store.backend import import_psycopg, is_url

    if is_url(path):
        import_psycopg()  # one line naming the extra to install when psycopg is missing
        return Project(str(path))
    path = Path(path)
    db = project_db(path)
    if not create and not db.is_file():
        raise AnnotatorError(f"{path}: no project here (expected {db})")
    if create and not db.parent.parent.is_dir():
        raise AnnotatorError(f"{path}: no such folder")
    return Project(db)  # makes `.annotator/` itself: race-free, and names a file in its way


INTERRUPTED = 130  # the exit status of a command stopped with Ctrl-C


def run_per_image(job, total: int, desc: str):
    """`job(progress)` behind a progress bar on stderr, for the resumable per-image commands
    (`autolabel`, `refine`); `progress(done, total, name)` moves the bar. Ctrl-C closes the bar,
    says that the finished images are stored and returns None (exit `INTERRUPTED`)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="image", file=sys.stderr)

    def progress(done: int, total: int, _name: str) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        return job(progress)
    except KeyboardInterrupt:
        print(
            "annotator: interrupted; finished images are stored, rerun the same command to continue",
            file=sys.stderr,
        )
        return None
    finally:
        bar.close()


# ------------------------------------------------------------------------------ numeric flags
# Every number a flag gives is finite and inside these bounds before any handler sees it (issue
# 22: `--points-per-side 100000` asked for a 10^10-point grid). Flags not listed get the generic
# bounds below, so a flag added later is bounded too; list it here to tighten them.
NUMBER_BOUNDS: dict[str, tuple[float, float]] = {
    "--points-per-side": (1, 256),
    "--top-k": (0, 100_000),
    "--max-clicks": (1, 1000),
    "--limit": (1, 10**9),
    "--exemplars": (0, 10_000),
    "--seed-labels": (0, 100_000),
    "--annotation": (1, 2**63 - 1),
    "--ray-workers": (1, 4096),
    "--ray-batch": (1, 100_000),
    "--ray-cpus-per-worker": (0.01, 1024),
    "--pred-iou-thresh": (-1, 1),  # the decoder predicts IoU by regression: -1 keeps every mask
    "--stability-thresh": (0, 1),
    "--nms-thresh": (0, 1),
    "--mask-threshold": (0, 1),
    "--min-score": (0, 1),
    "--threshold": (-1, 1),
    "--accept-above": (-1, 1),
    "--reject-below": (-1, 1),
}
GENERIC_BOUNDS = {int: (-(2**31), 2**31), float: (-1e9, 1e9)}


def _bounded(kind: type, flag: str, low: float, high: float):
    def convert(text: str):
        import math

        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"{'a whole number' if kind is int else 'a number'} is needed, not {text[:40]!r}"
            ) from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text[:40]!r}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{flag} must be between {low:g} and {high:g}, not {text[:40]!r}"
            )
        return value

    convert.__name__ = kind.__name__
    return convert


def bound_numbers(parser: argparse.ArgumentParser) -> None:
    """Give every int / float flag of `parser` and its subcommands a finite, bounded type."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                bound_numbers(sub)
        elif action.type in (int, float):
            flag = next((o for o in action.option_strings if o.startswith("--")), action.dest)
            low, high = NUMBER_BOUNDS.get(flag, GENERIC_BOUNDS[action.type])
            action.type = _bounded(action.type, flag, low, high)
