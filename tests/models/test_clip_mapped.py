"""CLIP weights mapped from their file and the pretrained-tag path (issue 26: peak memory).

`create_from_file` maps a torch weights file (`torch.load(mmap=True)`) and assigns its tensors, so
a tower that never runs (the text tower, once the vocabulary's index is cached) never becomes
resident; `create_from_tag` loads open_clip's downloaded file the same way instead of through
`open_clip.create_model`'s random build. Both must give open_clip's own model exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import open_clip
import open_clip.factory
import open_clip.pretrained
import pytest
import torch

from annotator.errors import WeightsError
from annotator.models.clip import ClipModel
from annotator.models.clip_config import register_config
from annotator.models.clip_load import create_from_file, create_from_tag
from tests.tiny_clip import make_tiny_clip, tiny_config

TAG = "tiny_test_tag"
TAG_CFG = {  # a tag's preprocessing, as open_clip's table has it (not open_clip's defaults)
    "url": "",
    "hf_hub": "nobody/tiny-clip/",
    "mean": (0.5, 0.4, 0.3),
    "std": (0.2, 0.25, 0.3),
    "interpolation": "bilinear",
    "resize_mode": "squash",
}


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _same_model(ours: torch.nn.Module, theirs: torch.nn.Module, name: str) -> None:
    a, b = _state(ours.eval()), _state(theirs.eval())
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert open_clip.get_model_preprocess_cfg(ours) == open_clip.get_model_preprocess_cfg(theirs)
    tokens = open_clip.get_tokenizer(name)(["a photo of a dog.", "cat"])
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        text = ours.encode_text(tokens)
        assert torch.equal(text, theirs.encode_text(tokens))
        assert torch.equal(ours.encode_image(image), theirs.encode_image(image))
    assert text.abs().max() > 0 and not torch.allclose(text[0], text[1])  # not degenerate


@pytest.fixture
def tagged(tmp_path, monkeypatch):
    """A tiny registered model with a pretrained tag whose 'download' is a local file."""
    config, weights = make_tiny_clip(tmp_path, "convnext", seed=3)
    name = register_config(tiny_config("convnext"))
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, name, {TAG: dict(TAG_CFG)})
    downloads = []

    def download(cfg, *args, **kwargs):
        downloads.append(cfg["hf_hub"])
        return str(weights)

    for module in (open_clip, open_clip.factory):  # ours and create_model's references
        monkeypatch.setattr(module, "download_pretrained", download)
    return name, downloads


def test_a_pretrained_tag_loads_open_clips_model_with_the_tags_preprocessing(tagged):
    name, downloads = tagged
    ours = create_from_tag(name, TAG, "cpu")
    theirs = open_clip.create_model(name, pretrained=TAG, device="cpu")
    assert downloads == [TAG_CFG["hf_hub"]] * 2  # both through open_clip's download
    _same_model(ours, theirs, name)
    preprocess = open_clip.get_model_preprocess_cfg(ours)
    assert tuple(preprocess["mean"]) == TAG_CFG["mean"]  # the tag's, not open_clip's defaults
    assert preprocess["interpolation"] == "bilinear" and preprocess["size"] == (64, 64)


def test_clip_model_load_by_tag_takes_that_path(tagged):
    name, downloads = tagged
    clip = ClipModel.load(name=name, pretrained=TAG)
    assert downloads == [TAG_CFG["hf_hub"]]
    assert clip.identity == f"{name}:{TAG}"
    assert clip.encode_text(["dog"]).shape == (1, clip.embed_dim)


def test_a_failed_download_is_one_clear_line(tagged, monkeypatch):
    name, _ = tagged

    def offline(cfg, *args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")

    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    with pytest.raises(WeightsError) as info:
        ClipModel.load(name=name, pretrained=TAG)
    message = str(info.value)
    assert "\n" not in message and TAG in message and "download them elsewhere" in message


def test_a_legacy_torch_file_that_cannot_be_mapped_loads_as_before(tmp_path):
    """torch's pre-zip format cannot be mapped: it is read into memory, same model."""
    config, weights = make_tiny_clip(tmp_path, "vit")
    legacy = tmp_path / "legacy.pt"
    torch.save(torch.load(weights, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    name = register_config(tiny_config("vit"))
    ours = create_from_file(name, str(legacy), legacy, config, "cpu")
    theirs = open_clip.create_model(name, pretrained=str(weights), pretrained_text=False)
    _same_model(ours, theirs, name)


_RESIDENT = """
import json, sys
from pathlib import Path
import torch
from annotator.models.clip import ClipModel
config, weights = Path(sys.argv[1]), Path(sys.argv[2])
def rss_kb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss_kb()
clip = ClipModel.load(config=config, weights=weights)  # what the engine loads
loaded = rss_kb()
with torch.inference_mode():
    clip.model.encode_image(torch.rand(1, 3, 64, 64))
image = rss_kb()
clip.encode_text(["a photo of a dog."])
text = rss_kb()
print(json.dumps({"loaded": loaded - before, "image": image - before, "text": text - before}))
"""


@pytest.mark.slow
def test_a_tower_that_does_not_run_is_not_resident(tmp_path):
    """The weights are mapped, not read: loading a model whose text tower is ~250 MB adds little to
    the process (nothing at load runs the text tower, not even to learn its width), running the
    image tower does not bring the text tower in, running the text tower does (the pages come from
    the file on first use). A fresh process, so RSS is its own."""
    cfg = tiny_config("vit")
    cfg["text_cfg"] = {**cfg["text_cfg"], "width": 512, "heads": 8, "layers": 12}
    torch.manual_seed(0)
    weights, config = tmp_path / "big.pt", tmp_path / "big.json"
    torch.save(open_clip.CLIP(**cfg).state_dict(), weights)
    config.write_text(json.dumps(cfg), encoding="utf-8")
    size_kb = weights.stat().st_size / 1024
    assert size_kb > 200_000
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", _RESIDENT, str(config), str(weights)],
        capture_output=True, text=True, timeout=600, env=env, check=True,
    )  # fmt: skip
    grew = json.loads(out.stdout.strip().splitlines()[-1])
    assert grew["loaded"] < 0.25 * size_kb, grew  # read into memory: >= 1x
    assert grew["image"] < 0.25 * size_kb, grew
    assert grew["text"] > 0.5 * size_kb, grew  # the measure can see the tower come in


@pytest.mark.parametrize(
    "name",
    ["RN50", "ViT-B-32", "convnext_base_w", "coca_ViT-B-32", "ViT-B-16-SigLIP", "EVA02-B-16"],
)
def test_the_text_width_read_from_the_projection_is_what_encode_text_gives(name):
    """`ClipModel` reads the embedding width from the text projection instead of running the
    tower: the same number open_clip's `encode_text` gives, for CLIP and CustomTextCLIP
    layouts (built on the meta device: shapes without memory)."""
    from annotator.models.clip import _text_output_width

    if name not in open_clip.list_models():
        pytest.skip(f"{name} is not in this open_clip")
    try:
        with torch.device("meta"):
            model = open_clip.create_model(name, pretrained=None, device="meta")
    except Exception as e:  # a tower this environment cannot build (e.g. timm too old)
        pytest.skip(f"{name}: {e}")
    length = getattr(model, "context_length", 77)  # token values do not matter for a shape
    tokens = torch.ones(1, length, dtype=torch.long, device="meta")
    width = _text_output_width(model)
    assert width is not None
    assert width == model.encode_text(tokens).shape[-1]
