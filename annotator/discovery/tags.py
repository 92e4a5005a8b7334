"""Image tags: the vocabulary entries that best describe a whole image, and a label set seeded
from the tags of a folder.

The whole-image embedding is the region head's full-image mask (`Engine.image_embedding`): for the
ConvNeXt pool head this is exactly the CLIP image embedding at the head's resolution, so tags are
plain CLIP zero-shot classification over the vocabulary, read from the cached embedding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from annotator.engine import Engine, ImageEmbedding
from annotator.errors import AnnotatorError
from annotator.vocab.vocabulary import Vocabulary

Tags = list[tuple[str, float]]  # (vocabulary name, probability), best first


@dataclass(frozen=True)
class ImageTags:
    """The tags of one image; `error` instead when the image could not be read."""

    path: Path
    tags: Tags = field(default_factory=list)
    error: str | None = None


def tag_image(engine: Engine, embedding: ImageEmbedding, k: int = 5) -> Tags:
    """Top-k vocabulary entries for the whole image, best first (softmax over the vocabulary)."""
    return engine.topk(engine.image_embedding(embedding), k)


def tag_images(
    engine: Engine,
    paths: Sequence[Path],
    k: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[ImageTags]:
    """Tags of each image, in order, embedding (or reading from the cache) one image at a time.
    An unreadable image yields an `ImageTags` with `error` set instead of stopping the run."""
    total = len(paths)
    for done, path in enumerate(paths, 1):
        try:
            embedding = engine.embed(path)
        except AnnotatorError as error:
            yield ImageTags(Path(path), error=str(error))
        else:
            yield ImageTags(Path(path), tag_image(engine, embedding, k))
        if progress is not None:
            progress(done, total)


def seed_labels(tag_lists: Iterable[Tags], n: int, min_score: float = 0.0) -> list[str]:
    """The `n` names tagged on the most images (a tag counts when its score >= `min_score`);
    ties are broken by the summed score, then by name, so the result is deterministic."""
    counts: Counter[str] = Counter()
    sums: Counter[str] = Counter()
    for tags in tag_lists:
        for name in {name for name, score in tags if score >= min_score}:
            counts[name] += 1
        for name, score in tags:
            if score >= min_score:
                sums[name] += score
    ranked = sorted(counts, key=lambda name: (-counts[name], -sums[name], name))
    return ranked[: max(0, int(n))]


def seed_vocabulary(names: Sequence[str], source: Vocabulary) -> Vocabulary:
    """A project vocabulary of `names`, each keeping its synonyms from `source`."""
    out = Vocabulary.loads("")
    for name in names:
        entry = source.get(name)
        out.add(name, entry.synonyms if entry is not None else ())
    return out


__all__ = ["ImageTags", "Tags", "seed_labels", "seed_vocabulary", "tag_image", "tag_images"]
