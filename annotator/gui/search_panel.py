"""Open-vocabulary search: type what to find, get masks on the canvas to accept or reject.

The query goes to the worker ("find" job, `annotator.app.jobs.run_find`: `annotator.discovery.Finder` over the image's automatic mask
proposals, cached per image, so a second query on the same image is one matrix product). The matches
come back as plain `Match` objects and are drawn on the canvas as dashed overlays; each one can be
accepted (an undoable `AcceptCommand`, labelled with the query) or rejected, one by one or all at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from annotator.app.jobs import FIND, YIELDED, DiscoveryRequest, FindParams
from annotator.app.session import Session
from annotator.gui.canvas import Canvas
from annotator.gui.commands import AcceptCommand
from annotator.gui.overlays import MaskItem
from annotator.gui.worker import EngineWorker

HIT_RGB = (255, 200, 0)  # proposals from a search (the current one is drawn stronger)


@dataclass
class Hit:
    """One match shown on the canvas, not yet accepted or rejected."""

    mask: np.ndarray
    box: tuple[float, float, float, float]
    score: float
    item: MaskItem


class SearchPanel(QWidget):
    """Search field, the list of matches, accept / reject buttons; matches drawn on the canvas."""

    searched = Signal(int)  # number of matches shown (tests, status)

    def __init__(
        self, session: Session, worker: EngineWorker, undo_stack: QUndoStack, canvas: Canvas
    ) -> None:
        super().__init__()
        self.session, self.worker, self.undo_stack, self.canvas = (
            session,
            worker,
            undo_stack,
            canvas,
        )
        self.settings: Any = None  # ProposalSettings for the finder (None: discovery defaults)
        self.query = ""
        self.hits: list[Hit] = []
        self._image_id: int | None = None
        self._req = -1
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("find… e.g. “red car” (Ctrl+F)")
        self.edit.setClearButtonEnabled(True)
        self.edit.returnPressed.connect(self.search)
        self.count = QSpinBox()
        self.count.setRange(1, 100)
        self.count.setValue(10)
        self.count.setToolTip("how many matches to show")
        self.button = QPushButton("Find")
        self.button.clicked.connect(lambda: self.search())
        self.status = QLabel("")
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._highlight)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept_current())
        buttons = QHBoxLayout()
        self.accept_button = QPushButton("Accept")
        self.reject_button = QPushButton("Reject")
        self.accept_all_button = QPushButton("Accept all")
        self.reject_all_button = QPushButton("Reject all")
        for button, slot in (
            (self.accept_button, self.accept_current),
            (self.reject_button, self.reject_current),
            (self.accept_all_button, self.accept_all),
            (self.reject_all_button, self.reject_all),
        ):
            button.clicked.connect(slot)
            buttons.addWidget(button)
        row = QHBoxLayout()
        row.addWidget(self.edit, 1)
        row.addWidget(self.count)
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    # ------------------------------------------------------------------ asking
    def start(self) -> None:
        """Ctrl+F: focus the field."""
        self.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.edit.selectAll()

    def search(self, text: str | None = None) -> None:
        """Send the query for the current image to the worker; old matches go away."""
        s = self.session
        query = " ".join((self.edit.text() if text is None else text).split())
        if text is not None:
            self.edit.setText(query)
        if not query:
            return
        if s.image_id is None:
            self.status.setText("Open a folder first")
            return
        if not s.engine_ready:
            self.status.setText("The models are not loaded: search needs SAM and CLIP")
            return
        self.reject_all()
        self.query = query
        self._image_id = s.image_id
        self._req = s.next_id()
        params = FindParams(query, self.count.value(), self.settings)
        self._request = DiscoveryRequest(self._req, s.image_id, s.image_path(), FIND, params)
        self.worker.discover(self._request)
        self.status.setText(f"Searching for “{query}”… (the first search of an image is slower)")

    def on_result(self, kind: str, image_id: int, request_id: int, matches: Any) -> None:
        if kind != FIND or request_id != self._req or image_id != self.session.image_id:
            return  # stale: another image or a newer query
        if isinstance(matches, str) and matches == YIELDED:
            self.worker.discover(self._request)  # a click went first: search again after it
            return
        self._req = -1
        self.clear_hits()
        scene = self.canvas.scene()
        for match in matches:
            item = MaskItem(scene, 15)
            self.hits.append(Hit(match.mask, tuple(match.box), float(match.score), item))
            item_row = QListWidgetItem(
                f"{self.query}   {match.score:.2f}   "
                f"{int(match.box[2] - match.box[0])}×{int(match.box[3] - match.box[1])} px"
            )
            self.list.addItem(item_row)
        self._draw()
        if self.hits:
            self.list.setCurrentRow(0)
        n = len(self.hits)
        self.status.setText(
            f"{n} match(es) for “{self.query}”: Accept / Reject each, or all"
            if n
            else f"Nothing found for “{self.query}”"
        )
        self._update_buttons()
        self.searched.emit(n)

    def on_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        if kind == FIND and request_id == self._req:
            self._req = -1
            self.status.setText(f"Search failed: {message}")

    # ------------------------------------------------------------------ deciding
    def label(self) -> str:
        """The category for accepted matches: the vocabulary's spelling of the query if it has one."""
        return self.session.canonical(self.query) or self.query

    def accept_current(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.hits):
            self._accept_rows([row])

    def accept_all(self) -> None:
        self._accept_rows(list(range(len(self.hits))))

    def _accept_rows(self, rows: list[int]) -> None:
        """Store the matches of `rows` (one undo step), then take them off the canvas."""
        s = self.session
        if self._image_id != s.image_id or not rows or not s.can_edit():
            return
        label = self.label()
        self.undo_stack.beginMacro(f"accept {len(rows)} × {label}")
        try:
            for row in rows:
                hit = self.hits[row]
                prompts = {"search": self.query, "box": list(hit.box)}
                self.undo_stack.push(
                    AcceptCommand(
                        s.project,
                        s.annotations_changed,
                        s.image_id,
                        hit.mask,
                        label,
                        hit.score,
                        prompts,
                    )
                )
        finally:
            self.undo_stack.endMacro()
        self._remove_rows(rows)
        s.categories_changed()
        s.status(f"Accepted {len(rows)} × {label} (Ctrl+Z undoes)", 4000)

    def reject_current(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self.hits):
            self._remove_rows([row])

    def reject_all(self) -> None:
        """Drop every match (and forget a search still running)."""
        self._req = -1
        self.clear_hits()
        self._update_buttons()

    def _remove_rows(self, rows: list[int]) -> None:
        scene = self.canvas.scene()
        for row in sorted(rows, reverse=True):
            self.hits.pop(row).item.remove(scene)
            self.list.takeItem(row)
        self._draw()
        self._update_buttons()

    # ------------------------------------------------------------------ showing
    def clear_hits(self) -> None:
        scene = self.canvas.scene()
        for hit in self.hits:
            hit.item.remove(scene)
        self.hits = []
        self.list.clear()

    def image_changed(self, _image_id: int = -1) -> None:
        """Matches belong to one image: a new image clears them."""
        self.reject_all()
        self._image_id = None
        self.status.setText("")

    def _highlight(self, _row: int) -> None:
        self._draw()

    def _draw(self) -> None:
        current = self.list.currentRow()
        for i, hit in enumerate(self.hits):
            strong = i == current
            hit.item.show_mask(
                hit.mask, HIT_RGB, 110 if strong else 45, 2.5 if strong else 1.0, True
            )
            hit.item.set_visible(True)

    def _update_buttons(self) -> None:
        has = bool(self.hits)
        for button in (
            self.accept_button,
            self.reject_button,
            self.accept_all_button,
            self.reject_all_button,
        ):
            button.setEnabled(has)
