"""SAM 3 text prompts: every instance of a noun phrase, segmented by one model (transformers).

`Sam3TextSegmenter` wraps `transformers.Sam3Model` + `Sam3Processor` exactly as their documentation
runs them: the processor prepares the image and the text, the model's forward gives per-query masks,
boxes and scores, and the processor's `post_process_instance_segmentation` turns them into
full-resolution instances. The one change is that the vision features of an image are computed once
(`get_vision_features`) and reused for every class prompt, which is what makes many classes per image
affordable; the masks are identical to a full forward (the parity test checks IoU 1.000).

Weights come from the official Hugging Face repository `facebook/sam3`, which is gated: the download
uses the token in HF_TOKEN or huggingface-hub's stored login and explains in one line how to get
access when refused. Nothing here imports Qt.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import CheckpointError, PromptError, WeightsError

HF_REPO = "facebook/sam3"
ACCESS_HELP = (
    f"request access at https://huggingface.co/{HF_REPO}, then set HF_TOKEN or run "
    "`hf auth login` with a token of that account"
)


@dataclass(frozen=True)
class TextMask:
    """One instance of a text prompt. `box` is XYXY in image pixels."""

    mask: np.ndarray  # bool (H, W)
    box: tuple[float, float, float, float]
    score: float


@dataclass
class Sam3Image:
    """An image's SAM 3 vision features, reusable for any number of text prompts."""

    vision: Any  # Sam3VisionEncoderOutput
    size: tuple[int, int]  # (H, W) of the original image


def sam3_cache_dir() -> Path:
    """Where `annotator weights download sam3` puts the repository snapshot."""
    from annotator.models.weights import cache_dir

    return cache_dir() / "sam3"


def download_sam3(dest: Path | None = None, token: str | None = None) -> Path:
    """Snapshot `facebook/sam3` (config, weights, processor) into `dest`; returns the folder.

    Raises WeightsError with one line when the repository refuses (gated, no token) or the network
    fails; huggingface-hub resumes partial files on the next try.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    dest = Path(dest) if dest is not None else sam3_cache_dir()
    token = token or os.environ.get("HF_TOKEN") or None  # None: huggingface-hub's stored login
    try:
        snapshot_download(
            HF_REPO,
            local_dir=dest,
            token=token,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"],
        )
    except GatedRepoError:
        raise WeightsError(
            f"{HF_REPO} is gated and this token has no access: {ACCESS_HELP}"
        ) from None
    except RepositoryNotFoundError:
        raise WeightsError(
            f"{HF_REPO}: not found or not visible without a token: {ACCESS_HELP}"
        ) from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status in (401, 403):
            raise WeightsError(f"{HF_REPO}: access refused ({status}): {ACCESS_HELP}") from None
        raise WeightsError(f"{HF_REPO}: download failed ({str(error).splitlines()[0]})") from None
    except OSError as error:
        raise WeightsError(f"{HF_REPO}: download failed ({error})") from None
    return dest


class Sam3TextSegmenter:
    """SAM 3 for text prompts on one device."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu", identity: str = "") -> None:
        self.model = model.eval()
        self.processor = processor
        self.device = device
        self.identity = identity or "sam3"

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> Sam3TextSegmenter:
        """Model and processor from a `save_pretrained` folder (default: the downloaded
        `facebook/sam3`). A missing or unreadable folder is a CheckpointError."""
        folder = Path(path) if path is not None else sam3_cache_dir()
        if not (folder / "config.json").is_file():
            hint = "" if path is not None else " (run `annotator weights download sam3`)"
            raise CheckpointError(f"{folder}: no SAM 3 model here{hint}")
        from transformers import Sam3Model, Sam3Processor

        try:
            model = Sam3Model.from_pretrained(folder).to(device)
            processor = Sam3Processor.from_pretrained(folder)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"{folder}: not a SAM 3 model ({first})") from None
        identity = f"sam3:{folder.resolve()}:{_stamp(folder)}"
        return cls(model, processor, device, identity)

    # -------------------------------------------------------------------------------- vision
    def embed(self, rgb: np.ndarray) -> Sam3Image:
        """The vision features of an (H, W, 3) uint8 image (computed once per image)."""
        import torch

        rgb = np.asarray(rgb)
        if not rgb.flags.writeable:  # decoded images are read-only; torch.from_numpy warns on them
            rgb = rgb.copy()
        inputs = self.processor(images=rgb, return_tensors="pt")
        with torch.inference_mode():
            vision = self.model.get_vision_features(
                pixel_values=inputs["pixel_values"].to(self.device)
            )
        return Sam3Image(vision=vision, size=(int(rgb.shape[0]), int(rgb.shape[1])))

    # ---------------------------------------------------------------------------------- text
    def segment(
        self,
        image: Sam3Image | np.ndarray,
        text: str,
        threshold: float = 0.3,
        mask_threshold: float = 0.5,
    ) -> list[TextMask]:
        """Every instance of `text` scoring >= `threshold`, best first."""
        import torch

        text = " ".join(str(text).split())
        if not text:
            raise PromptError("the text prompt is empty")
        if not isinstance(image, Sam3Image):
            image = self.embed(image)
        tokens = self.processor(text=text, return_tensors="pt")
        with torch.inference_mode():
            outputs = self.model(
                vision_embeds=image.vision,
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
        result = self.processor.post_process_instance_segmentation(
            outputs, threshold=threshold, mask_threshold=mask_threshold, target_sizes=[image.size]
        )[0]
        scores = result["scores"].float().cpu().numpy()
        masks = result["masks"].cpu().numpy().astype(bool)
        boxes = result["boxes"].float().cpu().numpy()
        order = np.argsort(-scores, kind="stable")
        return [
            TextMask(
                mask=masks[i],
                box=tuple(float(v) for v in boxes[i]),
                score=float(scores[i]),
            )
            for i in order
            if masks[i].any()
        ]

    def segment_many(
        self,
        image: Sam3Image | np.ndarray,
        texts: Sequence[str],
        threshold: float = 0.3,
        mask_threshold: float = 0.5,
    ) -> dict[str, list[TextMask]]:
        """`segment` for several prompts, sharing the image's vision features."""
        if not isinstance(image, Sam3Image):
            image = self.embed(image)
        return {t: self.segment(image, t, threshold, mask_threshold) for t in texts}


def _stamp(folder: Path) -> str:
    """Size and mtime of the weights: part of the identity, so results of other weights never mix."""
    parts = []
    for f in sorted(folder.glob("*.safetensors")):
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
    return ";".join(parts)


__all__ = [
    "ACCESS_HELP",
    "HF_REPO",
    "Sam3Image",
    "Sam3TextSegmenter",
    "TextMask",
    "download_sam3",
    "sam3_cache_dir",
]
