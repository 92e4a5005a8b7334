"""Opening an image folder as a long job: list the images, read the new ones' sizes from their
headers, then add them all to the project in ONE transaction (one fsync, not one per image).

Runs in a child process with its own connection (`LongJob.process`): sorting 20,000 paths in natural
order is one C call that holds the GIL for a quarter of a second, which would freeze the window if
it ran in a thread. The window then opens the project itself. Cancelling before the end adds
nothing: sizes are read without holding the project's write lock, and the insert is all or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.app.longjob import JobControl, LongJob
from annotator.app.session import ImageRow
from annotator.errors import AnnotatorError


@dataclass
class OpenedFolder:
    """The result: the folder's rows (plain tuples: they cross a process boundary cheaply) and the
    files that could not be read."""

    folder: Path
    rows: list[tuple[int, str, str, int]]  # image id, name, path, annotation count
    unreadable: list[str]  # one line per file that could not be read (not listed)
    image_rows: list[ImageRow] | None = None  # built by `with_image_rows`, off the GUI thread
    row_of: dict[int, int] | None = None  # image id -> row, likewise
    location: str = ""  # what was opened: the folder, or a project URL (postgresql://…)

    def with_image_rows(self) -> OpenedFolder:
        self.image_rows = [ImageRow(i, name, path, count) for i, name, path, count in self.rows]
        self.row_of = {row[0]: position for position, row in enumerate(self.rows)}
        return self


def is_project_url(location: str | Path) -> bool:
    """Whether `location` names a database project (postgresql://…?project=NAME), not a folder."""
    from annotator.store.backend import is_url

    return is_url(str(location))


def open_location(location: str | Path) -> tuple[Any, Path]:
    """(project, image folder) for a folder (its project is created if new) or a project URL
    (postgresql://…?project=NAME, whose images are in the folder the project records)."""
    from annotator.store import Project
    from annotator.store.backend import is_url

    if not is_url(str(location)):
        return Project.open_folder(Path(location)), Path(location)
    project = Project(str(location))
    if project.folder is None or not Path(project.folder).is_dir():
        project.close()
        raise AnnotatorError(
            f"{project.path}: the project records no image folder here"
            " (import with --images, or add &images=/folder to the URL once)"
        )
    return project, Path(project.folder)


def scan_folder(control: JobControl, location: str | Path) -> OpenedFolder:
    """Open (or create) the folder's project, bring its image list up to date, close it."""
    from annotator.app.sequences import fold_sequences
    from annotator.io.images import list_images
    from annotator.io.pyramid import image_size_any  # a large TIFF too (issue 26): its header

    project, folder = open_location(location)
    try:
        control.progress(0, 0, "listing images")
        paths = list_images(folder)
        known = {r.file_name: r for r in project.images()}
        counts = project.counts()
        total = len(paths)
        entries: list[tuple[str, Path, Any]] = []  # name, path, known record or (width, height)
        unreadable: list[str] = []
        for done, path in enumerate(paths, start=1):
            control.check()
            name = path.relative_to(folder).as_posix()
            record = known.get(name)
            if record is None:
                try:
                    size = image_size_any(path)
                except AnnotatorError as error:
                    unreadable.append(str(error))
                    continue
                entries.append((name, path, size))
            else:
                entries.append((name, path, record))
            control.progress(done, total, "reading image sizes")
        rows: list[tuple[int, str, str, int]] = []
        with project.transaction():  # all new images at once; a cancel rolls them all back
            for name, path, found in entries:
                control.check()
                if isinstance(found, tuple):
                    image_id = project.add_image(name, found[0], found[1])
                else:
                    image_id = found.id
                rows.append((image_id, name, str(path), counts.get(image_id, 0)))
        # issue 25: videos become sequences; each sequence is one row (app/sequences.py)
        control.progress(total, total, "reading videos")
        rows = fold_sequences(project, Path(folder), rows, unreadable, control.check)
    finally:
        project.close()
    return OpenedFolder(folder, rows, unreadable, location=str(location))


def open_folder_job(folder: Path | str) -> LongJob:
    """`scan_folder` in a child process; `folder` may be a project URL."""
    name = folder if isinstance(folder, str) else (folder.name or str(folder))
    return LongJob(
        f"Opening {name}",
        scan_folder,
        (folder,),
        process=True,
        finish=OpenedFolder.with_image_rows,
    )
