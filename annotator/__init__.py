"""annotator: click-to-segment COCO annotation with SAM masks labelled by CLIP."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Engine", "ImageEmbedding", "Proposal", "__version__"]


def __getattr__(name: str):
    # Lazy: `import annotator` (e.g. for --version) must not import torch.
    if name in ("Engine", "ImageEmbedding", "Proposal"):
        from annotator import engine

        return getattr(engine, name)
    raise AttributeError(name)
