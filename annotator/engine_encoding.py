"""The Engine's encoding half: an image's embedding, from the cache when possible.

Why a module of its own: what an image costs before its first click (decode, the two encoders, the
cache and its precision alternatives) is one job apart from what a click costs (`engine.py`).
`Encoding` is a mixin of `Engine`; it reads the engine's `sam`, `head`, `cache`, `mix_precision`
and `model_id`.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from annotator import allocator
from annotator.cache import ArrayCache
from annotator.engine_loading import region_id
from annotator.engine_types import ImageEmbedding
from annotator.hashing import sha256_file
from annotator.io.images import sha256_pixels
from annotator.models.precision import alternatives

# A large image's working windows kept in memory (issue 26: a return to a place answers in
# milliseconds; a SAM 2.1 window with its CLIP half is ~21 MB, read from disk in 15-30 ms here).
RECENT_REGIONS_BYTES = 96 * 1024 * 1024
RECENT_REGIONS_MAX = 8


class RecentRegions:
    """The last embeddings of regions (`embed(fn, key=...)`), newest last, within a byte budget:
    the in-memory front of the disk cache for a large image's windows. Whole images are not kept:
    the window holds the current one itself, and `embed(path)` keeps reading the disk cache."""

    def __init__(self, max_bytes: int = RECENT_REGIONS_BYTES, max_count: int = RECENT_REGIONS_MAX):
        self.max_bytes, self.max_count = max_bytes, max_count
        self._items: OrderedDict[str, ImageEmbedding] = OrderedDict()

    def get(self, key: str, model_id: str) -> ImageEmbedding | None:
        found = self._items.get(key)
        if found is None or found.model_id != model_id:
            return None
        self._items.move_to_end(key)
        return found

    def put(self, key: str, embedding: ImageEmbedding) -> None:
        self._items[key] = embedding
        self._items.move_to_end(key)
        while len(self._items) > 1 and (
            len(self._items) > self.max_count or self.nbytes > self.max_bytes
        ):
            self._items.popitem(last=False)
        if self.nbytes > self.max_bytes:  # one alone over the budget: not kept
            self._items.clear()

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return sum(_nbytes(e) for e in self._items.values())


def _nbytes(embedding: ImageEmbedding) -> int:
    clip = sum(int(a.nbytes) for a in (embedding.clip or {}).values())
    return int(getattr(embedding.sam, "nbytes", 0)) + clip


class Encoding:
    """`is_cached` and `embed` (with their cache look-ups) for `Engine`; `Engine.__init__` gives
    it `recent_regions` (a `RecentRegions`)."""

    def _clip_id(self) -> str:
        return region_id(self.clip, self.head)

    def is_cached(self, image: Path) -> bool:
        """True when both halves of this image's embedding are on disk."""
        if self.cache is None:
            return False
        try:
            digest = sha256_file(Path(image))
        except OSError:
            return False  # gone or unreadable: `embed` raises the user-facing ImageLoadError
        return any(
            self.cache.contains("sam", i, digest) for i in self._ids(self.sam.identity)
        ) and any(self.cache.contains("clip", i, digest) for i in self._ids(self._clip_id()))

    def _ids(self, identity: str) -> list[str]:
        """The cache identities that may answer for `identity`: itself, and with mixing allowed
        the same model's output in the other precisions."""
        return [identity, *alternatives(identity)] if self.mix_precision else [identity]

    def _load(self, cache: ArrayCache, kind: str, identity: str, digest: str):
        for candidate in self._ids(identity):
            arrays = cache.load(kind, candidate, digest)
            if arrays is not None:
                return arrays
        return None

    def embed(
        self,
        image: np.ndarray | Path | str | Callable[[], np.ndarray],
        clip: bool = True,
        known: ImageEmbedding | None = None,
        key: str | None = None,
        keep: bool = True,
    ) -> ImageEmbedding:
        """The image's embedding, from the cache when possible; a path is decoded only when needed.

        `clip=False` stops after the segmenter half (from the cache, else the encoder): enough for
        a mask, so the first click on a new image does not also wait for the CLIP encoder; the
        labels come once a later `embed(..., known=that)` has added the CLIP half (masks before
        labels). `known` is an embedding of the same image whose halves are reused as they are.
        `key` names an image given as a function returning its pixels (a region of a large image,
        `io/tiles.region_key`): the cache is looked up by it and the function called only on a miss;
        such a region's embedding is kept in memory (`recent_regions`) unless `keep` is False (a
        window encoded ahead of a click goes to the disk cache only).
        """
        pixels: np.ndarray | None = None
        pixels_from_file = isinstance(image, (str, Path))
        if callable(image):
            if key is None:
                raise ValueError("an image given as a function needs its cache key")
            digest, pixels_from_file = (known.image_hash if known is not None else key), True
        elif known is not None:
            digest: str | None = known.image_hash or None
        elif isinstance(image, (str, Path)):
            try:
                digest = sha256_file(Path(image))
            except OSError:  # gone, a folder, unreadable: load_image below says which
                digest = None
        else:
            digest = None
        if not pixels_from_file:
            pixels = np.ascontiguousarray(image)
            digest = digest or sha256_pixels(pixels)

        def rgb() -> np.ndarray:
            nonlocal pixels
            if pixels is None and callable(image):
                pixels = np.ascontiguousarray(image())
            elif pixels is None:
                from annotator.io.images import load_image

                pixels = load_image(Path(image))
            self._check_encodable(pixels, Path(image) if isinstance(image, (str, Path)) else None)
            return pixels

        cache = self.cache if digest is not None else None
        region = callable(image) and cache is not None  # a window of a large image (see above)
        if region and known is None:
            kept = self.recent_regions.get(digest, self.model_id)
            if kept is not None and (kept.complete or not clip):
                return kept
            known = kept  # its segmenter half; the CLIP half is added below
        # a large image's window: its encoders' buffers are mapped and returned (ADR 43: the
        # 2 GB bound of issue 26, at some encode time, so whole images keep glibc's default)
        guard = allocator.encoding if region else contextlib.nullcontext
        sam_embedding = (
            known.sam if known is not None else self._sam_half(cache, digest, rgb, guard)
        )
        clip_arrays = known.clip if known is not None else None
        if clip and clip_arrays is None:
            clip_arrays = self._load(cache, "clip", self._clip_id(), digest) if cache else None
            if clip_arrays is None:
                pixels = rgb()
                with guard():
                    clip_arrays = self.head.prepare(pixels)
                if cache is not None:
                    cache.save("clip", self._clip_id(), digest, clip_arrays)
        embedding = ImageEmbedding(
            sam=sam_embedding, clip=clip_arrays, image_hash=digest or "", model_id=self.model_id
        )
        if region and keep:
            self.recent_regions.put(digest, embedding)
        return embedding

    def _sam_half(
        self, cache: ArrayCache | None, digest: str | None, rgb, guard=contextlib.nullcontext
    ) -> object:
        arrays = self._load(cache, "sam", self.sam.identity, digest) if cache is not None else None
        if arrays is not None:
            try:
                return self.sam.from_arrays(arrays)
            except (KeyError, ValueError):  # a stale or foreign file: recompute, as unreadable
                pass
        pixels = rgb()
        with guard():
            embedding = self.sam.encode(pixels)
        if cache is not None:
            cache.save("sam", self.sam.identity, digest, self.sam.to_arrays(embedding))
        return embedding

    def _check_encodable(self, pixels: np.ndarray, path: Path | None) -> None:
        """SAM resizes the long side to its input size; a short side that rounds to 0 pixels cannot
        be encoded (upstream raises a ValueError deep inside the resize): one clear line instead."""
        from annotator.errors import ImageLoadError
        from annotator.io.images import show_path

        h, w = int(pixels.shape[0]), int(pixels.shape[1])
        target = int(getattr(getattr(self.sam, "transform", None), "target_length", 0) or 0)
        if target and max(h, w) > 2 * target * min(h, w):
            where = f"{show_path(path)}: " if path is not None else ""
            raise ImageLoadError(
                f"{where}a {w}x{h} image is too thin to segment: the long side may be at most "
                f"{2 * target} times the short side"
            )
