"""SAM 3 text prompts: the engine equals transformers' own forward + post-processing (tiny model)."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.errors import CheckpointError, PromptError


@pytest.fixture(scope="module")
def tiny_sam3_path(tmp_path_factory):
    from tests.tiny_sam3 import make_tiny_sam3

    return make_tiny_sam3(tmp_path_factory.mktemp("sam3"))


@pytest.fixture(scope="module")
def segmenter(tiny_sam3_path):
    from annotator.models.sam3 import Sam3TextSegmenter

    return Sam3TextSegmenter.load(tiny_sam3_path)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def test_masks_equal_transformers_forward_and_post_processing(segmenter, tiny_sam3_path):
    import torch
    from transformers import Sam3Model, Sam3Processor

    rng = np.random.default_rng(3)
    rgb = (rng.random((90, 130, 3)) * 255).astype(np.uint8)
    model = Sam3Model.from_pretrained(tiny_sam3_path).eval()
    processor = Sam3Processor.from_pretrained(tiny_sam3_path)
    for text in ("a dog", "red car"):
        inputs = processor(images=rgb, text=text, return_tensors="pt")
        with torch.inference_mode():
            outputs = model(**inputs)
        want = processor.post_process_instance_segmentation(
            outputs, threshold=0.0, mask_threshold=0.5, target_sizes=[(90, 130)]
        )[0]
        got = segmenter.segment(rgb, text, threshold=0.0)
        masks = want["masks"].numpy().astype(bool)
        scores = want["scores"].numpy()
        keep = [i for i in np.argsort(-scores, kind="stable") if masks[i].any()]
        assert len(got) == len(keep) > 0
        for g, i in zip(got, keep, strict=True):
            assert g.mask.shape == (90, 130)
            assert _iou(g.mask, masks[i]) == 1.0
            assert g.score == pytest.approx(float(scores[i]), abs=1e-6)
            assert np.allclose(g.box, want["boxes"][i].numpy(), atol=1e-4)
    # the threshold filters like the processor's
    high = float(np.sort(scores)[-2]) if len(scores) > 1 else 1.0
    assert all(m.score >= high for m in segmenter.segment(rgb, "red car", threshold=high))


def test_shared_vision_features_for_many_prompts(segmenter):
    rgb = (np.random.default_rng(4).random((64, 64, 3)) * 255).astype(np.uint8)
    image = segmenter.embed(rgb)
    many = segmenter.segment_many(image, ["cat", "tree"], threshold=0.0)
    alone = segmenter.segment(rgb, "tree", threshold=0.0)
    assert [m.score for m in many["tree"]] == [m.score for m in alone]
    with pytest.raises(PromptError):
        segmenter.segment(image, "   ")


def test_missing_model_is_one_line(tmp_path):
    from annotator.models.sam3 import Sam3TextSegmenter

    with pytest.raises(CheckpointError, match="no SAM 3 model"):
        Sam3TextSegmenter.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a SAM 3 model"):
        Sam3TextSegmenter.load(tmp_path)


def test_gated_download_is_one_line_with_how_to_get_access(monkeypatch, capsys):
    from types import SimpleNamespace

    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    from annotator import cli

    seen = {}

    def refuse(repo_id, **kwargs):
        seen.update(kwargs, repo_id=repo_id)
        response = SimpleNamespace(headers={}, status_code=403, request=None)  # what it reads
        raise GatedRepoError("403 Client Error: gated repo", response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    assert cli.main(["weights", "download", "sam3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "facebook/sam3" in err and "request access" in err and "HF_TOKEN" in err
    assert seen["repo_id"] == "facebook/sam3" and seen["token"] == "hf_test_token"


def test_find_and_autolabel_by_sam3(tiny_sam3_path, tmp_path, capsys):
    import json

    from PIL import Image

    from annotator import cli
    from annotator.store import Project
    from annotator.store.proposals import ProposalStore

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        Image.fromarray((rng.random((60, 80, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    flags = ["--sam3-model", str(tiny_sam3_path), "--device", "cpu", "--threshold", "0"]
    assert cli.main(["find", str(folder / "0.png"), "dog", "--by", "sam3", *flags]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["by"] == "sam3" and 0 < len(found["matches"]) <= 10
    assert all(m["area"] > 0 for m in found["matches"])
    argv = ["autolabel", str(folder), "--classes", "dog,cat", "--by", "sam3", "--top-k", "2"]
    assert cli.main([*argv, *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["by"] == "sam3" and out["labelled"] == 3 and 0 < out["proposals"] <= 3 * 2 * 2
    with Project.open_folder(folder) as project:
        stored = ProposalStore(project).proposals()
    assert len(stored) == out["proposals"] and {p.source for p in stored} == {"sam3"}
    assert cli.main([*argv, *flags]) == 0  # resumed: nothing left to do
    assert json.loads(capsys.readouterr().out)["skipped_done"] == 3
