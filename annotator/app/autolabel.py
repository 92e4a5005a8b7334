"""The auto-label loop: one run over a project's images, one image at a time, resumable.

`annotator autolabel` and the window's review panel run the same loop (`ImageLoop`): which image
comes next, what an image's answer means for the store (its proposals and its done mark in one
transaction, `ProposalStore.finish_image`), what is counted as labelled, skipped or failed, and
the status line. The CLI drives it in a plain for-loop with the labeler in its own thread
(`autolabel`); the window drives it one model-thread request per image (`request` / `answer`),
so a click can go first (`YIELDED`: the same image is asked again). Refining boxes into masks is
the same loop with another job and another way to store an image (`refine_loop`). Qt-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from annotator.app.jobs import (
    AUTOLABEL,
    REFINE,
    YIELDED,
    AutolabelParams,
    DiscoveryRequest,
    RefineParams,
)
from annotator.app.progress import BatchStatus
from annotator.discovery.autolabel import AutolabelReport, Labeler, run_id
from annotator.errors import AnnotatorError
from annotator.store.proposals import ProposalStore

Progress = Callable[[int, int, str], None]  # done, total, file name
StoreResult = Callable[
    [int, Any], "int | None"
]  # image id, answer -> proposals stored (None: skipped)


class ImageLoop:
    """A run over `images` ((image id, path) pairs, in order). `store_result(image_id, answer)`
    writes one image's answer and returns how many proposals it stored, None when the image
    turned out to be done already (by this run before, or by another process meanwhile)."""

    def __init__(
        self,
        kind: str,
        images: Sequence[tuple[int, str]],
        store_result: StoreResult,
        params: Callable[[int], Any] | None = None,
        run: str = "",
    ) -> None:
        self.kind = kind
        self.images = list(images)  # what is left, the next first
        self.store_result = store_result
        self.params = params or (lambda _image_id: None)
        self.report = AutolabelReport(run=run, total=len(self.images))
        what = "auto-label" if kind == AUTOLABEL else "refine boxes"
        self.status = BatchStatus(what, len(self.images))
        self.request_id = 1_000_000  # request ids of its own, apart from the panels'
        self.yielded = 0  # images that gave way to a click and were asked again
        self._start = time.perf_counter()

    # ------------------------------------------------------------------ the loop's steps
    def next(self) -> tuple[int, str] | None:
        """The next image (image id, path), None when the run is over (or cancelled)."""
        return self.images[0] if self.images else None

    def finished(self, image_id: int, answer: Any) -> None:
        """`answer` for `image_id` (None: nothing to do there, the image was done already)."""
        stored = None if answer is None else self.store_result(image_id, answer)
        if stored is None:
            self.report.skipped += 1
        else:
            self.report.labelled += 1
            self.report.proposals += stored
        self.status.step()
        self._pop(image_id)

    def skipped(self, image_id: int) -> None:
        """Done by this run before: nothing asked, nothing stored."""
        self.finished(image_id, None)

    def failed(self, image_id: int, message: str) -> None:
        self.report.failed.append(message)
        self.status.step(skipped=True)
        self._pop(image_id)

    def cancel(self) -> None:
        """Stop after the image in progress (its answer is still stored when it comes)."""
        self.images = []
        self.status.cancel()

    def end(self) -> AutolabelReport:
        self.status.end()
        self.report.seconds = time.perf_counter() - self._start
        return self.report

    def _pop(self, image_id: int) -> None:
        if self.images and self.images[0][0] == image_id:
            self.images.pop(0)

    # ------------------------------------------------------------------ through the model thread
    def request(self) -> DiscoveryRequest | None:
        """The model thread's request for the next image (a fresh id), None when over."""
        item = self.next()
        if item is None:
            return None
        image_id, path = item
        self.request_id += 1
        return DiscoveryRequest(self.request_id, image_id, path, self.kind, self.params(image_id))

    def answer(self, kind: str, image_id: int, request_id: int, result: Any, store: bool) -> bool:
        """The model thread's answer; False when it is not this run's (another kind or an older
        request). `store=False`: the project was closed meanwhile, the answer is dropped."""
        if kind != self.kind or request_id != self.request_id:
            return False
        if isinstance(result, str) and result == YIELDED:
            self.yielded += 1  # a click went first: the same image is asked again
            return True
        self.finished(image_id, result if store else None)
        return True

    def refused(self, kind: str, image_id: int, request_id: int, message: str) -> bool:
        """The model thread failed on this run's image: counted, the run goes on."""
        if kind != self.kind or request_id != self.request_id:
            return False
        self.failed(image_id, message)
        return True


# ---------------------------------------------------------------------------------------- runs
def autolabel_loop(
    store: ProposalStore,
    images: Sequence[tuple[int, str]],
    params: AutolabelParams | None = None,
    run: str = "",
    source: str = "proposals",
) -> ImageLoop:
    """The auto-label loop; an answer is (run key, the image's proposals or None if done)."""

    def store_result(image_id: int, answer: Any) -> int | None:
        key, found = answer
        if found is None:
            return None
        return store.finish_image(image_id, key, source, found)

    return ImageLoop(AUTOLABEL, images, store_result, lambda _image_id: params, run)


def refine_loop(store: ProposalStore, todo: dict[int, Sequence[Any]], clip: bool) -> ImageLoop:
    """Box-only annotations refined into masks, one image at a time (`app.refine`)."""
    from annotator.app.refine import store_image

    project = store.project
    images = [(i, str(project.folder / project.image(i).file_name)) for i in todo]

    def store_result(image_id: int, found: Any) -> int:
        return store_image(store, image_id, found)[0]

    return ImageLoop(
        REFINE, images, store_result, lambda image_id: RefineParams(tuple(todo[image_id]), clip)
    )


def project_images(project: Any) -> list[tuple[int, str]]:
    """(image id, path) of every image of the project, in its order."""
    return [(r.id, str(Path(project.folder) / r.file_name)) for r in project.images()]


def autolabel(
    project: Any,
    labeler: Labeler,
    classes: Sequence[str],
    images: Sequence[Any] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> AutolabelReport:
    """Label the project's images (or `images`, store records) with `classes`: the loop above
    with the labeler in this thread (`annotator autolabel`).

    Skips the images this run (same labeler identity, classes and settings = same run key) has
    finished; each image's proposals and done mark are stored together, so killing it at any
    moment loses at most the image in progress and a rerun never duplicates a finished image.
    `should_stop` is polled between images (a cancel); Ctrl-C (KeyboardInterrupt) may arrive
    anywhere and leaves the same consistent state.
    """
    classes = list(classes)
    if not classes:
        raise AnnotatorError("no classes to label: give --classes NAME,NAME or --label-set")
    if project.folder is None:
        raise AnnotatorError(f"{project.path}: the project does not know its image folder")
    store = ProposalStore(project)
    run = run_id(labeler, classes)
    records = list(project.images() if images is None else images)
    names = {r.id: r.file_name for r in records}
    done = store.done_images(run)
    paths = [(r.id, str(project.folder / r.file_name)) for r in records]
    loop = autolabel_loop(store, paths, run=run, source=labeler.source)
    finished = 0
    while (item := loop.next()) is not None:
        if should_stop is not None and should_stop():
            break
        image_id, path = item
        if image_id in done:
            loop.skipped(image_id)
        else:
            try:
                found = labeler.label(Path(path), classes)
            except AnnotatorError as error:
                loop.failed(image_id, str(error))
            else:
                loop.finished(image_id, (run, found))
        finished += 1
        if progress is not None:
            progress(finished, len(records), names[image_id])
    return loop.end()


__all__ = ["ImageLoop", "autolabel", "autolabel_loop", "project_images", "refine_loop"]
