"""A tag line for the current image and "seed the project's labels from tags".

Tags are the vocabulary entries that best describe the whole image (`annotator.discovery.tag_image`:
CLIP zero-shot over the vocabulary, read from the cached embedding), computed in the worker when an image
is shown. Clicking a tag searches for it. Seeding tags every image of the project (a long job that steps
aside whenever a click is waiting, then resumes) and adds the names tagged on the most images to the
project's categories, so "project labels only" suggests them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from annotator.app.jobs import SEED, TAGS, DiscoveryRequest, SeedParams, SeedResult
from annotator.app.session import Session
from annotator.gui.colors import category_rgb
from annotator.gui.commands import AddCategoriesCommand
from annotator.gui.worker import EngineWorker


class TagsBar(QWidget):
    """`Tags: [dog 41%] [grass 12%] …   [Seed labels from tags]` for the image on the canvas."""

    tag_clicked = Signal(str)  # a tag name: the window searches for it
    tags_shown = Signal(list)  # [(name, score)] now on the line
    seeded = Signal(list)  # names added to the project's categories

    def __init__(
        self, session: Session, worker: EngineWorker, undo_stack: QUndoStack, k: int = 5
    ) -> None:
        super().__init__()
        self.session, self.worker, self.undo_stack = session, worker, undo_stack
        self.k = k
        self.seed_count = 20
        self.tags: list[tuple[str, float]] = []
        self._req = -1
        self._seed_req = -1
        self._seed_params: SeedParams | None = None
        self._buttons: list[QToolButton] = []
        self.title = QLabel("Tags:")
        self.seed_button = QPushButton("Seed labels from tags")
        self.seed_button.setToolTip(
            "Tag every image and add the most frequent tags to the project's labels"
        )
        self.seed_button.clicked.connect(lambda: self.seed())
        self._row = QHBoxLayout()
        self._row.setContentsMargins(0, 0, 0, 0)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.title)
        layout.addLayout(self._row)
        layout.addStretch(1)
        layout.addWidget(self.seed_button)

    # ------------------------------------------------------------------ the current image
    def request(self, _image_id: int = -1) -> None:
        """Ask the worker for the shown image's tags (after the image appears or the models load)."""
        s = self.session
        self.set_tags([])
        if s.image_id is None or not s.engine_ready:
            return
        if s.large is not None:  # issue 26: a large image is never encoded whole
            self.title.setText("Tags: (not for a large image)")
            return
        self._req = s.next_id()
        self.worker.discover(DiscoveryRequest(self._req, s.image_id, s.image_path(), TAGS, self.k))
        self.title.setText("Tags: …")

    def on_result(self, kind: str, image_id: int, request_id: int, result: Any) -> None:
        if kind == TAGS and request_id == self._req and image_id == self.session.image_id:
            self._req = -1
            self.set_tags(list(result))
        elif kind == SEED and request_id == self._seed_req:
            self._seeded(result)

    def on_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        if kind == TAGS and request_id == self._req:
            self.title.setText("Tags: (failed)")
        elif kind == SEED and request_id == self._seed_req:
            self._seed_req = -1
            self.seed_button.setEnabled(True)

    def set_tags(self, tags: list[tuple[str, float]]) -> None:
        for button in self._buttons:
            self._row.removeWidget(button)
            button.deleteLater()
        self._buttons = []
        self.tags = [(str(name), float(score)) for name, score in tags]
        self.title.setText("Tags:")
        for name, score in self.tags:
            button = QToolButton()
            button.setText(f"{name} {score:.0%}")
            button.setToolTip(f"Find “{name}” in this image")
            r, g, b = category_rgb(name)
            button.setStyleSheet(
                f"QToolButton {{ border: 1px solid rgb({r},{g},{b}); border-radius: 8px;"
                " padding: 1px 6px; }"
            )
            button.clicked.connect(lambda _checked=False, n=name: self.tag_clicked.emit(n))
            self._row.addWidget(button)
            self._buttons.append(button)
        self.tags_shown.emit(self.tags)

    def names(self) -> list[str]:
        return [name for name, _ in self.tags]

    # ------------------------------------------------------------------ seeding
    def seed(self, n: int | None = None) -> None:
        """Tag every image of the project (in the worker) and add the top `n` names as categories."""
        s = self.session
        rows = s.rows
        if s.project is None or not rows:
            s.status("Open a folder first", 4000)
            return
        if not s.engine_ready:
            s.status("The models are not loaded: tags need CLIP", 5000)
            return
        self._seed_params = SeedParams(tuple(r.path for r in rows), self.k, n or self.seed_count)
        self.seed_button.setEnabled(False)
        self._send_seed()

    def _send_seed(self) -> None:
        s = self.session
        self._seed_req = s.next_id()
        image_id = s.image_id if s.image_id is not None else -1
        self.worker.discover(
            DiscoveryRequest(self._seed_req, image_id, "", SEED, self._seed_params)
        )

    def _seeded(self, result: SeedResult) -> None:
        s = self.session
        if result.names is None:  # the job stepped aside for a click: carry on
            s.status(f"Tagging images for labels… {result.done} / {result.total}", 0)
            self._send_seed()
            return
        self._seed_req = -1
        self.seed_button.setEnabled(True)
        if s.project is None:
            return
        known = {c.name for c in s.project.categories()}
        added = [name for name in result.names if name not in known]
        if added:  # one undo step (Ctrl+Z removes them again while unused)
            self.undo_stack.push(AddCategoriesCommand(s.project, s.categories_changed, added))
        s.status(
            f"Seeded {len(added)} new label(s) from tags: {', '.join(added) or 'none new'}", 8000
        )
        self.seeded.emit(added)
