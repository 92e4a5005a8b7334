"""`annotator eval clicks | labels`: the benchmarks run through the real engine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from annotator.cli.flags import make_engine, spec_from_args
from annotator.errors import AnnotatorError


def register(subparsers, models: argparse.ArgumentParser) -> None:
    """Add `eval clicks` and `eval labels` to the `annotator` parser (with the model flags)."""
    p = subparsers.add_parser(
        "eval", help="measure segmentation (NoC) and labelling (top-1/top-5) quality on a benchmark"
    )
    sub = p.add_subparsers(dest="eval_command", metavar="BENCHMARK", required=True)
    parents = [models]

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
    q.add_argument(
        "--mask-input",
        choices=("on", "off"),
        default="on",
        help="pass the previous answer's low-res logits with each refinement click, as SAM's "
        "interactive evaluation does (default on)",
    )
    common(q)
    q.set_defaults(handler=run_clicks)

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
    q.add_argument(
        "--exemplars",
        type=int,
        metavar="K",
        help="also measure suggestions with 0, 1, 5 and K accepted objects per class as visual "
        "exemplars (leave-one-out, ground-truth masks, first head, the vocabulary)",
    )
    common(q)
    q.set_defaults(handler=run_labels)


def _progress(total: int, what: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="object", file=sys.stderr)


def _check_counts(args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit < 1:
        raise AnnotatorError(f"--limit must be at least 1, not {args.limit}")
    if getattr(args, "max_clicks", 1) < 1:
        raise AnnotatorError(f"--max-clicks must be at least 1, not {args.max_clicks}")
    if getattr(args, "exemplars", None) is not None and args.exemplars < 1:
        raise AnnotatorError(f"--exemplars must be at least 1, not {args.exemplars}")
    if getattr(args, "top_k", 1) < 1:
        raise AnnotatorError(f"--top-k must be at least 1, not {args.top_k}")
    if args.plot is not None and args.plot.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise AnnotatorError(f"{args.plot}: --plot writes .png, .pdf or .svg")
    from annotator.io.outputs import check_output

    inputs = [p for p in (getattr(args, "masks", None), getattr(args, "coco", None)) if p]
    for output in (args.json, args.plot):  # issue 22: the one output check, before any model
        if output is not None:
            check_output(output, False, inputs, [args.images])


def _models(engine) -> dict[str, str]:
    plan = getattr(engine, "precision", None)
    return {
        "sam": str(engine.sam.identity),
        "clip": str(engine.clip.identity),
        "precision": plan.describe() if plan is not None else "fp32",
    }


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
    from annotator.evaluation.adapters import EngineSegmenter, weights_warning

    _check_counts(args)
    from annotator.evaluation.clicks import evaluate_clicks
    from annotator.evaluation.datasets import folder_dataset
    from annotator.evaluation.report import clicks_json, clicks_table, plot_clicks

    dataset = folder_dataset(args.images, args.masks).limited(args.limit)
    warning = weights_warning(spec_from_args(args))
    if warning:
        print(warning, file=sys.stderr)
    engine = make_engine(args)
    with _progress(len(dataset.samples), "clicking") as bar:
        segmenter = EngineSegmenter(engine, mask_input=args.mask_input == "on")
        report = evaluate_clicks(dataset, segmenter, args.max_clicks, bar.update)
    document = {**clicks_json(report), "models": _models(engine)}
    _finish(args, document, clicks_table(report), warning)
    if args.plot is not None:
        plot_clicks(report, args.plot)
    return 0


def run_labels(args: argparse.Namespace) -> int:
    from annotator.evaluation.adapters import EngineRegionEmbedder, EngineSegmenter, weights_warning

    _check_counts(args)
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
    warning = weights_warning(spec_from_args(args))
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
    table = labels_table(report, sizes)
    if args.exemplars is not None:
        from annotator.evaluation.exemplars import evaluate_exemplars

        with _progress(len(dataset.samples), "exemplars") as bar:
            exemplar_report = evaluate_exemplars(
                dataset,
                embedders[heads[0]],
                label_sets[1],
                (0, 1, 5, args.exemplars),
                args.top_k,
                bar.update,
            )
        document["exemplars"] = exemplar_report.as_json()
        document.setdefault("notes", []).extend(exemplar_report.notes[len(dataset.notes) :])
        table += "\n\n" + exemplar_report.table()
    _finish(args, document, table, warning)
    if args.plot is not None:
        plot_labels(report, args.plot)
    return 0
