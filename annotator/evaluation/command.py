"""`annotator eval clicks|labels`: the benchmarks run through the real engine, from the command line.

The harness (clicks.py, labels.py) only knows two small protocols, a segmenter and a region embedder;
this module adapts the engine to them and prints / writes the results.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annotator.errors import AnnotatorError
from annotator.evaluation.clicks import Click, Session

MEANINGLESS = (
    "WARNING: {what} not a known pretrained checkpoint: with random or unknown weights these "
    "numbers are meaningless"
)


# --------------------------------------------------------------------------------- engine adapters
class EngineSegmenter:
    """Clicks -> mask through `Engine.segment`, as in the app (best of SAM's candidates, no labels).

    With `sam_only`, `start` runs only the SAM image encoder (the click benchmark needs no CLIP work);
    otherwise it uses the full, cached `Engine.embed` (shared with `EngineRegionEmbedder`).
    """

    def __init__(self, engine, sam_only: bool = True, embedder: EngineRegionEmbedder | None = None):
        self.engine = engine
        self.sam_only = sam_only
        self.embedder = embedder

    def start(self, image: np.ndarray) -> Session:
        if self.embedder is not None:
            embedding = self.embedder.embedding(image)
        elif self.sam_only:
            from annotator.engine import ImageEmbedding

            embedding = ImageEmbedding(
                sam=self.engine.sam.encode(image),
                clip={},
                image_hash="",
                model_id=self.engine.model_id,
            )
        else:
            embedding = self.engine.embed(image)

        def session(clicks: Sequence[Click]) -> np.ndarray:
            points = [c.as_point() for c in clicks]
            return self.engine.segment(embedding, points, top_k=0).mask

        return session


class EngineRegionEmbedder:
    """A region head of the engine; the last image's embedding is kept so an image is embedded once."""

    def __init__(self, engine):
        self.engine = engine
        self._last: tuple[np.ndarray, object] | None = None

    def embedding(self, image: np.ndarray):
        if self._last is None or self._last[0] is not image:
            self._last = (image, self.engine.embed(image))
        return self._last[1]

    def start(self, image: np.ndarray):
        embedding = self.embedding(image)
        return lambda mask: self.engine.region_embedding(embedding, mask)


# --------------------------------------------------------------------------------------- warnings
def _is_known(path: Path) -> bool:
    try:
        from annotator.models.weights import known_name_for
    except ImportError:
        return False
    try:
        return bool(known_name_for(Path(path)))
    except (OSError, AnnotatorError):
        return False


def weights_warning(args: argparse.Namespace) -> str | None:
    """The warning to print when a model file given on the command line is not a known checkpoint.

    Without a file, the engine uses the known default SAM checkpoint and open_clip pretrained tags.
    """
    unknown = []
    sam = getattr(args, "sam_checkpoint", None)
    if sam is not None and not _is_known(sam):
        unknown.append(f"SAM {Path(sam).name}")
    clip = getattr(args, "clip_weights", None)
    if clip is not None and not _is_known(clip):
        unknown.append(f"CLIP {Path(clip).name}")
    if not unknown:
        return None
    what = " and ".join(unknown) + (" are" if len(unknown) > 1 else " is")
    return MEANINGLESS.format(what=what)


# -------------------------------------------------------------------------------------------- CLI
def register(subparsers, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add `eval clicks` and `eval labels` to the `annotator` parser (with the model flags)."""
    p = subparsers.add_parser(
        "eval", help="measure segmentation (NoC) and labelling (top-1/top-5) quality on a benchmark"
    )
    sub = p.add_subparsers(dest="eval_command", metavar="BENCHMARK", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N objects")
        q.add_argument("--json", type=Path, metavar="FILE", help="also write all results as JSON")
        q.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the results")

    q = sub.add_parser(
        "clicks",
        parents=list(parents),
        help="interactive segmentation: NoC@85/90, mIoU after 1/3/5 clicks",
        description="Simulated clicks (RITM/SimpleClick protocol) on image + mask pairs.",
    )
    q.add_argument("--images", type=Path, required=True, metavar="DIR", help="the images")
    q.add_argument(
        "--masks", type=Path, required=True, metavar="DIR", help="masks named like the images"
    )
    q.add_argument("--max-clicks", type=int, default=20, metavar="N", help="default 20")
    common(q)

    q = sub.add_parser(
        "labels",
        parents=list(parents),
        help="recognition: top-1/top-5 label accuracy of ground-truth and 1-click masks",
        description="Label accuracy against the dataset's names and the full vocabulary, "
        "comparing region heads.",
    )
    q.add_argument("--images", type=Path, required=True, metavar="DIR", help="the images")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--coco", type=Path, metavar="FILE", help="COCO JSON with the objects")
    source.add_argument(
        "--masks", type=Path, metavar="DIR", help="masks named CATEGORY00_ID (COCO_MVal layout)"
    )
    q.add_argument(
        "--heads", default="pool,crop", help="region heads to compare (default pool,crop)"
    )
    q.add_argument("--top-k", type=int, default=5, metavar="K", help="default 5")
    q.add_argument("--no-click", action="store_true", help="only label the ground-truth masks")
    common(q)


def _progress(total: int, what: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="object", file=sys.stderr)


def _check_counts(args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit < 1:
        raise AnnotatorError(f"--limit must be at least 1, not {args.limit}")
    if getattr(args, "max_clicks", 1) < 1:
        raise AnnotatorError(f"--max-clicks must be at least 1, not {args.max_clicks}")
    if getattr(args, "top_k", 1) < 1:
        raise AnnotatorError(f"--top-k must be at least 1, not {args.top_k}")
    if args.plot is not None and args.plot.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise AnnotatorError(f"{args.plot}: --plot writes .png, .pdf or .svg")


def _models(engine) -> dict[str, str]:
    return {"sam": str(engine.sam.identity), "clip": str(engine.clip.identity)}


def _finish(args, document: dict, table: str, warning: str | None) -> None:
    from annotator.evaluation.report import write_json

    document["warning"] = warning
    print(table)
    for note in document.get("notes", []):
        print(f"note: {note}")
    if warning:
        print(warning)
    if args.json is not None:
        write_json(document, args.json)


def run_clicks(args: argparse.Namespace) -> int:
    from annotator.cli import make_engine
    from annotator.evaluation.clicks import evaluate_clicks
    from annotator.evaluation.datasets import folder_dataset
    from annotator.evaluation.report import clicks_json, clicks_table, plot_clicks

    dataset = folder_dataset(args.images, args.masks).limited(args.limit)
    warning = weights_warning(args)
    if warning:
        print(warning, file=sys.stderr)
    engine = make_engine(args)
    with _progress(len(dataset.samples), "clicking") as bar:
        report = evaluate_clicks(dataset, EngineSegmenter(engine), args.max_clicks, bar.update)
    document = {**clicks_json(report), "models": _models(engine)}
    _finish(args, document, clicks_table(report), warning)
    if args.plot is not None:
        plot_clicks(report, args.plot)
    return 0


def run_labels(args: argparse.Namespace) -> int:
    from annotator.cli import make_engine
    from annotator.evaluation.datasets import coco_dataset, folder_dataset
    from annotator.evaluation.labels import LabelSet, evaluate_labels
    from annotator.evaluation.report import labels_json, labels_table, plot_labels
    from annotator.vocab.vocabulary import Vocabulary

    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    bad = [h for h in heads if h not in ("pool", "crop")]
    if not heads or bad:
        raise AnnotatorError(f"--heads takes pool and/or crop, not {args.heads!r}")
    if args.coco is not None:
        dataset = coco_dataset(args.coco, args.images)
    else:
        dataset = folder_dataset(args.images, args.masks, categories_from_names=True)
    dataset = dataset.limited(args.limit)
    warning = weights_warning(args)
    if warning:
        print(warning, file=sys.stderr)
    engine = make_engine(args)
    engines = {head: engine.with_head(head) for head in heads}
    embedders = {head: EngineRegionEmbedder(e) for head, e in engines.items()}

    names = Vocabulary.loads("")
    for category in dataset.categories:
        names.add(category)
    vocabulary = engine.vocabulary
    label_sets = [
        LabelSet.exact("dataset", engine.text_index_for(names)),
        LabelSet.with_synonyms("vocabulary", engine.index, vocabulary),
    ]
    sizes = {"dataset": len(names), "vocabulary": len(vocabulary)}
    segmenter = None
    if not args.no_click:
        segmenter = EngineSegmenter(engine, embedder=embedders[heads[0]])
    with _progress(len(dataset.samples), "labelling") as bar:
        report = evaluate_labels(dataset, embedders, label_sets, segmenter, args.top_k, bar.update)
    document = {**labels_json(report, sizes), "models": _models(engine)}
    _finish(args, document, labels_table(report, sizes), warning)
    if args.plot is not None:
        plot_labels(report, args.plot)
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch `annotator eval BENCHMARK`; user errors raise `AnnotatorError` (the CLI prints them)."""
    _check_counts(args)
    if args.eval_command == "clicks":
        return run_clicks(args)
    return run_labels(args)
