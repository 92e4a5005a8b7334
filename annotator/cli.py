"""The `annotator` command: the GUI with no subcommand (or a folder), headless subcommands otherwise.

Bad input gives one line on stderr and exit code 2, never a traceback: every user-facing failure is an
`AnnotatorError` (see errors.py) and is caught here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from annotator import __version__
from annotator.errors import AnnotatorError, PromptError

if TYPE_CHECKING:  # numpy is imported lazily: `annotator --help` stays fast
    import numpy as np

COMMANDS = (
    "embed",
    "segment",
    "export",
    "import",
    "vocab",
    "weights",
    "eval",
    "find",
    "tag",
    "similar",
    "compare",
)


def model_flags() -> argparse.ArgumentParser:
    """The model flags every model-using subcommand (and the GUI) accepts."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("models")
    group.add_argument(
        "--sam-checkpoint",
        type=Path,
        help="segment-anything checkpoint (.pth); default: the cached ViT-B",
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
    return parent


def make_engine(args: argparse.Namespace, quiet: bool = False):
    """Build the engine from the model flags, with a progress bar for the first text encoding."""
    from annotator.engine import Engine

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
        return Engine.from_paths(
            sam_checkpoint=args.sam_checkpoint,
            clip_model=args.clip_model,
            clip_weights=args.clip_weights,
            clip_pretrained=args.clip_pretrained,
            clip_config=args.clip_config,
            vocabulary=args.vocabulary,
            region_head=args.region_head,
            device=args.device,
            cache_dir=args.cache_dir,
            progress=progress,
        )
    finally:
        for bar in bars.values():
            bar.close()


# ------------------------------------------------------------------------------------------ parsing
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


def build_parser() -> argparse.ArgumentParser:
    models = model_flags()
    parser = argparse.ArgumentParser(
        prog="annotator",
        description="Click-to-segment COCO annotation. `annotator [FOLDER]` opens the window; "
        "the subcommands below work headless.",
    )
    parser.add_argument("--version", action="version", version=f"annotator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gui", parents=[models], help="open the window (the default)")
    p.add_argument("folder", nargs="?", type=Path, help="folder of images")

    p = sub.add_parser(
        "embed", parents=[models], help="encode every image of a folder into the cache"
    )
    p.add_argument("folder", type=Path, help="folder of images; cached images are skipped")

    p = sub.add_parser(
        "segment", parents=[models], help="one mask + labels for prompts, printed as JSON"
    )
    p.add_argument("image", type=Path, help="an image file")
    add_prompt_flags(p)
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="labels to print (5)")
    p.add_argument(
        "--multimask",
        choices=("auto", "on", "off"),
        default="auto",
        help="SAM's three candidates (auto: on for a single click, as SAM recommends)",
    )
    p.add_argument(
        "--save", type=Path, metavar="PROJECT", help="also store the mask in this project"
    )
    p.add_argument("--category", help="category to save under (default: the best label)")

    p = sub.add_parser("export", help="write a project as COCO JSON")
    p.add_argument("project", type=Path, help="project folder or .db file")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="the COCO JSON file (written atomically)"
    )
    p.add_argument("--polygons", action="store_true", help="polygons instead of RLE")

    p = sub.add_parser("import", help="read COCO JSON into a project (all or nothing)")
    p.add_argument("coco_json", type=Path, help="COCO instances JSON (polygons or RLE)")
    p.add_argument(
        "--images", type=Path, required=True, help="folder the JSON's file_name values are in"
    )
    p.add_argument(
        "--project", type=Path, required=True, help="project folder or .db file (created if new)"
    )

    p = sub.add_parser("vocab", help="list, edit or encode a vocabulary")
    vsub = p.add_subparsers(dest="vocab_command", metavar="ACTION", required=True)
    q = vsub.add_parser("list", help="print the entries")
    q.add_argument("--vocabulary", help="file or shipped name (default: default)")
    q.add_argument("--search", help="only entries whose name or synonyms contain this")
    q = vsub.add_parser("add", help="add an entry to a vocabulary file")
    q.add_argument("name", help="display name of the new entry")
    q.add_argument("--synonym", action="append", default=[], help="another name for it; repeatable")
    q.add_argument("--vocabulary", type=Path, required=True, help="the file to edit")
    q = vsub.add_parser("remove", help="remove an entry from a vocabulary file")
    q.add_argument("name", help="display name of the entry")
    q.add_argument("--vocabulary", type=Path, required=True, help="the file to edit")
    vsub.add_parser(
        "build", parents=[models], help="encode the vocabulary's text index into the cache"
    )

    p = sub.add_parser("weights", help="list, download or verify model files")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    wsub.add_parser("list", help="known checkpoints and whether they are cached")
    q = wsub.add_parser("download", help="download a known checkpoint (resumes, verifies sha256)")
    q.add_argument("name", help="a name from `annotator weights list`, e.g. sam_vit_b")
    q = wsub.add_parser("verify", help="check a file against a known checkpoint's size and sha256")
    q.add_argument("name", help="a name from `annotator weights list`")
    q.add_argument(
        "path", type=Path, nargs="?", help="the file to check (default: the cached download)"
    )

    try:
        from annotator.evaluation.command import register as register_eval
    except ImportError:  # pragma: no cover - evaluation is part of the package
        register_eval = None
    if register_eval is not None:
        register_eval(sub, [models])
    from annotator.discovery.command import register as register_discovery

    register_discovery(sub, [models])
    return parser


# ------------------------------------------------------------------------------------------ commands
def _project_path(path: Path) -> Path:
    """A project is named by its folder (db in `.annotator/`) or by the .db file itself."""
    return path if path.suffix == ".db" else path / ".annotator" / "project.db"


def _open_project(path: Path, create: bool = True):
    from annotator.store import Project

    db = _project_path(path)
    if not create and not db.is_file():
        raise AnnotatorError(f"{path}: no project here (expected {db})")
    if create and not db.parent.is_dir():
        if not db.parent.parent.is_dir():
            raise AnnotatorError(f"{path}: no such folder")
        db.parent.mkdir()
    return Project(db)


def cmd_gui(args: argparse.Namespace) -> int:
    from annotator.gui.app import run_gui

    return run_gui(args.folder, args)


def cmd_embed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from annotator.io.images import list_images, show_path

    if not args.folder.is_dir():
        raise AnnotatorError(f"{args.folder}: not a folder")
    paths = list_images(args.folder)
    if not paths:
        raise AnnotatorError(f"{args.folder}: no images found")
    engine = make_engine(args)
    failed = skipped = 0
    with tqdm(paths, desc="embedding", unit="image", file=sys.stderr) as bar:
        for path in bar:
            if engine.is_cached(path):
                skipped += 1
                continue
            try:
                engine.embed(path)
            except AnnotatorError as error:
                failed += 1
                bar.write(f"annotator: skipped {show_path(path.name)}: {error}", file=sys.stderr)
    print(
        f"{len(paths) - failed - skipped} embedded, {skipped} already cached, {failed} failed",
        file=sys.stderr,
    )
    return 1 if failed else 0


def cmd_segment(args: argparse.Namespace) -> int:
    from annotator.io.masks import mask_bbox, mask_to_rle

    if not args.point and args.box is None:
        raise PromptError("give at least one --point X,Y or a --box X0,Y0,X1,Y1")
    if not args.image.is_file():
        raise AnnotatorError(f"{args.image}: no such image file")
    engine = make_engine(args)
    embedding = engine.embed(args.image)
    multimask = {"auto": None, "on": True, "off": False}[args.multimask]
    proposal = engine.segment(
        embedding, args.point, args.box, top_k=args.top_k, multimask=multimask
    )
    rle = mask_to_rle(proposal.mask)
    result = {
        "image": str(args.image),
        "width": embedding.size[1],
        "height": embedding.size[0],
        "rle": rle,
        "bbox": [float(v) for v in mask_bbox(proposal.mask)],
        "area": int(proposal.mask.sum()),
        "score": round(float(proposal.score), 6),
        "labels": [{"name": name, "score": round(float(s), 6)} for name, s in proposal.labels],
    }
    if args.save is not None:
        result["annotation_id"] = _save_proposal(args, engine, proposal)
    print(json.dumps(result))
    return 0


def _save_proposal(args, engine, proposal) -> int:
    prompts = {
        "points": [[x, y, int(bool(p))] for x, y, p in args.point],
        "box": list(args.box) if args.box else None,
    }
    category = args.category or (proposal.labels[0][0] if proposal.labels else None)
    vector = None if proposal.region is None else (engine.region_model_id, proposal.region)
    return save_mask(
        args.save, args.image, proposal.mask, category, float(proposal.score), prompts, vector
    )


def save_mask(
    project: Path,
    image: Path,
    mask,
    category: str | None,
    score: float | None,
    prompts: dict | None,
    vector: tuple[str, np.ndarray] | None = None,
) -> int:
    """Store one accepted mask for `image` in `project` (one transaction); returns the annotation id.

    `vector`: (model id, the mask's unit CLIP vector), kept for `annotator similar`.
    This is the path of `annotator segment --save`, also driven by the kill -9 test.
    """
    if not mask.any():
        raise AnnotatorError("the mask is empty: nothing was saved (try another point or a box)")
    if not category:
        raise AnnotatorError("no label to save the mask under: pass --category NAME")
    root = project if project.suffix != ".db" else project.parent.parent
    try:
        file_name = str(Path(image).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        file_name = Path(image).name
    height, width = mask.shape
    with _open_project(project) as store:
        with store.transaction():
            image_id = store.add_image(file_name, width, height)
            annotation_id = store.add_annotation(image_id, mask, category, score, prompts)
            if vector is not None:
                from annotator.store.embeddings import ANNOTATION, EmbeddingTable

                EmbeddingTable(store).put(ANNOTATION, annotation_id, *vector)
            return annotation_id


def cmd_export(args: argparse.Namespace) -> int:
    from annotator.io.coco import export_coco

    with _open_project(args.project, create=False) as project:
        summary = export_coco(project, args.output, polygons=args.polygons)
    print(json.dumps({"output": str(args.output), **(summary or {})}))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from annotator.io.coco import import_coco

    if not args.coco_json.is_file():
        raise AnnotatorError(f"{args.coco_json}: no such file")
    if not args.images.is_dir():
        raise AnnotatorError(f"{args.images}: not a folder")
    with _open_project(args.project) as project:
        summary = import_coco(args.coco_json, args.images, project)
    print(json.dumps(summary or {}))
    return 0


def cmd_vocab(args: argparse.Namespace) -> int:
    from annotator.vocab.vocabulary import Vocabulary

    action = args.vocab_command
    if action == "build":
        engine = make_engine(args)
        print(
            f"{len(engine.vocabulary)} entries encoded for {engine.clip.identity}", file=sys.stderr
        )
        return 0
    if action == "list":
        from annotator.engine import _load_vocabulary

        vocab = _load_vocabulary(args.vocabulary)
        needle = (args.search or "").lower()
        for entry in vocab:
            if not needle or any(needle in text.lower() for text in entry.texts):
                print(", ".join(entry.texts))
        return 0
    path: Path = args.vocabulary
    vocab = Vocabulary.load(path) if path.exists() else Vocabulary.loads("")
    if action == "add":
        vocab.add(args.name, tuple(args.synonym))
    else:
        vocab.remove(args.name)
    vocab.save(path)
    print(f"{path}: {len(vocab)} entries", file=sys.stderr)
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from annotator.models import weights

    action = args.weights_command
    if action == "list":
        for known in weights.list_known():
            cached = weights.cache_dir() / known.filename
            state = "cached" if cached.is_file() else "missing"
            size = f"{known.size / 1e6:.0f} MB" if known.size else "?"
            print(f"{known.name:<24} {size:>8}  {state:<8} {known.url}")
        return 0
    if action == "download":
        path = weights.download_known(args.name, progress=True)
        print(path)
        return 0
    known = {k.name: k for k in weights.list_known()}
    if args.name not in known:
        raise AnnotatorError(f"unknown checkpoint {args.name!r}; known: {', '.join(known)}")
    path = args.path or weights.cache_dir() / known[args.name].filename
    if not path.is_file():
        raise AnnotatorError(f"{path}: no such file")
    if not weights.verify(path, args.name):
        raise AnnotatorError(f"{path}: does not match {args.name} (size or sha256 differs)")
    print(f"{path}: ok")
    return 0


HANDLERS = {
    "gui": cmd_gui,
    "embed": cmd_embed,
    "segment": cmd_segment,
    "export": cmd_export,
    "import": cmd_import,
    "vocab": cmd_vocab,
    "weights": cmd_weights,
}


_NEGATIVE_VALUE = re.compile(r"-\d|-\.\d")


def _join_negative_values(argv: list[str]) -> list[str]:
    """`--point -5,10` -> `--point=-5,10`: argparse takes a value that starts with '-' and is not a
    plain number for an option, so points and boxes outside the image could not be given."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--point", "--box") and i + 1 < len(argv) and _NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    # `annotator`, `annotator FOLDER` and `annotator --flags FOLDER` all open the window.
    first = next((a for a in argv if not a.startswith("-")), None)
    if not any(a in ("-h", "--help", "--version") for a in argv[:1]) and first not in COMMANDS + (
        "gui",
    ):
        argv = ["gui", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = HANDLERS.get(args.command)
    if args.command == "eval":
        from annotator.evaluation.command import run as handler
    elif getattr(args, "discovery_command", None):
        from annotator.discovery.command import run as handler
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except AnnotatorError as error:
        print(f"annotator: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("annotator: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
