"""ClipModel: loading (config + weights, name + weights), identity, errors, fast text encoder parity."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotator.errors import AnnotatorError, CheckpointError
from annotator.models.clip import ClipModel
from tests.timing import record
from tests.tiny_clip import VISION_CFGS, make_tiny_clip, tiny_config

TOWERS = {"convnext": "convnext", "vit": "vit", "vit_tok": "vit", "resnet": "resnet"}

TEXTS = [
    "a photo of a dog.",
    "cat",
    "",
    "a photo of a hot-air balloon over the mountains at sunrise.",
    "Straße, café and naïve résumé",
    "a very long description that goes on " * 12,  # truncated at 77 tokens by the tokenizer
    "a photo of a traffic light.",
    "x",
    "two people riding a tandem bicycle along the beach",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("tiny_clip")
    return {tower: make_tiny_clip(root, tower) for tower in TOWERS}


@pytest.fixture(scope="module")
def models(tiny) -> dict[str, ClipModel]:
    return {tower: ClipModel.load(config=c, weights=w) for tower, (c, w) in tiny.items()}


@pytest.mark.parametrize("tower", list(TOWERS))
def test_fast_text_encoder_matches_open_clip(models, tower):
    clip = models[tower]
    fast = clip.encode_text(TEXTS, batch_size=4)  # several batches, each cut at its own length
    reference = clip.encode_text_reference(TEXTS)
    assert fast.shape == (len(TEXTS), clip.embed_dim) and fast.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert np.abs(fast - reference).max() <= 1e-4
    # each text keeps its own row: a batch of one gives the same vector
    single = clip.encode_text([TEXTS[3]])
    assert np.abs(single[0] - fast[3]).max() <= 1e-4
    # open_clip's own forward, unnormalised, agrees too (guards encode_text_reference itself)
    with torch.inference_mode():
        raw = clip.model.encode_text(open_clip.tokenize(TEXTS))
    ref = torch.nn.functional.normalize(raw, dim=-1).numpy()
    assert np.abs(fast - ref).max() <= 1e-4


def test_encode_text_progress_and_empty(models):
    clip = models["convnext"]
    calls: list[tuple[int, int]] = []
    clip.encode_text(TEXTS, batch_size=4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 9), (8, 9), (9, 9)]
    assert clip.encode_text([]).shape == (0, clip.embed_dim)


@pytest.mark.parametrize("tower", list(TOWERS))
def test_attributes_from_model(models, tower):
    clip = models[tower]
    assert clip.tower == TOWERS[tower]
    assert clip.image_size == 64 and clip.embed_dim == 32
    assert clip.logit_scale == pytest.approx(float(clip.model.logit_scale.detach().exp()))
    np.testing.assert_allclose(clip.mean, open_clip.OPENAI_DATASET_MEAN, rtol=1e-6)
    np.testing.assert_allclose(clip.std, open_clip.OPENAI_DATASET_STD, rtol=1e-6)


def test_encode_image_uses_native_preprocessing(models):
    clip = models["convnext"]
    rng = np.random.default_rng(1)
    square = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    # at native size open_clip's PIL transform is only ToTensor + Normalize
    direct = clip.encode_tensor(clip.normalize_pixels(square))
    np.testing.assert_allclose(clip.encode_image(square), direct, atol=1e-5)
    wide = rng.integers(0, 256, (64, 160, 3), dtype=np.uint8)
    center = wide[:, 48:112]  # shortest side already 64 px: open_clip centre-crops
    np.testing.assert_allclose(clip.encode_image(wide), clip.encode_image(center), atol=1e-5)
    assert np.linalg.norm(clip.encode_image(wide)) == pytest.approx(1.0, abs=1e-5)


def test_identity_names_config_and_weights(tmp_path, tiny):
    c1, w1 = tiny["convnext"]
    _, w2 = make_tiny_clip(tmp_path, "convnext", seed=1)
    a = ClipModel.load(config=c1, weights=w1)
    b = ClipModel.load(config=c1, weights=w2)
    again = ClipModel.load(config=c1, weights=w1)
    vit = ClipModel.load(config=tiny["vit"][0], weights=tiny["vit"][1])
    assert a.identity == again.identity
    assert len({a.identity, b.identity, vit.identity}) == 3
    assert a.identity.split(":")[0] == b.identity.split(":")[0]  # same config part


def test_hf_style_config_with_preprocess(tmp_path, tiny):
    _, weights = tiny["vit"]
    doc = {
        "model_cfg": tiny_config("vit"),
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    }
    config = tmp_path / "open_clip_config.json"
    config.write_text(json.dumps(doc))
    clip = ClipModel.load(config=config, weights=weights)
    np.testing.assert_allclose(clip.mean, 0.5)
    np.testing.assert_allclose(clip.std, 0.25)
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    expected = (128 / 255 - 0.5) / 0.25
    np.testing.assert_allclose(clip.normalize_pixels(image).numpy(), expected, atol=1e-6)


def test_name_and_weights_file(tmp_path, tiny):
    # a registered architecture name plus a local weights file takes open_clip's by-name path
    cfg = tmp_path / "annotator-test-tiny-vit.json"
    cfg.write_text(json.dumps(tiny_config("vit")))
    open_clip.add_model_config(cfg)
    by_name = ClipModel.load("annotator-test-tiny-vit", weights=tiny["vit"][1])
    by_config = ClipModel.load(config=tiny["vit"][0], weights=tiny["vit"][1])
    assert by_name.identity.startswith("annotator-test-tiny-vit:")
    assert by_name.identity.split(":")[1] == by_config.identity.split(":")[1]
    as_path = ClipModel.load("annotator-test-tiny-vit", pretrained=str(tiny["vit"][1]))
    assert as_path.identity == by_name.identity  # open_clip's habit: a file path as `pretrained`
    np.testing.assert_allclose(by_name.encode_text(TEXTS), by_config.encode_text(TEXTS), atol=1e-6)


@pytest.mark.parametrize("tower", list(TOWERS))
def test_the_uninitialised_build_equals_open_clips_own_load(tmp_path, tiny, tower):
    """`create_from_file` builds without random initialisation and loads with open_clip's load_checkpoint:
    every parameter and buffer (the causal masks too), the preprocessing and the outputs are
    exactly those of `open_clip.create_model(name, pretrained=FILE)`."""
    from annotator.models.clip_config import register_config
    from annotator.models.clip_load import build_uninitialised, create_from_file

    config, weights = tiny[tower]
    name = register_config(tiny_config(tower))
    assert build_uninitialised(name, None) is not None  # the fast path is the one taken
    ours = create_from_file(name, str(weights), weights, config, "cpu").eval()
    theirs = open_clip.create_model(name, pretrained=str(weights), pretrained_text=False).eval()
    a = {**dict(ours.named_parameters()), **dict(ours.named_buffers())}
    b = {**dict(theirs.named_parameters()), **dict(theirs.named_buffers())}
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert open_clip.get_model_preprocess_cfg(ours) == open_clip.get_model_preprocess_cfg(theirs)
    tokens = open_clip.get_tokenizer(name)(TEXTS)
    size = open_clip.get_model_preprocess_cfg(ours)["size"]
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    image = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(ours.encode_text(tokens), theirs.encode_text(tokens))
        assert torch.equal(ours.encode_image(image), theirs.encode_image(image))


@pytest.mark.parametrize("tower", ["convnext", "vit"])
def test_a_half_precision_file_loads_as_open_clips_float32_model(tmp_path, tiny, tower):
    """The file's tensors are assigned, not copied (issue 26): a float16 file still gives the
    float32 model a copy into open_clip's built model gives, bit for bit."""
    from annotator.models.clip_config import register_config
    from annotator.models.clip_load import create_from_file

    config, weights = tiny[tower]
    state = torch.load(weights, weights_only=True)
    half = tmp_path / f"{tower}-half.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, half)
    name = register_config(tiny_config(tower))
    ours = create_from_file(name, str(half), half, config, "cpu")
    theirs = open_clip.create_model(name, pretrained=str(half), pretrained_text=False)
    a = {**dict(ours.named_parameters()), **dict(ours.named_buffers())}
    b = {**dict(theirs.named_parameters()), **dict(theirs.named_buffers())}
    assert a.keys() == b.keys()
    assert {t.dtype for t in b.values() if t.is_floating_point()} == {torch.float32}
    changed = 0
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].is_contiguous(), key
        assert torch.equal(a[key], b[key]), key
        changed += key in state and not torch.equal(state[key], b[key])  # rounded to half
    assert changed > 0  # the file really was another precision than the model


_LOAD_PEAK = """
import json, sys
from pathlib import Path
from annotator.models.clip_config import register_config
from annotator.models.clip_load import create_from_file
cfg = json.loads(sys.argv[1]); weights = Path(sys.argv[2])
name = register_config(cfg)
def status_kb(field):  # VmHWM, unlike ru_maxrss, is this program's own (not the forking parent's)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
before = status_kb("VmRSS")
model = create_from_file(name, str(weights), weights, None, "cpu")
print(json.dumps({"grew_kb": status_kb("VmHWM") - before, "before_kb": before}))
"""


@pytest.mark.slow
def test_loading_a_weights_file_holds_the_weights_once(tmp_path):
    """Issue 26: the peak memory of loading CLIP weights is about the file, not file + model (the
    copy into a built model held both: 2x). A ~250 MB model in a fresh process."""
    import subprocess
    import sys

    cfg = tiny_config("vit")
    cfg["text_cfg"] = {**cfg["text_cfg"], "width": 512, "heads": 8, "layers": 12}
    torch.manual_seed(0)
    weights = tmp_path / "big.pt"
    torch.save(open_clip.CLIP(**cfg).state_dict(), weights)
    size_kb = weights.stat().st_size / 1024
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_PEAK, json.dumps(cfg), str(weights)],
        capture_output=True, text=True, timeout=300, env=env, check=True,
    )  # fmt: skip
    grew = json.loads(out.stdout.strip().splitlines()[-1])["grew_kb"]
    assert size_kb > 200_000
    assert grew < 1.4 * size_kb, (out.stdout, size_kb)  # copying into a built model: >= 2x


def test_an_architecture_with_unsaved_state_takes_open_clips_path(tiny, monkeypatch):
    """A non-persistent buffer other than the causal mask cannot be rebuilt: the usual build."""
    from annotator.models import clip_load
    from annotator.models.clip_config import register_config

    config, weights = tiny["vit"]
    name = register_config(tiny_config("vit"))
    real = open_clip.create_model

    def with_extra_buffer(*args, **kwargs):
        model = real(*args, **kwargs)
        model.visual.register_buffer("scratch", torch.zeros(3), persistent=False)
        return model

    monkeypatch.setattr(clip_load.open_clip, "create_model", with_extra_buffer)
    assert clip_load.build_uninitialised(name, None) is None
    model = clip_load.create_from_file(name, str(weights), weights, config, "cpu")
    assert torch.equal(model.visual.scratch, torch.zeros(3))


def test_mismatched_weights_name_both_files(tiny):
    config, _ = tiny["vit"]
    _, weights = tiny["resnet"]
    with pytest.raises(CheckpointError) as info:
        ClipModel.load(config=config, weights=weights)
    message = str(info.value)
    assert str(config) in message and str(weights) in message and "\n" not in message


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "not a readable JSON"),
        ('{"embed_dim": 32}', "not an open_clip model config"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_bad_config_files(tmp_path, tiny, content, fragment):
    config = tmp_path / "bad.json"
    config.write_text(content)
    with pytest.raises(CheckpointError, match=fragment) as info:
        ClipModel.load(config=config, weights=tiny["vit"][1])
    assert str(config) in str(info.value)


def test_unreadable_or_missing_files(tmp_path, tiny):
    config, _ = tiny["vit"]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        ClipModel.load(config=config, weights=junk)
    with pytest.raises(CheckpointError, match="not found"):
        ClipModel.load(config=config, weights=tmp_path / "absent.pt")
    with pytest.raises(CheckpointError, match="not found"):
        ClipModel.load(config=tmp_path / "absent.json", weights=tiny["vit"][1])
    with pytest.raises(CheckpointError, match="needs a weights file"):
        ClipModel.load(config=config)


def test_unknown_names_and_tags_fail_before_any_download(tiny):
    with pytest.raises(CheckpointError, match="unknown CLIP model"):
        ClipModel.load("no-such-model", pretrained="openai")
    with pytest.raises(CheckpointError, match="known tags: .*openai"):
        ClipModel.load("RN50", pretrained="no-such-tag")
    with pytest.raises(CheckpointError) as info:  # real architecture, tiny weights
        ClipModel.load("RN50", weights=tiny["resnet"][1])
    assert "RN50" in str(info.value) and str(tiny["resnet"][1]) in str(info.value)
    assert issubclass(CheckpointError, AnnotatorError)


@pytest.mark.slow
def test_fast_text_encoder_throughput_on_real_size_tower():
    """convnext_base_w's text tower (width 640, 12 layers), random init; ≥ 3x open_clip's
    `encode_text` throughput on short prompts. The reference always runs 77 tokens, so its
    throughput is measured on fewer prompts to keep the test to a few seconds."""
    cfg = open_clip.get_model_config("convnext_base_w")
    torch.manual_seed(0)
    model = open_clip.CLIP(
        cfg["embed_dim"], vision_cfg=VISION_CFGS["vit"], text_cfg=cfg["text_cfg"]
    )
    clip = ClipModel(model, open_clip.get_tokenizer("convnext_base_w"), "text-bench")
    prompts = [f"a photo of a {name}." for name in open_clip.IMAGENET_CLASSNAMES[:32]]

    def cpu_seconds(fn, texts) -> float:
        start = time.thread_time()  # CPU time of this thread: robust to other processes' load
        fn(texts)
        return (time.thread_time() - start) / len(texts)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # all work on this thread, so thread_time sees all of it
    try:
        fast, reference = [], []
        for _ in range(2):  # interleaved, best of each
            fast.append(cpu_seconds(clip.encode_text, prompts[:32]))
            reference.append(cpu_seconds(clip.encode_text_reference, prompts[:4]))
    finally:
        torch.set_num_threads(threads)
    fast, reference = min(fast), min(reference)
    assert reference / fast >= 3.0, f"speed-up {reference / fast:.1f}x"
    np.testing.assert_allclose(
        clip.encode_text(prompts[:4]), clip.encode_text_reference(prompts[:4]), atol=1e-4
    )


# ------------------------------------------------------- crafted configs (issue #11): refused first
def _crafted(tmp_path: Path, tiny, change) -> tuple[Path, Path]:
    config, weights = tiny["vit"]
    cfg = json.loads(config.read_text())
    change(cfg)
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(cfg))
    return path, weights


def _set(tower: str, key: str, value):
    def change(cfg):
        cfg[tower][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (_set("text_cfg", "layers", 10**6), "text_cfg.layers = 1000000 is outside 0..128"),
        (_set("text_cfg", "width", 10**6), "text_cfg.width = 1000000 is outside"),
        (_set("text_cfg", "heads", 0), "text_cfg.heads = 0 is outside"),
        (_set("text_cfg", "heads", 3), "not a multiple of heads 3"),
        (_set("text_cfg", "context_length", 10**6), "text_cfg.context_length"),
        (_set("text_cfg", "vocab_size", 10**7), "out of range"),
        (_set("text_cfg", "mlp_ratio", 1e9), "mlp_ratio = 1000000000.0 is outside"),
        (_set("text_cfg", "layers", "12"), "text_cfg.layers = '12' is outside"),
        (_set("text_cfg", "layers", True), "text_cfg.layers = True is outside"),
        (_set("vision_cfg", "layers", 10**5), "vision_cfg.layers = 100000 is outside"),
        (_set("vision_cfg", "width", 100_000), "vision_cfg.width = 100000 is outside"),
        (_set("vision_cfg", "image_size", 10**5), "vision_cfg.image_size = 100000"),
        (_set("vision_cfg", "image_size", [64, 64, 64] * 4), "vision_cfg.image_size"),
        (_set("vision_cfg", "patch_size", 0), "vision_cfg.patch_size = 0 is outside"),
        (_set("vision_cfg", "patch_size", 128), "larger than the image"),
        (_set("vision_cfg", "head_width", 48), "not a multiple of head_width 48"),
        (_set("vision_cfg", "timm_model_pretrained", True), "would download weights"),
        (lambda cfg: cfg.update(embed_dim=2**40), "out of range"),
        (lambda cfg: cfg.update(embed_dim=0), "embed_dim = 0 is outside"),
        (lambda cfg: cfg.update(preprocess_cfg={"size": 100_000}), "preprocess_cfg.image_size"),
        (lambda cfg: cfg.update(model_cfg=None), "needs embed_dim"),
        # within every bound, but far more parameters than the 14 MB weights file can hold
        (_set("text_cfg", "layers", 120), "but vit-0.pt holds only"),
        (_set("text_cfg", "width", 4096), "but vit-0.pt holds only"),
    ],
)
def test_crafted_configs_are_refused_before_allocation(tmp_path, tiny, change, fragment):
    import resource

    config, weights = _crafted(tmp_path, tiny, change)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as caught:
        ClipModel.load(config=config, weights=weights)
    elapsed = time.perf_counter() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    message = str(caught.value)
    assert fragment in message and "\n" not in message and str(config) in message
    record("refusing a crafted CLIP checkpoint", seconds=elapsed, bound_was=10)
    assert grown_mb < 200, f"peak memory grew by {grown_mb:.0f} MB before the refusal"


def test_a_config_that_is_a_fifo_or_huge_or_deep_is_one_line(tmp_path, tiny):
    _, weights = tiny["vit"]
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 << 20) + b"{}")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path, fragment in ((deep, "nested too deeply"), (big, "too large"), (fifo, "regular file")):
        with pytest.raises(CheckpointError, match=fragment):
            ClipModel.load(config=path, weights=weights)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = [
    "embed_dim",
    "layers",
    "width",
    "heads",
    "head_width",
    "patch_size",
    "image_size",
    "context_length",
    "vocab_size",
    "mlp_ratio",
    "pool_type",
    "timm_model_name",
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    doc=_JSON,
    edits=st.lists(
        st.tuples(st.sampled_from(["", "vision_cfg", "text_cfg"]), st.sampled_from(_KEYS), _JSON),
        max_size=4,
    ),
)
def test_random_json_into_the_config_loader_is_bounded_or_one_line(tmp_path, tiny, doc, edits):
    """Random JSON documents, and a valid config with random values at its size keys: the loader
    either accepts sizes within the bounds or raises one CheckpointError line, quickly."""
    from annotator.models import clip_config

    base = json.loads(tiny["vit"][0].read_text())
    for tower, key, value in edits:
        (base if not tower else base[tower])[key] = value
    for content in (doc, base):
        path = tmp_path / "random.json"
        path.write_text(json.dumps(content, allow_nan=True))
        start = time.perf_counter()
        try:
            model_cfg, _ = clip_config.read_config(path)
        except CheckpointError as error:
            assert "\n" not in str(error) and str(path) in str(error)
            continue
        finally:
            assert time.perf_counter() - start < 30  # never builds the model (minutes, or OOM)
        for tower in ("vision_cfg", "text_cfg"):
            for key, (low, high) in clip_config.SIZE_BOUNDS.items():
                value = model_cfg[tower].get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    assert low <= value <= high
