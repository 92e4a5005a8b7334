"""`annotator weights list | download | verify`: the known model files."""

from __future__ import annotations

import argparse
from pathlib import Path

from annotator.errors import AnnotatorError


def register(sub, models: argparse.ArgumentParser) -> None:
    p = sub.add_parser("weights", help="list, download or verify model files")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    q = wsub.add_parser("list", help="known checkpoints and whether they are cached")
    q.set_defaults(handler=cmd_list)
    q = wsub.add_parser("download", help="download a known checkpoint (resumes, verifies sha256)")
    q.add_argument("name", help="a name from `annotator weights list`, e.g. sam_vit_b or sam3")
    q.set_defaults(handler=cmd_download)
    q = wsub.add_parser("verify", help="check a file against a known checkpoint's size and sha256")
    q.add_argument("name", help="a name from `annotator weights list`")
    q.add_argument(
        "path", type=Path, nargs="?", help="the file to check (default: the cached download)"
    )
    q.set_defaults(handler=cmd_verify)


def cmd_list(args: argparse.Namespace) -> int:
    from annotator.models import weights

    for known in weights.list_known():
        state = "cached" if weights.is_cached(known.name) else "missing"
        size = known.size_label or "?"
        print(f"{known.name:<24} {size:>8}  {state:<8} {known.url}")
    from annotator.models.sam3 import HF_REPO, sam3_cache_dir

    state = "cached" if (sam3_cache_dir() / "config.json").is_file() else "missing"
    print(f"{'sam3':<24} {'3400 MB':>8}  {state:<8} https://huggingface.co/{HF_REPO} (gated)")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from annotator.models import weights

    if args.name == "sam3":  # a Hugging Face repository (gated), not a single file
        from annotator.models.sam3 import download_sam3

        print(download_sam3())
        return 0
    print(weights.download_known(args.name, progress=True))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from annotator.models import weights

    known = {k.name: k for k in weights.list_known()}
    if args.name not in known:
        raise AnnotatorError(f"unknown checkpoint {args.name!r}; known: {', '.join(known)}")
    path = args.path or weights.cache_dir() / known[args.name].filename
    if known[args.name].is_folder:
        missing = [f for f in known[args.name].files if not (path / f).is_file()]
        if missing:
            raise AnnotatorError(f"{path}: lacks {', '.join(missing)}")
        print(f"{path}: ok (all files present; no published hashes to check)")
        return 0
    if not path.is_file():
        raise AnnotatorError(f"{path}: no such file")
    if not weights.verify(path, args.name):
        raise AnnotatorError(f"{path}: does not match {args.name} (size or sha256 differs)")
    print(f"{path}: ok")
    return 0
