"""Evaluation datasets: image + ground-truth mask pairs read from the usual benchmark layouts.

Supported:
- a folder of images and a folder of masks matched by file stem (GrabCut `images/` + `masks/`,
  Berkeley `images/` + `masks/`, COCO_MVal `img/` + `gt/`, or any such pair of folders);
- a COCO JSON file + its image folder (every non-crowd annotation is one object).

Masks: grey levels above 128 are the object, exactly 128 is an ignore band (GrabCut's unlabelled border,
excluded from IoU and never clicked), 0/1 masks are read as 0/1. Images are read with their stored pixel
orientation because that is what the ground truth was drawn on.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotator.errors import AnnotatorError, CocoFormatError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg")
IGNORE_VALUE = 128
# COCO_MVal names files `CATEGORY00_COCOID`: the category, a two-digit instance number, the image id.
_CATEGORY_STEM = re.compile(r"^(?P<category>.+?)\d{2}_\d+$")


class DatasetError(AnnotatorError):
    """An evaluation dataset cannot be read: missing folder, no image/mask pairs, bad file names."""


@dataclass(frozen=True)
class GroundTruth:
    """mask: bool (H, W) object; ignore: bool (H, W) pixels excluded from IoU and clicks, or None."""

    mask: np.ndarray
    ignore: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        """Pixels that count: everything outside the ignore band."""
        return np.ones_like(self.mask) if self.ignore is None else ~self.ignore


@dataclass(frozen=True)
class Sample:
    """One object to evaluate; the mask is read only when needed (`load()`)."""

    name: str
    image_path: Path
    load: Callable[[], GroundTruth] = field(repr=False, compare=False)
    category: str | None = None


@dataclass
class Dataset:
    """Objects in a stable order plus the notes about what was skipped while reading."""

    name: str
    samples: list[Sample]
    notes: list[str] = field(default_factory=list)
    all_categories: list[str] | None = None  # kept by `limited`: the label set stays the dataset's

    @property
    def categories(self) -> list[str]:
        """The dataset's own category names, sorted, for the closed-vocabulary accuracy."""
        if self.all_categories is not None:
            return list(self.all_categories)
        return sorted({s.category for s in self.samples if s.category})

    def limited(self, limit: int | None) -> Dataset:
        """The first `limit` objects (all when None); the category list stays the whole dataset's."""
        if limit is None or limit >= len(self.samples):
            return self
        notes = [*self.notes, f"--limit {limit}: {len(self.samples) - limit} objects not evaluated"]
        return Dataset(self.name, self.samples[:limit], notes, self.categories)

    def by_image(self) -> Iterator[tuple[Path, list[Sample]]]:
        """Consecutive objects grouped by image, so an image is read and embedded once."""
        group: list[Sample] = []
        for sample in self.samples:
            if group and sample.image_path != group[0].image_path:
                yield group[0].image_path, group
                group = []
            group.append(sample)
        if group:
            yield group[0].image_path, group


# ------------------------------------------------------------------------------------------- files
def load_rgb(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) through `io.images.load_image` (its format, alpha and size rules), as
    stored; EXIF orientation only applied when that is what matches the mask's `shape`."""
    from annotator.io.images import load_image

    raw = load_image(path, orient=False)
    if shape is not None and raw.shape[:2] != tuple(shape):
        upright = load_image(path)
        if upright.shape[:2] == tuple(shape):
            return upright
    return raw


def read_mask(path: Path) -> GroundTruth:
    """A ground-truth mask file: >128 object, ==128 ignore band, 0/1 masks as such."""
    from PIL import Image, UnidentifiedImageError

    from annotator.io.images import decodable_formats  # raster decoders only: never Ghostscript

    try:
        with Image.open(path, formats=decodable_formats()) as image:
            grey = np.asarray(image.convert("L"))
    except (OSError, UnidentifiedImageError) as error:
        raise DatasetError(f"{path}: cannot read mask ({error})") from None
    if grey.max(initial=0) <= 1:
        return GroundTruth(grey == 1, None)
    ignore = grey == IGNORE_VALUE
    return GroundTruth(grey > IGNORE_VALUE, ignore if ignore.any() else None)


def category_from_name(stem: str) -> str | None:
    """`traffic light00_000000157756` -> `traffic light` (COCO_MVal naming); None when not that form."""
    match = _CATEGORY_STEM.match(stem)
    return match.group("category").strip() if match else None


def _files_by_stem(folder: Path, suffixes: tuple[str, ...], notes: list[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in suffixes or path.name.startswith("."):
            continue
        if path.stem in found:
            notes.append(f"{path.name}: same name as {found[path.stem].name}, ignored")
            continue
        found[path.stem] = path
    return found


def _natural_key(text: str) -> list[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def folder_dataset(images: Path, masks: Path, categories_from_names: bool = False) -> Dataset:
    """Image + mask pairs matched by stem; masks without an image are skipped with a note.

    With `categories_from_names`, each object's category is read from its file name
    (COCO_MVal's `CATEGORY00_ID`), and a name without a category is an error.
    """
    for folder, what in ((images, "--images"), (masks, "--masks")):
        if not Path(folder).is_dir():
            raise DatasetError(f"{folder}: not a folder ({what})")
    notes: list[str] = []
    image_files = _files_by_stem(Path(images), IMAGE_SUFFIXES, notes)
    mask_files = _files_by_stem(Path(masks), MASK_SUFFIXES, notes)
    samples: list[Sample] = []
    orphans: list[str] = []
    for stem in sorted(mask_files, key=_natural_key):
        image = image_files.get(stem)
        if image is None:
            orphans.append(mask_files[stem].name)
            continue
        category = None
        if categories_from_names:
            category = category_from_name(stem)
            if category is None:
                raise DatasetError(
                    f"{mask_files[stem]}: no category in the file name "
                    "(expected CATEGORY00_ID as in COCO_MVal, or use --coco FILE)"
                )
        mask_path = mask_files[stem]
        samples.append(Sample(stem, image, lambda p=mask_path: read_mask(p), category))
    if orphans:
        notes.append(f"{len(orphans)} masks without an image, skipped: {', '.join(orphans)}")
    unmatched = len(set(image_files) - set(mask_files))
    if unmatched:
        notes.append(f"{unmatched} images without a mask, skipped")
    if not samples:
        raise DatasetError(f"{masks}: no mask matches an image of {images} by file name")
    return Dataset(Path(images).resolve().parent.name or str(images), samples, notes)


# -------------------------------------------------------------------------------------------- COCO
def _decode_segmentation(segmentation: object, height: int, width: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    from annotator.io import bounds

    if isinstance(segmentation, list):  # polygons
        polygons = [
            bounds.points(p, "polygon", width, height, CocoFormatError)  # pycocotools' C code
            for p in segmentation
            if isinstance(p, list) and len(p) >= 6
        ]
        if not polygons:
            raise ValueError("no polygon with at least 3 points")
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif not isinstance(segmentation, dict) or segmentation.get("size") != [height, width]:
        raise ValueError(f"segmentation size must be [{height}, {width}] (the image's)")
    elif isinstance(segmentation.get("counts"), list):
        counts = [bounds.integer(v, "counts", 0, height * width, CocoFormatError)
                  for v in segmentation["counts"]]  # fmt: skip
        if sum(counts) != height * width:
            raise ValueError(
                f"RLE counts cover {sum(counts)} pixels, the image has {height * width}"
            )
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        counts = segmentation["counts"]
        rle = {
            "size": segmentation["size"],
            "counts": counts.encode() if isinstance(counts, str) else counts,
        }
    else:
        raise ValueError("segmentation is neither polygons nor RLE")
    with warnings.catch_warnings():  # pycocotools' Cython arrays predate numpy 2's `copy=` keyword
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def coco_dataset(annotations: Path, images: Path) -> Dataset:
    """Every non-crowd annotation of a COCO JSON file, with its category name."""
    annotations, images = Path(annotations), Path(images)
    if not images.is_dir():
        raise DatasetError(f"{images}: not a folder (--images)")
    from annotator.io import bounds
    from annotator.io.formats.coco import MAX_DOCUMENT_BYTES
    from annotator.io.images import MAX_PIXELS
    from annotator.io.structured import read_file

    try:  # a regular file of bounded size (a named pipe would block)
        document = json.loads(read_file(annotations, MAX_DOCUMENT_BYTES, CocoFormatError))
    except RecursionError:
        raise CocoFormatError(f"{annotations}: JSON nested too deeply") from None
    except ValueError as error:
        raise CocoFormatError(f"{annotations}: not JSON ({error})") from None
    try:
        categories = {int(c["id"]): str(c["name"]) for c in document["categories"]}
        image_info = {int(i["id"]): i for i in document["images"]}
        anns = list(document["annotations"])
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as error:
        raise CocoFormatError(
            f"{annotations}: needs 'images', 'annotations' and 'categories' with ids ({error!r})"
        ) from None
    notes: list[str] = []
    samples: list[Sample] = []
    crowd = missing = 0
    try:
        anns.sort(key=lambda a: (int(a.get("image_id", -1)), int(a.get("id", 0))))
    except (TypeError, ValueError, OverflowError, AttributeError) as error:
        raise CocoFormatError(f"{annotations}: annotations need integer ids ({error!r})") from None
    for ann in anns:
        try:
            info = image_info[int(ann["image_id"])]
            category = categories[int(ann["category_id"])]
            height, width, file_name = (
                bounds.integer(
                    info["height"], f"{annotations}: height", 1, MAX_PIXELS, CocoFormatError
                ),
                bounds.integer(
                    info["width"], f"{annotations}: width", 1, MAX_PIXELS, CocoFormatError
                ),
                str(info["file_name"]),
            )
            if width * height > MAX_PIXELS:
                raise ValueError(f"{width}x{height} is more than {MAX_PIXELS} pixels")
            segmentation = ann["segmentation"]
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as error:
            raise CocoFormatError(
                f"{annotations}: annotation {ann.get('id', '?')} is malformed ({error!r})"
            ) from None
        if ann.get("iscrowd"):
            crowd += 1
            continue
        path = images / file_name
        if not path.is_file():
            missing += 1
            continue

        ann_id = ann.get("id")

        def load(s=segmentation, h=height, w=width, a=ann_id) -> GroundTruth:
            try:
                return GroundTruth(_decode_segmentation(s, h, w))
            except (ValueError, TypeError, OverflowError, CocoFormatError) as error:
                raise CocoFormatError(f"{annotations}: annotation {a}: {error}") from None

        samples.append(Sample(f"{Path(file_name).stem}#{ann.get('id')}", path, load, category))
    if crowd:
        notes.append(f"{crowd} crowd annotations skipped")
    if missing:
        notes.append(f"{missing} annotations whose image is not in {images}, skipped")
    if not samples:
        raise DatasetError(f"{annotations}: no annotation with an image in {images}")
    return Dataset(annotations.stem, samples, notes)
