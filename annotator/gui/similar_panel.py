"""Similar images and annotated objects: click a result to jump to it, propagate a label across them.

The worker (`annotator.app.jobs.run_similar`) answers from the CLIP vectors kept in the project (`annotator.discovery.SimilarityIndex`);
vectors still missing (new annotations, images never indexed) are backfilled first, stepping aside
whenever a click is waiting. The worker opens its own connection to the project file, so the GUI's
connection is never used from two threads. Relabelling the checked objects is one undo step.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from annotator.app.jobs import (
    ANNOTATION,
    IMAGE,
    SIMILAR,
    DiscoveryRequest,
    SimilarParams,
    SimilarRow,
)
from annotator.app.session import Session
from annotator.gui.commands import RelabelCommand
from annotator.gui.worker import EngineWorker


class SimilarPanel(QWidget):
    """From the selected annotation (or the image): the most similar objects or images."""

    results_shown = Signal(int)  # number of rows (tests, status)

    def __init__(self, session: Session, worker: EngineWorker, undo_stack: QUndoStack) -> None:
        super().__init__()
        self.session, self.worker, self.undo_stack = session, worker, undo_stack
        self.rows: list[SimilarRow] = []
        self._req = -1
        self._params: SimilarParams | None = None
        self._jump_to: int | None = None  # annotation to select once its image is shown
        self._toggled = False
        self.target = QComboBox()
        self.target.addItem("Similar objects", ANNOTATION)
        self.target.addItem("Similar images", IMAGE)
        self.count = QSpinBox()
        self.count.setRange(1, 500)
        self.count.setValue(20)
        self.find_button = QPushButton("Find similar")
        self.find_button.setToolTip("From the selected annotation, or the whole image if none")
        self.find_button.clicked.connect(lambda: self.find())
        self.status = QLabel("Select an annotation (or none for the image), then Find similar")
        self.status.setWordWrap(True)
        self.list = QListWidget()
        self.list.itemClicked.connect(self._clicked)
        self.list.itemChanged.connect(self._changed)
        self.label = QComboBox()
        self.label.setEditable(True)
        self.label.setToolTip("The label to give the checked objects")
        self.apply_button = QPushButton("Apply label to checked")
        self.apply_button.clicked.connect(lambda: self.apply_label())
        top = QHBoxLayout()
        top.addWidget(self.target, 1)
        top.addWidget(self.count)
        top.addWidget(self.find_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.label, 1)
        bottom.addWidget(self.apply_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.list, 1)
        layout.addLayout(bottom)
        self.apply_button.setEnabled(False)

    # ------------------------------------------------------------------ asking
    def find(self, target: str | None = None) -> None:
        """Ask the worker for neighbours of the selected annotation, else of the current image."""
        s = self.session
        if s.project is None or s.image_id is None:
            self.status.setText("Open a folder first")
            return
        if not s.engine_ready:
            self.status.setText("The models are not loaded: similarity needs CLIP")
            return
        if target is not None:
            self.target.setCurrentIndex(self.target.findData(target))
        selected = s.selected
        source, ref = (ANNOTATION, selected) if selected is not None else (IMAGE, s.image_id)
        self._params = SimilarParams(
            str(s.project.path), source, int(ref), self.target.currentData(), self.count.value()
        )
        record = s.records.get(selected) if source == ANNOTATION else None
        self._set_label_choices(record.category if record is not None else "")
        self._send()
        what = f"annotation {ref}" if source == ANNOTATION else "this image"
        self.status.setText(f"Looking for what resembles {what}…")

    def _send(self) -> None:
        s = self.session
        self._req = s.next_id()
        image_id = s.image_id if s.image_id is not None else -1
        self.worker.discover(DiscoveryRequest(self._req, image_id, "", SIMILAR, self._params))

    def on_result(self, kind: str, image_id: int, request_id: int, result: Any) -> None:
        if kind != SIMILAR or request_id != self._req:
            return
        if result.rows is None:  # the backfill stepped aside for a click: carry on
            self.status.setText(f"Indexing the project… {result.done} / {result.total} images")
            self._send()
            return
        self._req = -1
        self.set_rows(result.rows)

    def on_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        if kind == SIMILAR and request_id == self._req:
            self._req = -1
            self.status.setText(f"Similarity failed: {message}")

    def set_rows(self, rows: list[SimilarRow]) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        self.rows = list(rows)
        for row in self.rows:
            item = QListWidgetItem(self._text(row))
            if row.kind == ANNOTATION:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.blockSignals(False)
        objects = sum(r.kind == ANNOTATION for r in self.rows)
        self.apply_button.setEnabled(objects > 0)
        self.status.setText(
            f"{len(self.rows)} result(s), best first: click one to go there"
            + (", check objects and apply a label to them" if objects else "")
        )
        self.results_shown.emit(len(self.rows))

    @staticmethod
    def _text(row: SimilarRow) -> str:
        if row.kind == ANNOTATION:
            return f"{row.score:.3f}   {row.category}   #{row.ref_id}   {row.file_name}"
        return f"{row.score:.3f}   {row.file_name}"

    def _set_label_choices(self, current: str) -> None:
        names = [c.name for c in self.session.project.categories()] if self.session.project else []
        self.label.clear()
        self.label.addItems(names)
        self.label.setCurrentText(current)

    # ------------------------------------------------------------------ jumping
    def _changed(self, _item: QListWidgetItem) -> None:
        self._toggled = True  # a checkbox click: do not jump

    def _clicked(self, item: QListWidgetItem) -> None:
        if self._toggled:
            self._toggled = False
            return
        self.jump(self.list.row(item))

    def jump(self, index: int) -> None:
        """Show the image of result `index` and, for an object, select it."""
        if not 0 <= index < len(self.rows):
            return
        s, row = self.session, self.rows[index]
        self._jump_to = row.ref_id if row.kind == ANNOTATION else None
        if row.image_id == s.image_id:
            self.image_shown(row.image_id)
            return
        position = s.row_of(row.image_id)
        if position is not None:
            s.request_row(position)

    def image_shown(self, image_id: int) -> None:
        """After an image and its annotations appear: select the object a jump was for."""
        ann_id, self._jump_to = self._jump_to, None
        if ann_id is not None and ann_id in self.session.records:
            self.session.select(ann_id)

    # ------------------------------------------------------------------ propagating a label
    def checked(self) -> list[SimilarRow]:
        return [
            row
            for i, row in enumerate(self.rows)
            if row.kind == ANNOTATION and self.list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def set_checked(self, indexes: list[int]) -> None:
        for i in indexes:
            self.list.item(i).setCheckState(Qt.CheckState.Checked)
        self._toggled = False

    def apply_label(self, label: str | None = None) -> int:
        """Give `label` (or the combo's) to every checked object, as one undo step; returns how many."""
        s = self.session
        name = " ".join((label if label is not None else self.label.currentText()).split())
        if s.project is None or not name or not s.can_edit():
            return 0
        changes = []
        for row in self.checked():
            try:
                record = s.project.annotation(row.ref_id)
            except KeyError:
                continue  # deleted since the search
            if record.category != name:
                changes.append(record)
        if not changes:
            s.status(f"The checked objects are already “{name}”", 4000)
            return 0
        self.undo_stack.beginMacro(f"label {len(changes)} similar object(s) {name}")
        try:
            for record in changes:
                self.undo_stack.push(
                    RelabelCommand(
                        s.project,
                        s.annotations_changed,
                        record.image_id,
                        record.id,
                        record.category,
                        name,
                    )
                )
        finally:
            self.undo_stack.endMacro()
        self.rows = [
            SimilarRow(r.kind, r.ref_id, r.image_id, r.file_name, name, r.score)
            if any(c.id == r.ref_id for c in changes) and r.kind == ANNOTATION
            else r
            for r in self.rows
        ]
        for i, row in enumerate(self.rows):
            self.list.blockSignals(True)
            self.list.item(i).setText(self._text(row))
            self.list.blockSignals(False)
        s.categories_changed()
        s.status(f"Labelled {len(changes)} object(s) “{name}” (Ctrl+Z undoes)", 5000)
        return len(changes)
