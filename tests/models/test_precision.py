"""`--precision`: the capability probe, the per-part plan, the cache identities, the flags.

The equivalence of each option the `auto` table may pick is proved on real photos in
tests/models/test_precision_equivalence.py; here: the structure (fast, tiny models).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from annotator.errors import AnnotatorError
from annotator.models import precision as P
from annotator.spec import PRECISIONS, ModelSpec, parse_side

EPYC_FLAGS = {"fpu", "sse4_2", "avx", "avx2", "fma", "f16c"}  # this CI machine: no bf16, no VNNI
SAPPHIRE_FLAGS = EPYC_FLAGS | {"avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}


# -------------------------------------------------------------------------------- capability
def test_probe_on_avx2_has_no_native_bf16():
    cap = P.probe("cpu", flags=EPYC_FLAGS, environ={}, torch_isa="AVX2")
    assert (cap.bf16, cap.int8, cap.hardware_class) == (False, False, "cpu")


def test_probe_with_bf16_flags_and_avx512_torch():
    cap = P.probe("cpu", flags=SAPPHIRE_FLAGS, environ={}, torch_isa="AVX512")
    assert (cap.bf16, cap.int8, cap.hardware_class) == (True, True, "cpu-bf16")
    # a torch build (or ATEN_CPU_CAPABILITY) limited to AVX2 cannot reach the bf16 kernels
    assert not P.probe("cpu", flags=SAPPHIRE_FLAGS, environ={}, torch_isa="AVX2").bf16


@pytest.mark.parametrize(
    ("cap", "bf16", "int8"),
    [
        ("AVX2", False, False),
        ("avx2_vnni", False, True),
        ("AVX512_CORE_VNNI", False, True),
        ("AVX512_CORE_BF16", True, True),
        ("AVX512_CORE_AMX", True, True),
        ("ALL", True, True),
        ("NOT_AN_ISA", False, False),
    ],
)
def test_probe_honours_onednn_max_cpu_isa(cap, bf16, int8):
    found = P.probe(
        "cpu", flags=SAPPHIRE_FLAGS, environ={"ONEDNN_MAX_CPU_ISA": cap}, torch_isa="AVX512"
    )
    assert (found.bf16, found.int8) == (bf16, int8)


def test_probe_reads_this_machine_without_error():
    cap = P.probe("cpu")
    assert cap.device == "cpu" and cap.isa == torch.backends.cpu.get_cpu_capability()
    flags = P.cpu_flags()
    assert cap.bf16 == (bool(flags & {"avx512_bf16", "amx_bf16"}) and cap.isa.startswith("AVX512"))


def test_cpu_flags_of_an_unreadable_file_is_empty(tmp_path):
    assert P.cpu_flags(tmp_path / "absent") == set()
    (tmp_path / "cpuinfo").write_text("processor : 0\nflags\t\t: fpu avx2 fma\n")
    assert P.cpu_flags(tmp_path / "cpuinfo") == {"fpu", "avx2", "fma"}


# ------------------------------------------------------------------------------------- plan
def test_auto_only_picks_options_proven_equivalent():
    """The table the equivalence tests enforce: `auto` never picks an unproven option."""
    assert set(P.AUTO) == {"cpu", "cpu-bf16", "cuda", "cuda-bf16", "mps"}
    for row in P.AUTO.values():
        assert set(row) == set(P.PARTS)
        for part, option in row.items():
            proven = {o for options in P.EQUIVALENT[part].values() for o in options}
            assert option in proven, (part, option)
    assert "int8" not in {o for t in P.EQUIVALENT.values() for v in t.values() for o in v}
    from annotator.models.registry import FAMILIES

    assert set(P.EQUIVALENT["segmenter"]) == set(FAMILIES)  # every family has its row
    # auto applies an option only where it is proven for the loaded kind
    assert P.allowed("segmenter", "sam", "bf16") and not P.allowed("segmenter", "edgetam", "bf16")
    assert P.allowed("text", "convnext", "bf16") and not P.allowed("clip", "vit", "bf16")


def test_auto_applies_only_proven_options(engine_args):
    from annotator.engine import load_region_model

    spec = ModelSpec(
        clip_config=engine_args["clip_config"], clip_weights=engine_args["clip_weights"]
    )
    clip, _ = load_region_model(spec)
    plan = P.resolve("auto", P.Capability("cpu", "AVX512", bf16=True, int8=True))
    P.apply_plan(plan, clip=clip)
    assert (clip.image_precision, clip.text_precision) == ("bf16", "fp32")

    class EdgeTam:
        family, identity, model = "edgetam", "edgetam-x", None

    segmenter = EdgeTam()
    P.apply_plan(plan, segmenter=segmenter)
    assert (segmenter.precision, segmenter.identity) == ("fp32", "edgetam-x")


def test_auto_without_bf16_is_fp32_everywhere():
    plan = P.resolve("auto", P.probe("cpu", flags=EPYC_FLAGS, environ={}, torch_isa="AVX2"))
    assert set(plan.parts.values()) == {"fp32"}
    mocked = P.probe(
        "cpu", flags=SAPPHIRE_FLAGS, environ={"ONEDNN_MAX_CPU_ISA": "AVX2"}, torch_isa="AVX512"
    )
    assert set(P.resolve(None, mocked).parts.values()) == {"fp32"}


def test_auto_with_bf16_keeps_the_text_encoder_fp32():
    plan = P.resolve("auto", P.probe("cpu", flags=SAPPHIRE_FLAGS, environ={}, torch_isa="AVX512"))
    assert plan.parts == {"segmenter": "bf16", "clip": "bf16", "text": "fp32", "decoder": "fp32"}
    assert "cpu-bf16" not in plan.describe() and "segmenter bf16" in plan.describe()


def test_forced_options_leave_the_decoders_fp32():
    cap = P.Capability("cpu", "AVX2")
    for option in ("fp32", "bf16", "int8"):
        plan = P.resolve(option, cap)
        assert plan["decoder"] == "fp32"
        assert {plan[p] for p in ("segmenter", "clip", "text")} == {option}


def test_int8_off_a_cpu_and_unknown_names_are_one_line_errors():
    with pytest.raises(AnnotatorError, match="CPU only"):
        P.resolve("int8", P.Capability("cuda", "H100", True, True))
    with pytest.raises(AnnotatorError, match="precision is one of"):
        P.resolve("fp16", P.Capability())


# ------------------------------------------------------------------------------- identities
def test_identity_tags():
    assert P.tagged("sam-vit_b-0123", "fp32") == "sam-vit_b-0123"
    assert P.tagged("sam-vit_b-0123", "channels_last") == "sam-vit_b-0123"
    assert P.tagged("sam-vit_b-0123", "bf16") == "sam-vit_b-0123@bf16"
    assert P.untagged("sam-vit_b-0123@int8") == "sam-vit_b-0123"
    assert P.alternatives("m@bf16") == ["m", "m@int8"]
    assert P.alternatives("m:t|pool@1024") == ["m:t@bf16|pool@1024", "m:t@int8|pool@1024"]
    assert P.precision_of("m:tag@bf16|pool@1024") == "bf16"
    assert P.precision_of("m:tag|pool@1024") == "fp32"
    assert P.precision_of("sam2-i1024-abc@int8") == "int8"
    assert P.precision_of("convnext_base_w_laion_bf16-0123456789abcdef", text=True) == "bf16"


# ------------------------------------------------------------------------------------- spec
def test_spec_precision_field_round_trips():
    spec = ModelSpec(precision="bf16", mix_precision=True)
    assert ModelSpec.from_settings(spec.to_settings()) == spec
    assert ModelSpec.from_settings(ModelSpec().to_settings()) == ModelSpec()
    assert ModelSpec().with_side(parse_side("precision=int8")).precision == "int8"
    assert not ModelSpec(precision="fp32").differs_only_in_head(ModelSpec(precision="bf16"))
    assert PRECISIONS == ("auto", "fp32", "bf16", "int8")
    with pytest.raises(AnnotatorError, match="precision is one of"):
        ModelSpec(precision="half")
    with pytest.raises(ValueError, match="precision is one of"):
        parse_side("precision=fp16")
    with pytest.raises(AnnotatorError, match="yes or no"):
        ModelSpec.from_settings({"mix_precision": "maybe"})


def test_cli_flag_and_bad_value():
    from annotator.cli.flags import model_flags, spec_from_args

    parser = model_flags()
    spec = spec_from_args(parser.parse_args(["--precision", "bf16", "--allow-mixed-precision"]))
    assert (spec.precision, spec.mix_precision) == ("bf16", True)
    assert spec_from_args(parser.parse_args([])) == ModelSpec()
    bad = subprocess.run(
        [sys.executable, "-m", "annotator", "segment", "x.jpg", "--precision", "half"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert bad.returncode == 2 and "invalid choice: 'half'" in bad.stderr


# ------------------------------------------------------------------------- applying (tiny)
def _engine(engine_args, cache_dir, precision, mix=False):
    from annotator.engine import Engine

    return Engine.from_paths(
        **engine_args, cache_dir=cache_dir, precision=precision, mix_precision=mix
    )


def test_engine_runs_each_forced_precision_and_tags_its_cache(engine_args, photo, tmp_path):
    from annotator.cache import model_folder

    plain = _engine(engine_args, tmp_path, "fp32")
    assert plain.precision.requested == "fp32"
    reference = plain.embed(photo)
    for option in ("bf16", "int8"):
        engine = _engine(engine_args, tmp_path, option)
        assert engine.sam.identity == f"{plain.sam.identity}@{option}"
        assert engine.region_model_id.startswith(f"{plain.clip.identity}@{option}|")
        assert engine.index.model_id == f"{plain.clip.identity}@{option}"
        embedding = engine.embed(photo)
        assert embedding.sam.features.dtype == np.float32
        assert embedding.clip["features"].dtype == np.float32
        # the numbers differ from fp32's (the option ran), but stay close
        a, b = reference.sam.features.ravel(), embedding.sam.features.ravel()
        assert not np.array_equal(a, b)
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.98
        proposal = engine.segment(embedding, [(100, 100, True)])
        assert proposal.mask.shape == photo.shape[:2] and proposal.labels
        assert (tmp_path / "embeddings" / "sam" / model_folder(engine.sam.identity)).is_dir()


def test_a_bf16_embedding_never_answers_fp32_unless_mixing_is_allowed(
    engine_args, photo_path, tmp_path
):
    bf16 = _engine(engine_args, tmp_path, "bf16")
    bf16.embed(photo_path)
    fp32 = _engine(engine_args, tmp_path, "fp32")
    assert not fp32.is_cached(photo_path)
    mixed = _engine(engine_args, tmp_path, "fp32", mix=True)
    assert mixed.is_cached(photo_path)
    calls = []
    mixed.sam.encode = lambda image: calls.append(image)  # must not be called: the cache answers
    mixed.head.prepare = lambda image: calls.append(image)
    embedding = mixed.embed(photo_path)
    assert calls == [] and embedding.complete
    assert embedding.sam.features.dtype == np.float32


def test_cache_report_shows_the_precision(engine_args, photo_path, tmp_path):
    for option in ("fp32", "bf16"):
        _engine(engine_args, tmp_path, option).embed(photo_path)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-m", "annotator", "cache", "report", "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert run.returncode == 0, run.stderr
    assert "PRECISION" in run.stdout
    rows = [
        line.split()
        for line in run.stdout.splitlines()[2:]
        if line.startswith(("sam", "clip", "text"))
    ]
    assert sorted((r[0], r[6]) for r in rows) == [
        ("clip", "bf16"),
        ("clip", "fp32"),
        ("sam", "bf16"),
        ("sam", "fp32"),
        ("text", "bf16"),
        ("text", "fp32"),
    ]
    as_json = subprocess.run(
        [sys.executable, "-m", "annotator", "cache", "report", "--json"]
        + ["--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=root,
    )
    precisions = {json.loads(line).get("precision") for line in as_json.stdout.splitlines()}
    assert {"fp32", "bf16"} <= precisions


def test_eval_commands_take_precision(engine_args, tmp_path, capsys):
    """`eval clicks` / `eval labels --precision`: a user checks an option with real weights."""
    from annotator.cli import main
    from tests.conftest import cli_flags, shared_data

    root = shared_data("grabcut")
    out = tmp_path / "clicks.json"
    argv = ["eval", "clicks", "--images", str(root / "images"), "--masks", str(root / "masks")]
    argv += ["--limit", "1", "--max-clicks", "2", "--json", str(out), "--precision", "bf16"]
    assert main([*argv, *cli_flags(engine_args), "--cache-dir", str(tmp_path)]) == 0
    models = json.loads(out.read_text())["models"]
    assert models["sam"].endswith("@bf16") and "precision bf16" in models["precision"]
    coco = shared_data("coco_mval80")
    out = tmp_path / "labels.json"
    argv = ["eval", "labels", "--images", str(coco / "img"), "--masks", str(coco / "gt")]
    argv += ["--limit", "1", "--no-click", "--heads", "pool", "--json", str(out)]
    argv += ["--precision", "int8", "--cache-dir", str(tmp_path)]
    assert main([*argv, *cli_flags(engine_args)]) == 0
    assert "precision int8" in json.loads(out.read_text())["models"]["precision"]
    capsys.readouterr()
