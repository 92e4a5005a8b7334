"""What else the cached embedding gives: text search over automatic masks, image tags, similar
images/objects, and a side-by-side comparison of two model choices. Headless: numpy and dataclasses
in and out, no Qt (the GUI calls these through its worker thread)."""

from annotator.discovery.compare import Comparison, Side, compare, format_comparison, mask_iou
from annotator.discovery.find import Finder, Match, find, query_embedding
from annotator.discovery.proposals import (
    MaskProposal,
    ProposalSettings,
    Proposer,
    box_nms,
    mask_nms,
    propose_masks,
)
from annotator.discovery.similar import (
    Neighbour,
    SimilarityIndex,
    backfill,
    embed_annotation,
    embed_image,
)
from annotator.discovery.tags import ImageTags, seed_labels, seed_vocabulary, tag_image, tag_images

__all__ = [
    "Comparison",
    "Finder",
    "ImageTags",
    "MaskProposal",
    "Match",
    "Neighbour",
    "ProposalSettings",
    "Proposer",
    "Side",
    "SimilarityIndex",
    "backfill",
    "box_nms",
    "compare",
    "embed_annotation",
    "embed_image",
    "find",
    "format_comparison",
    "mask_iou",
    "mask_nms",
    "propose_masks",
    "query_embedding",
    "seed_labels",
    "seed_vocabulary",
    "tag_image",
    "tag_images",
]
