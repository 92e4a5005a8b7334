"""The images table: one row per picture, named relative to the project folder, checked by content.

File names are stored relative to the project folder with '/' separators; on Linux a name that is
not valid UTF-8 is stored byte for byte (surrogate escapes, bound with `CAST(? AS TEXT)`), so such
files still work. The sha256 of the file's bytes tells one picture from another under the same
name (ADR 0005).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from annotator.errors import ProjectError
from annotator.io.images import show_path as _show
from annotator.store import files
from annotator.store.connection import Connection, utc_now, wanted_id


@dataclass(frozen=True)
class ImageRecord:
    id: int
    file_name: str  # relative to the project folder, '/' separated
    width: int
    height: int
    sha256: str | None
    added: str  # ISO 8601 UTC


def name_bytes(name: str) -> bytes:
    """A file name as the bytes stored in the TEXT column (bound with CAST(? AS TEXT)): a name
    that is not valid UTF-8 keeps its bytes (surrogate escapes), so such files still work."""
    return name.encode("utf-8", errors="surrogateescape")


def _is_sha256(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def normalise_file_name(file_name: str | os.PathLike) -> str:
    """A relative, '/'-separated file name; absolute paths and '..' are refused (ValueError)."""
    text = os.fsdecode(file_name).replace("\\", "/") if os.sep == "\\" else os.fsdecode(file_name)
    path = PurePosixPath(text)
    if not text or path.is_absolute() or ".." in path.parts or str(path) == ".":
        raise ValueError(
            f"image file name must be relative to the project folder, got {_show(text)!r}"
        )
    return str(path)


_ANNOTATION_COLUMNS = (
    "a.id, a.image_id, a.category_id, c.name, a.rle, a.height, a.width, a.bbox_x, a.bbox_y, a.bbox_w,"
    " a.bbox_h, a.area, a.score, a.prompts, a.created, a.updated, a.created_by, a.updated_by"
)


class Images(Connection):
    """The images table's part of `Project`."""

    folder: Path | None

    def add_image(
        self,
        file_name: str | os.PathLike,
        width: int,
        height: int,
        sha256: str | None = None,
        image_id: int | None = None,
    ) -> int:
        """Id of the image `file_name`, added if new (idempotent by name, checked by content).

        `sha256` is the hex sha256 of the image file's bytes (`files.file_sha256`). When given and
        the project knows `file_name` with other content, the project's own file decides: if it now
        has this content (edited in place), the stored hash is updated; otherwise the caller holds a
        different picture with the same name and a ProjectError is raised, so no mask lands on the
        wrong image (ADR 0005). A stored image without a hash (made before schema 3, or by a caller
        that gave none) gets one here: the lazy part of the migration.

        `image_id` asks for that id when adding (ignored when taken or outside 1..ID_LIMIT). An
        existing image whose size differs raises ProjectError: its masks would no longer line up.
        """
        name = normalise_file_name(file_name)
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError(f"image {_show(name)!r} has no pixels ({width}x{height})")
        if sha256 is not None and not _is_sha256(sha256):
            raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
        with self.transaction():
            found = self.image_by_name(name)
            if found is not None:
                if (found.width, found.height) != (width, height):
                    raise ProjectError(
                        f"{_show(name)}: the image is now {width}x{height} but the project has it as "
                        f"{found.width}x{found.height}"
                    )
                if sha256 and found.sha256 != sha256:
                    self._check_same_content(found, sha256)
                    self.write("UPDATE images SET sha256 = ? WHERE id = ?", (sha256, found.id))
                return found.id
            image_id = wanted_id(image_id)
            if image_id is not None and self.read("SELECT 1 FROM images WHERE id = ?", (image_id,)):
                image_id = None
            cursor = self.write(
                "INSERT INTO images (id, file_name, width, height, sha256, added, added_by)"
                " VALUES (?, CAST(? AS TEXT), ?, ?, ?, ?, ?)",
                (image_id, name_bytes(name), width, height, sha256, utc_now(), self.user),
            )
            return int(cursor.lastrowid)

    def _check_same_content(self, found: ImageRecord, sha256: str) -> None:
        """Raise unless an image of hash `sha256` may be `found` (whose stored hash differs or is
        unknown): the project's own file at that name is the judge when it can be read."""
        own = None if self.folder is None else self.folder / found.file_name
        try:
            disk = files.file_sha256(own) if own is not None and own.is_file() else None
        except OSError:
            disk = None
        if disk == sha256:
            return  # the caller's image is the project's file (now, or first time hashed)
        if disk is None and found.sha256 is None:
            return  # nothing to compare with (file moved away, no stored hash): as before
        raise ProjectError(
            f"{_show(found.file_name)}: the project already has a different image under this name "
            "(same name and size, other content); nothing was saved. Copy the image into the "
            "project folder under another name"
        )

    def add_image_file(self, path: str | os.PathLike, width: int, height: int) -> int:
        """Id of the image file `path` (anywhere), added if new: the save path of `segment --save`.

        Inside the project folder the image is named by its relative path; outside it, an image
        with the same content already in the project is that image, else it is added under its
        base name (a different picture under that name is refused, see `add_image`).
        """
        source = Path(path)
        try:
            sha256 = files.file_sha256(source)
        except OSError as error:
            raise ProjectError(
                f"{_show(source)}: cannot read the image to save its mask ({error.strerror})"
            ) from error
        name = None
        if self.folder is not None:
            try:
                name = str(source.resolve().relative_to(self.folder.resolve()))
            except (ValueError, OSError):
                name = None
        with self.transaction():
            if name is None:
                same = [
                    image
                    for image in self.images_by_sha256(sha256)
                    if (image.width, image.height) == (int(width), int(height))
                ]
                if same:
                    return same[0].id
                name = source.name
                found = self.image_by_name(name)
                if found is not None and found.sha256 is None and not self._own_file(found):
                    # a picture from elsewhere, and nothing to compare it with (issue 22): the
                    # project's file is not found and its content was never recorded
                    raise ProjectError(
                        f"{_show(source)}: cannot tell whether this is the project's image "
                        f"{_show(name)} (its file is not in the project folder and its content "
                        "was never recorded); nothing was saved. Open the project where its "
                        "images are, or copy the image into the project under another name"
                    )
            return self.add_image(name, width, height, sha256=sha256)

    def _own_file(self, record: ImageRecord) -> bool:
        return self.folder is not None and (self.folder / record.file_name).is_file()

    def images_by_sha256(self, sha256: str) -> list[ImageRecord]:
        """Images whose file had this content when last saved, in id order."""
        rows = self.read(
            "SELECT id, file_name, width, height, sha256, added FROM images WHERE sha256 = ?"
            " ORDER BY id",
            (sha256,),
        )
        return [ImageRecord(*row) for row in rows]

    def images(self) -> list[ImageRecord]:
        """All images, in the order they were added."""
        rows = self.read(
            "SELECT id, file_name, width, height, sha256, added FROM images ORDER BY id"
        )
        return [ImageRecord(*row) for row in rows]

    def image(self, image_id: int) -> ImageRecord:
        """The image with this id (KeyError if none)."""
        rows = self.read(
            "SELECT id, file_name, width, height, sha256, added FROM images WHERE id = ?",
            (image_id,),
        )
        if not rows:
            raise KeyError(f"no image with id {image_id}")
        return ImageRecord(*rows[0])

    def image_by_name(self, file_name: str | os.PathLike) -> ImageRecord | None:
        """The image with this relative file name, or None (also for a name no project image can
        have: absolute, or climbing out of the folder with '..', e.g. `similar --image ../x`)."""
        try:
            name = normalise_file_name(file_name)
        except ValueError:
            return None
        rows = self.read(
            "SELECT id, file_name, width, height, sha256, added FROM images WHERE file_name = CAST(? AS TEXT)",
            (name_bytes(name),),
        )
        return ImageRecord(*rows[0]) if rows else None
