"""Which tracker a segmenter choice gets: the video memory when the folder has it, else box carry."""

from __future__ import annotations

from pathlib import Path

from annotator.models.tracking import VIDEO_MODEL_TYPES, VideoTracker, is_video_folder


def load_tracker(checkpoint: Path | None, family: str | None, device: str = "cpu"):
    """The tracker for a segmenter: the video memory of a SAM 2.1 / EdgeTAM video folder, else
    per-frame prompts carried from the previous frame's mask box (`BoxCarryTracker`)."""
    from annotator.models import registry

    if checkpoint is None:
        from annotator.models import weights

        name = weights.default_segmenter(device, family)
        checkpoint = weights.resolve(name)
        family = family or weights.known(name).kind
    checkpoint = Path(checkpoint)
    family = family or registry.detect_family(checkpoint)
    if family in VIDEO_MODEL_TYPES and is_video_folder(checkpoint, family):
        return VideoTracker.load(checkpoint, family, device)
    from annotator.models.box_carry import BoxCarryTracker

    return BoxCarryTracker(registry.load_segmenter(checkpoint, family, device))
