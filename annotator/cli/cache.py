"""`annotator cache report | prune | export | import`: look after the embedding cache."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from annotator.errors import AnnotatorError


def register(sub, models: argparse.ArgumentParser) -> None:
    p = sub.add_parser("cache", help="report, prune, export or import cached embeddings")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--cache-dir",
        type=Path,
        help="the cache folder (default: $ANNOTATOR_CACHE, else the user cache)",
    )

    q = csub.add_parser("report", parents=[where], help="files, size and age by kind and model")
    q.add_argument("--json", action="store_true", help="one JSON object per group")
    q.set_defaults(handler=cmd_report)

    q = csub.add_parser("prune", parents=[where], help="remove cached files by model, kind, age")
    q.add_argument("--model", metavar="TEXT", help="models whose identity contains TEXT")
    q.add_argument("--kind", metavar="KIND", help="sam, clip, proposals or text")
    q.add_argument(
        "--older-than", metavar="AGE", help="encoded more than AGE ago, e.g. 30d, 12h, 2w"
    )
    q.add_argument("--all", action="store_true", help="everything (no filter needed)")
    q.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    q.set_defaults(handler=cmd_prune)

    q = csub.add_parser(
        "export", parents=[where], help="the cached embeddings of a project or folder, as a tar"
    )
    q.add_argument(
        "target",
        type=Path,
        metavar="PROJECT_OR_FOLDER",
        help="a project (folder or .db) or a folder of images; its images are hashed, not decoded",
    )
    q.add_argument("-o", "--output", type=Path, required=True, help="the archive (.tar or .tar.gz)")
    q.add_argument("--model", metavar="TEXT", help="only models whose identity contains TEXT")
    q.add_argument("--with-text", action="store_true", help="also the vocabulary text indexes")
    q.set_defaults(handler=cmd_export)

    q = csub.add_parser("import", parents=[where], help="add an exported archive to the cache")
    q.add_argument("archive", type=Path, help="a .tar or .tar.gz from `annotator cache export`")
    q.add_argument(
        "--max-size", metavar="SIZE", help="refuse archives larger than SIZE (default: free space)"
    )
    q.set_defaults(handler=cmd_import)


def _root(args: argparse.Namespace) -> Path:
    from annotator.cache import default_cache_dir

    return Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()


def cmd_report(args: argparse.Namespace) -> int:
    from annotator.cacheops import folder_size, group_files, human_age, human_size, iter_files

    root = _root(args)
    if args.cache_dir and not root.is_dir():
        raise AnnotatorError(f"{root}: no such folder")
    from annotator.models.precision import precision_of

    groups = group_files(iter_files(root))
    precisions = [precision_of(g.model_id, text=g.kind == "text") for g in groups]
    now = time.time()
    weights = folder_size(root / "weights")
    if args.json:
        for g, precision in zip(groups, precisions, strict=True):
            row = {
                "kind": g.kind,
                "model": g.model_id,
                "precision": precision,
                "files": g.count,
                "bytes": g.size,
                "oldest": g.oldest,
                "newest": g.newest,
            }
            print(json.dumps(row))
        print(json.dumps({"kind": "weights", "files": weights[0], "bytes": weights[1]}))
        return 0
    print(f"cache: {root}")
    print(
        f"{'KIND':<10} {'FILES':>8} {'SIZE':>10} {'OLDEST':>7} {'NEWEST':>7} {'PRECISION':>9}  MODEL"
    )
    for g, precision in zip(groups, precisions, strict=True):
        print(
            f"{g.kind:<10} {g.count:>8} {human_size(g.size):>10} {human_age(now - g.oldest):>7} "
            f"{human_age(now - g.newest):>7} {precision:>9}  {g.model_id}"
        )
    total = sum(g.size for g in groups)
    print(f"{'weights':<10} {weights[0]:>8} {human_size(weights[1]):>10}")
    print(f"total: {sum(g.count for g in groups)} files, {human_size(total + weights[1])}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from annotator.cacheops import human_size, parse_age, prune

    if not (args.all or args.model or args.kind or args.older_than):
        raise AnnotatorError("say what to prune: --model, --kind, --older-than, or --all")
    older = parse_age(args.older_than) if args.older_than else None
    root = _root(args)
    if not root.is_dir():
        raise AnnotatorError(f"{root}: no such folder")
    result = prune(root, args.model, args.kind, older, dry_run=args.dry_run)
    if args.dry_run:
        for file in result.files:
            print(file.path)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(result.files)} files, {human_size(result.size)}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from annotator.cacheops import export_subset, human_size

    result = export_subset(
        args.target, _root(args), args.output, model=args.model, with_text=args.with_text
    )
    print(
        f"exported {result.files} files ({human_size(result.size)}) for {result.images} images"
        f" to {args.output}; {result.missing} images have no cached embedding",
        file=sys.stderr,
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from annotator.cacheops import human_size, import_subset, parse_size

    limit = parse_size(args.max_size) if args.max_size else None
    result = import_subset(args.archive, _root(args), max_bytes=limit)
    print(
        f"imported {result.added} files ({human_size(result.size)} in the archive); "
        f"{result.present} were already cached",
        file=sys.stderr,
    )
    return 0
