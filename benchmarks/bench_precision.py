"""`--precision auto` against fp32 eager, per model part, on this machine (one run, ratios).

    PYTHONPATH=$PWD python benchmarks/bench_precision.py [--work DIR] [--repeats 3]
        [--parts clip,sam,sam2,edgetam,text,click] [--text-count 1024] [--forced bf16,int8]

Full-size random-weight models (benchmarks/models.py; speed does not depend on the weights): the
convnext_base_w CLIP half (the pool head's dense features at 1,024 px), the image encoders of
SAM 1 ViT-B, SAM 2.1 Hiera-T and EdgeTAM at 1,024 px, the text encoder on the default
vocabulary's first `--text-count` texts (0: all of it), and a click -> mask + top-5 labels
through `Engine.segment`. Per part: fp32 eager and `auto` as loaded by the engine's own code
(`precision.plan_for` on this CPU, then `apply_segmenter` / `apply_clip`), timed alternately
(`--repeats` rounds after one warm-up each, medians); the forced options (`--forced`: bf16,
emulated on a CPU without it, and int8) once each, with their feature cosine
against fp32 (one cold run: emulated bf16 takes minutes). Also the plan `auto` makes on a CPU without bf16 (ONEDNN_MAX_CPU_ISA=AVX2) and on
a mocked bf16 CPU: the first must be fp32 everywhere.

Raw JSON into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotator.models import precision as P  # noqa: E402
from benchmarks._common import interleaved_samples  # noqa: E402
from benchmarks.models import clip_weights, photos, segmenter_checkpoint  # noqa: E402


def _cosine(a, b) -> float:
    a = np.concatenate([np.asarray(x, np.float64).ravel() for x in a])
    b = np.concatenate([np.asarray(x, np.float64).ravel() for x in b])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _alternate(fns: dict, repeats: int) -> dict[str, dict]:
    """Each function once as a warm-up, then `repeats` rounds in turn; medians and samples."""
    outputs = {name: fn() for name, fn in fns.items()}
    samples = interleaved_samples(
        fns, repeats, lambda name, s: print(f"  {name}: {s:.3f} s", file=sys.stderr, flush=True)
    )
    return {
        name: {"median_s": statistics.median(v), "samples_s": v, "output": outputs[name]}
        for name, v in samples.items()
    }


def _once(fn) -> dict:
    """One cold run (no warm-up: an emulated bf16 convnext pass takes minutes here); int8's
    weights are packed when quantised, before this."""
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    print(f"  forced: {seconds:.3f} s", file=sys.stderr, flush=True)
    return {"median_s": seconds, "samples_s": [seconds], "output": out}


def _forced(args, part: str) -> list[str]:
    return [o for o in args.forced if f"{part}:{o}" not in args.skip]


def _report(results: dict[str, dict], auto_option: str, forced_cos: bool = True) -> dict:
    base = results["fp32"]["median_s"]
    row: dict = {"auto_option": auto_option}
    for name, r in results.items():
        entry = {
            "median_s": round(r["median_s"], 4),
            "samples_s": [round(s, 4) for s in r["samples_s"]],
        }
        entry["ratio_vs_fp32"] = round(r["median_s"] / base, 3)
        if name != "fp32" and forced_cos:
            entry["cosine_vs_fp32"] = round(_cosine(r["output"], results["fp32"]["output"]), 7)
        row[name] = entry
    return row


def _segmenter_part(family: str, work: Path, image: np.ndarray, plan, args) -> dict:
    from annotator.models.registry import load_segmenter

    checkpoint = segmenter_checkpoint(family, work)
    reference = load_segmenter(checkpoint, family, "cpu")
    auto = copy.deepcopy(reference)
    P.apply_segmenter(auto, plan["segmenter"])

    def run(segmenter):
        return lambda: list(segmenter.to_arrays(segmenter.encode(image)).values())[:-2]

    results = _alternate({"fp32": run(reference), "auto": run(auto)}, args.repeats)
    for option in _forced(args, family):
        forced = copy.deepcopy(reference)
        P.apply_segmenter(forced, option)
        results[option] = _once(run(forced))
    return _report(results, plan["segmenter"])


def _clip_part(work: Path, image: np.ndarray, plan, args) -> dict:
    from annotator.models.clip import ClipModel
    from annotator.models.region import make_head

    reference = ClipModel.load("convnext_base_w", weights=clip_weights(work))
    variants = {"fp32": reference, "auto": copy.deepcopy(reference)}
    P.apply_clip(variants["auto"], plan["clip"], "fp32")
    extra = {}
    for option in ["channels_last", *_forced(args, "clip")]:
        extra[option] = copy.deepcopy(reference)
        P.apply_clip(extra[option], option, "fp32")

    def run(clip):
        head = make_head("pool", clip)  # 1,024 px long side: the default
        return lambda: [head.prepare(image)["features"]]

    results = _alternate({name: run(c) for name, c in variants.items()}, args.repeats)
    for option, clip in extra.items():
        results[option] = _once(run(clip))
    return _report(results, plan["clip"])


def _text_part(work: Path, plan, args) -> dict:
    from annotator.models.clip import ClipModel
    from annotator.vocab.index import DEFAULT_TEMPLATES
    from annotator.vocab.vocabulary import load_vocabulary

    entries = list(load_vocabulary("default"))
    texts = [DEFAULT_TEMPLATES[0].format(t) for e in entries for t in e.texts]
    if args.text_count:
        texts = texts[: args.text_count]
    reference = ClipModel.load("convnext_base_w", weights=clip_weights(work))
    auto = copy.deepcopy(reference)
    P.apply_clip(auto, "fp32", plan["text"])

    def run(clip):
        return lambda: [clip.encode_text(texts)]

    results = _alternate({"fp32": run(reference), "auto": run(auto)}, max(1, args.repeats - 1))
    for option in _forced(args, "text"):
        forced = copy.deepcopy(reference)
        P.apply_clip(forced, "fp32", option)
        results[option] = _once(run(forced))
    row = _report(results, plan["text"])
    row["texts"] = len(texts)
    row["vocabulary_texts"] = sum(len(e.texts) for e in entries)
    return row


def _text_batch_part(work: Path, args) -> dict:
    """The fp32 text encoder's rows per call on a CPU (`clip._CPU_BATCH`), alternately."""
    from annotator.models import clip as clip_module
    from annotator.models.clip import ClipModel
    from annotator.vocab.index import DEFAULT_TEMPLATES
    from annotator.vocab.vocabulary import load_vocabulary

    entries = list(load_vocabulary("default"))
    texts = [DEFAULT_TEMPLATES[0].format(t) for e in entries for t in e.texts]
    texts = texts[: args.text_count or None]
    model = ClipModel.load("convnext_base_w", weights=clip_weights(work))
    shipped = clip_module._CPU_BATCH

    def run(rows):
        def encode():
            clip_module._CPU_BATCH = rows
            try:
                return [model.encode_text(texts)]
            finally:
                clip_module._CPU_BATCH = shipped

        return encode

    sizes = {"fp32": shipped, **{f"rows_{n}": n for n in (16, 32, 128) if n != shipped}}
    results = _alternate({name: run(n) for name, n in sizes.items()}, args.repeats)
    row = _report(results, f"rows_{shipped}")
    row["texts"] = len(texts)
    return row


def _click_part(work: Path, photo: Path, args) -> dict:
    """Engine.segment (mask + top-5 over a vocabulary of the default's first texts) with fp32
    and auto engines, SAM 2.1 tiny + convnext_base_w, alternately, p50 of 20 clicks."""
    from annotator.engine import Engine
    from annotator.vocab.vocabulary import load_vocabulary

    vocab = work / "vocab-slice.txt"
    names = [e.name for e in list(load_vocabulary("default"))[: args.text_count or None]]
    vocab.write_text("\n".join(n.replace(",", " ") for n in names) + "\n", encoding="utf-8")
    engines = {}
    for name, precision in (("fp32", "fp32"), ("auto", "auto")):
        engines[name] = Engine.from_paths(
            segmenter="sam2",
            checkpoint=segmenter_checkpoint("sam2", work),
            clip_model="convnext_base_w",
            clip_weights=clip_weights(work),
            vocabulary=vocab,
            cache_dir=work / "cache",
            device="cpu",
            precision=precision,
        )
    embeddings = {name: e.embed(photo) for name, e in engines.items()}
    h, w = embeddings["fp32"].size
    point = [(w / 2, h / 2, True)]

    def click(name):
        return lambda: [engines[name].segment(embeddings[name], point).mask]

    results = _alternate({name: click(name) for name in engines}, 20)
    row = _report(results, "fp32/auto engine", forced_cos=False)
    row["same_mask"] = bool(
        np.array_equal(results["fp32"]["output"][0], results["auto"]["output"][0])
    )
    row["vocabulary_entries"] = len(names)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/annotator-bench-precision"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="clip,sam,sam2,edgetam,text,click")
    parser.add_argument("--text-count", type=int, default=1024, help="0: the whole vocabulary")
    parser.add_argument("--forced", default="bf16,int8", help="forced options, timed once")
    parser.add_argument(
        "--skip",
        default="",
        help="PART:OPTION pairs not to time, e.g. clip:bf16 (emulated bf16 on a convnext at "
        "1,024 px takes many minutes on a CPU without it)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.forced = [o for o in args.forced.split(",") if o]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(os.cpu_count() or 1)

    capability = P.probe("cpu")
    plan = P.resolve("auto", capability)
    no_bf16 = P.resolve("auto", P.probe("cpu", environ={"ONEDNN_MAX_CPU_ISA": "AVX2"}))
    bf16_cpu = P.Capability("cpu", "AVX512", bf16=True, int8=True)
    document = {
        "benchmark": "bench_precision",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "torch_cpu_capability": capability.isa,
            "threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
        "capability": capability.describe(),
        "auto_plan": plan.parts,
        "auto_plan_with_onednn_avx2": no_bf16.parts,
        "auto_plan_on_a_mocked_bf16_cpu": P.resolve("auto", bf16_cpu).parts,
        "no_bf16_fallback_is_fp32": set(no_bf16.parts.values()) == {"fp32"},
        "command": " ".join(sys.argv),
        "parts": {},
    }
    out = args.out or ROOT / "benchmarks" / "results" / (
        time.strftime("%Y-%m-%d-%H%M") + f"-precision-cpu-{os.cpu_count()}cores.json"
    )
    photo = photos(1)[0]
    from annotator.io.images import load_image

    image = load_image(photo)
    for part in args.parts.split(","):
        print(f"{part}:", file=sys.stderr, flush=True)
        if part == "clip":
            row = _clip_part(args.work, image, plan, args)
        elif part in ("sam", "sam2", "edgetam"):
            row = _segmenter_part(part, args.work, image, plan, args)
        elif part == "text":
            row = _text_part(args.work, plan, args)
        elif part == "text_batch":
            row = _text_batch_part(args.work, args)
        elif part == "click":
            row = _click_part(args.work, photo, args)
        else:
            raise SystemExit(f"unknown part {part!r}")
        document["parts"][part] = row
        out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(document, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
