"""SamModel against upstream SamPredictor: same features, logits, scores and masks, bit for bit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from segment_anything import SamPredictor, build_sam_vit_b, build_sam_vit_h, build_sam_vit_l

from annotator.errors import CheckpointError, PromptError
from annotator.models.sam import (
    OFFICIAL_ARCHS,
    SamEmbedding,
    SamModel,
    build_sam_from_arch,
    infer_arch,
)
from tests.tiny_sam import TINY, TINY_OTHER, build_tiny_sam, load_reference, make_tiny_sam

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PHOTO = DATA / "grabcut" / "images" / "124080.jpg"


def _photo() -> np.ndarray:
    if not PHOTO.is_file():
        pytest.skip(f"real photographs not available ({PHOTO} is absent)")
    return np.asarray(Image.open(PHOTO).convert("RGB"))


def _synthetic() -> np.ndarray:
    """A landscape image with shapes and noise (not square: exercises padding and cropping)."""
    rng = np.random.default_rng(3)
    img = (rng.random((237, 391, 3)) * 60).astype(np.uint8)
    img[40:160, 60:200] = (200, 40, 40)
    yy, xx = np.mgrid[:237, :391]
    img[(yy - 120) ** 2 + (xx - 300) ** 2 < 50**2] = (30, 200, 90)
    return img


@pytest.fixture(scope="module")
def tiny_path(tiny_sam_path: Path) -> Path:
    """The session's tiny checkpoint (conftest), made by `tests.tiny_sam.make_tiny_sam`."""
    return tiny_sam_path


@pytest.fixture(scope="module")
def model(tiny_path: Path) -> SamModel:
    return SamModel.load(tiny_path)


@pytest.fixture(scope="module")
def predictor(tiny_path: Path) -> SamPredictor:
    return SamPredictor(load_reference(tiny_path))


@pytest.fixture(scope="module")
def scenes(model: SamModel, tiny_path: Path):
    """image kind -> (our embedding, a SamPredictor with that image set), each computed once."""
    reference = load_reference(tiny_path)
    cache: dict[str, tuple[SamEmbedding, SamPredictor]] = {}

    def get(kind: str) -> tuple[SamEmbedding, SamPredictor]:
        if kind not in cache:
            image = _synthetic() if kind == "synthetic" else _photo()
            predictor = SamPredictor(reference)
            predictor.set_image(image)
            cache[kind] = (model.encode(image), predictor)
        return cache[kind]

    return get


PROMPTS = {
    "one_point": (np.array([[120.0, 80.0]]), np.array([1]), None),
    "points_with_negative": (np.array([[120.0, 80.0], [300.0, 120.0]]), np.array([1, 0]), None),
    "outside_image": (np.array([[-15.0, 40.0], [900.0, 700.0]]), np.array([1, 0]), None),
    "box": (None, None, np.array([50.0, 30.0, 210.0, 170.0])),
    "box_and_points": (
        np.array([[100.0, 90.0], [190.0, 40.0]]),
        np.array([1, 0]),
        np.array([50.0, 30.0, 210.0, 170.0]),
    ),
}


def _assert_same(
    model: SamModel,
    predictor: SamPredictor,
    emb: SamEmbedding,
    prompt: tuple,
    multimask: bool,
    mask_input: np.ndarray | None = None,
) -> None:
    points, labels, box = prompt
    ref_masks, ref_scores, ref_low = predictor.predict(
        points, labels, box, mask_input=mask_input, multimask_output=multimask
    )
    out = model.decode(emb, points, labels, box, multimask, mask_input=mask_input)
    n = ref_low.shape[0]
    assert out.low_res_logits.shape == ref_low.shape == (n, model.low_res_size, model.low_res_size)
    assert out.low_res_logits.dtype == np.float32 and out.scores.dtype == np.float32
    np.testing.assert_allclose(out.low_res_logits, ref_low, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out.scores, ref_scores, rtol=0, atol=1e-6)
    masks = model.upscale(emb, out.low_res_logits)  # all candidates at once, as predict does
    assert masks.dtype == bool and masks.shape == (n, *emb.original_size)
    for i in range(n):
        assert np.array_equal(masks[i], ref_masks[i]), f"candidate {i} differs"
    one = model.upscale(emb, out.low_res_logits[0])
    assert one.shape == emb.original_size
    if n == 1:
        assert np.array_equal(one, ref_masks[0])
    else:
        # Alone, a candidate goes through torch's one-channel bilinear kernel, which may round a
        # float32 ULP differently: only pixels whose logit is that close to 0 may differ.
        assert (one != ref_masks[0]).mean() < 1e-4


@pytest.mark.parametrize("image_kind", ["synthetic", "photo"])
def test_encode_matches_set_image(model, predictor, image_kind):
    image = _synthetic() if image_kind == "synthetic" else _photo()
    predictor.set_image(image)
    emb = model.encode(image)
    ref = predictor.get_image_embedding()[0].numpy()
    assert emb.features.dtype == np.float32 and emb.features.shape == (32, 16, 16)
    assert np.array_equal(emb.features, ref)
    assert emb.original_size == image.shape[:2] == tuple(predictor.original_size)
    assert emb.input_size == tuple(predictor.input_size)


@pytest.mark.parametrize("image_kind", ["synthetic", "photo"])
@pytest.mark.parametrize("multimask", [True, False])
@pytest.mark.parametrize("prompt", sorted(PROMPTS))
def test_decode_and_upscale_match_predict(model, scenes, image_kind, multimask, prompt):
    emb, predictor = scenes(image_kind)
    _assert_same(model, predictor, emb, PROMPTS[prompt], multimask)


def test_masks_are_not_trivial(model, scenes):
    """The parity above means something only if the masks have both values."""
    emb, _ = scenes("synthetic")
    out = model.decode(emb, *PROMPTS["box_and_points"], True)
    fractions = [model.upscale(emb, logits).mean() for logits in out.low_res_logits]
    assert any(0.01 < f < 0.99 for f in fractions), fractions


def test_mask_input_matches_predict(model, scenes):
    emb, predictor = scenes("synthetic")
    first = model.decode(emb, *PROMPTS["one_point"], True)
    previous = first.low_res_logits[np.argmax(first.scores)][None]
    _assert_same(model, predictor, emb, PROMPTS["points_with_negative"], False, previous)


def test_read_only_cached_features(model, scenes, tmp_path):
    """Embeddings read back from a memory-mapped cache decode exactly like fresh ones."""
    emb, _ = scenes("synthetic")
    np.save(tmp_path / "f.npy", emb.features)
    cached = SamEmbedding(
        np.load(tmp_path / "f.npy", mmap_mode="r"), emb.original_size, emb.input_size
    )
    a = model.decode(emb, *PROMPTS["box"], True)
    b = model.decode(cached, *PROMPTS["box"], True)
    assert np.array_equal(a.low_res_logits, b.low_res_logits)


def test_other_layout_matches_predict(tmp_path):
    """A second, differently sized checkpoint: everything is read from the shapes."""
    path = make_tiny_sam(tmp_path / "other.pth", **TINY_OTHER)
    model = SamModel.load(path)
    arch = model.arch
    assert (arch.img_size, arch.patch_size, arch.encoder_embed_dim) == (160, 8, 48)
    assert (arch.encoder_depth, arch.encoder_num_heads, arch.mlp_ratio) == (3, 3, 2.0)
    assert (arch.window_size, arch.global_attn_indexes, arch.qkv_bias) == (3, (0, 2), False)
    assert (arch.out_chans, arch.prompt_embed_dim, arch.mask_in_chans) == (64, 64, 16)
    assert (arch.decoder_depth, arch.decoder_mlp_dim, arch.decoder_attention_downsample_rate) == (
        1,
        96,
        4,
    )
    assert (arch.num_multimask_outputs, arch.iou_head_depth, arch.iou_head_hidden_dim) == (
        2,
        2,
        24,
    )
    predictor = SamPredictor(load_reference(path, **TINY_OTHER))
    image = _synthetic()
    predictor.set_image(image)
    emb = model.encode(image)
    assert np.array_equal(emb.features, predictor.get_image_embedding()[0].numpy())
    for multimask in (True, False):
        _assert_same(model, predictor, emb, PROMPTS["box_and_points"], multimask)


@pytest.mark.parametrize(
    ("name", "builder"),
    [("vit_b", build_sam_vit_b), ("vit_l", build_sam_vit_l), ("vit_h", build_sam_vit_h)],
)
def test_official_layouts_from_shapes(name, builder):
    """The official layouts come out of the shapes alone (built on the meta device: no data)."""
    with torch.device("meta"):
        sd = builder(None).state_dict()
    arch = infer_arch(sd)
    assert arch == OFFICIAL_ARCHS[name]
    assert arch.name == name
    sam = build_sam_from_arch(arch, "meta")
    sam.load_state_dict(sd, strict=True)
    assert {k: v.shape for k, v in sam.state_dict().items()} == {k: v.shape for k, v in sd.items()}


def test_identity_is_arch_and_file_hash(model, tiny_path, tmp_path):
    digest = hashlib.sha256(tiny_path.read_bytes()).hexdigest()
    assert model.identity == f"sam-{model.arch.name}-{digest[:16]}"
    other = SamModel.load(make_tiny_sam(tmp_path / "seed1.pth", seed=1))
    assert other.identity != model.identity
    assert other.identity.split("-")[:-1] == model.identity.split("-")[:-1]


def test_wrapped_and_in_memory_state_dicts(model, scenes, tiny_path, tmp_path):
    sd = torch.load(tiny_path, weights_only=True)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in sd.items()}}, wrapped)
    emb, _ = scenes("synthetic")
    expected = model.decode(emb, *PROMPTS["box"], True)
    for m in (
        SamModel.load(wrapped),
        SamModel.from_state_dict({"state_dict": sd}),
        SamModel.from_state_dict(sd, identity="sam-test"),
    ):
        got = m.decode(emb, *PROMPTS["box"], True)
        assert np.array_equal(got.low_res_logits, expected.low_res_logits)
    assert SamModel.from_state_dict(sd, identity="sam-test").identity == "sam-test"
    a = SamModel.from_state_dict(sd).identity
    assert a == SamModel.from_state_dict(dict(sd)).identity and a.startswith("sam-vit-")


def _check_error(path: Path, *fragments: str) -> None:
    with pytest.raises(CheckpointError) as info:
        SamModel.load(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_bad_files(tmp_path, tiny_path):
    _check_error(tmp_path / "nope.pth", "not found")
    _check_error(tmp_path, "not a file")
    (tmp_path / "empty.pth").write_bytes(b"")
    _check_error(tmp_path / "empty.pth", "empty")
    (tmp_path / "notes.txt").write_text("these are not weights\n")
    _check_error(tmp_path / "notes.txt", "not a PyTorch checkpoint")
    data = tiny_path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    _check_error(tmp_path / "cut.pth", "truncated")
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 4)).state_dict(), tmp_path / "mlp.pth")
    _check_error(tmp_path / "mlp.pth", "not a Segment-Anything", "image_encoder.patch_embed")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    _check_error(tmp_path / "list.pth", "not a state dict")
    torch.save({"model": Path("x")}, tmp_path / "object.pth")
    _check_error(tmp_path / "object.pth", "besides tensors")


def test_state_dict_with_a_missing_block_tensor(tmp_path):
    sd = build_tiny_sam().state_dict()
    del sd["image_encoder.blocks.1.mlp.lin2.bias"]
    torch.save(sd, tmp_path / "broken.pth")
    _check_error(tmp_path / "broken.pth", "does not match", "mlp.lin2.bias")


def test_prompt_errors(model, scenes):
    emb, _ = scenes("synthetic")
    with pytest.raises(PromptError):
        model.decode(emb, None, None, None, True)
    with pytest.raises(PromptError):
        model.decode(emb, np.zeros((0, 2)), np.zeros(0), None, True)
    with pytest.raises(PromptError, match="degenerate"):
        model.decode(emb, None, None, np.array([50.0, 50.0, 50.0, 90.0]), True)
    with pytest.raises(PromptError, match="labels"):
        model.decode(emb, np.array([[1.0, 2.0]]), np.array([1, 0]), None, True)


def test_tiny_layout_constant_is_what_was_built(model):
    assert model.arch.encoder_embed_dim == TINY["embed_dim"]
    assert model.arch.global_attn_indexes == tuple(TINY["global_attn_indexes"])
    assert model.arch.window_size == TINY["window_size"]


def test_lean_decoder_is_bit_identical_and_per_image(model, scenes):
    """The cached per-image decoder state (sam_decoder.py) gives exactly the upstream logits, and
    switching images (and back) never reuses another image's state."""
    photo, photo_predictor = scenes("photo")
    synthetic, synthetic_predictor = scenes("synthetic")
    for emb, predictor in [(photo, photo_predictor), (synthetic, synthetic_predictor)] * 2:
        for prompt in PROMPTS.values():
            for multimask in (True, False):
                points, labels, box = prompt
                _, scores, low = predictor.predict(points, labels, box, multimask_output=multimask)
                out = model.decode(emb, points, labels, box, multimask)
                assert np.array_equal(out.low_res_logits, low) and np.array_equal(
                    out.scores, scores
                )
    # A copy of the same features (e.g. reloaded from the cache) is a new key, and still exact.
    copy = SamEmbedding(photo.features.copy(), photo.original_size, photo.input_size)
    points, labels, box = PROMPTS["one_point"]
    _, _, low = photo_predictor.predict(points, labels, box, multimask_output=True)
    assert np.array_equal(model.decode(copy, points, labels, box, True).low_res_logits, low)
