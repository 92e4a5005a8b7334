"""Similar images and annotated objects: click a result to jump to it, propagate a label across them.

The worker answers from the CLIP vectors kept in the project (`annotator.discovery.SimilarityIndex`);
vectors still missing (new annotations, images never indexed) are backfilled first, stepping aside
whenever a click is waiting. The worker opens its own connection to the project file, so the GUI's
connection is never used from two threads. Relabelling the checked objects is one undo step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
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

from annotator.gui.commands import RelabelCommand
from annotator.gui.worker import DiscoveryRequest, JobContext, discovery_job
from annotator.store.embeddings import ANNOTATION, IMAGE

if TYPE_CHECKING:
    from annotator.gui.main_window import MainWindow

SIMILAR = "similar"


@dataclass(frozen=True)
class SimilarParams:
    db_path: str  # the project file (the worker opens its own connection)
    source: str  # "image" | "annotation"
    ref_id: int
    target: str  # "image" | "annotation"
    k: int = 20


@dataclass(frozen=True)
class SimilarRow:
    kind: str
    ref_id: int
    image_id: int
    file_name: str
    category: str  # "" for images
    score: float


@dataclass(frozen=True)
class SimilarResult:
    rows: list[SimilarRow] | None  # None: the backfill stepped aside for a click, ask again
    done: int = 0
    total: int = 0


class _StepAside(Exception):
    pass


@discovery_job(SIMILAR)
def run_similar(context: JobContext, request: DiscoveryRequest) -> SimilarResult:
    """Worker thread: backfill missing vectors, then the k nearest images or objects."""
    from annotator.discovery.similar import SimilarityIndex, backfill
    from annotator.store import Project

    params: SimilarParams = request.params
    engine = context.engine
    held = context.state.get("similar")
    if held is None or held[0] != params.db_path:
        if held is not None:
            held[1].close()
        project = Project(params.db_path)
        held = context.state["similar"] = (
            params.db_path,
            project,
            SimilarityIndex(project, engine.region_model_id),
        )
    _, project, index = held
    seen = [0, 0]

    def progress(done: int, total: int) -> None:
        seen[:] = [done, total]
        context.progress("similar", done, total)
        if done < total and context.urgent():
            raise _StepAside

    try:
        backfill(project, engine, progress)
    except _StepAside:
        return SimilarResult(None, *seen)
    if params.source == IMAGE:
        found = index.like_image(params.ref_id, params.target, params.k)
    else:
        found = index.like_annotation(params.ref_id, params.target, params.k)
    rows = []
    for n in found:
        if n.kind == ANNOTATION:
            record = project.annotation(n.ref_id)
            image_id, category = record.image_id, record.category
        else:
            image_id, category = n.ref_id, ""
        name = project.image(image_id).file_name
        rows.append(SimilarRow(n.kind, n.ref_id, image_id, name, category, n.score))
    return SimilarResult(rows)


class SimilarPanel(QWidget):
    """From the selected annotation (or the image): the most similar objects or images."""

    results_shown = Signal(int)  # number of rows (tests, status)

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.w = window
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
        w = self.w
        if w.project is None or w.image_id is None:
            self.status.setText("Open a folder first")
            return
        if not w.engine_ready:
            self.status.setText("The models are not loaded: similarity needs CLIP")
            return
        if target is not None:
            self.target.setCurrentIndex(self.target.findData(target))
        selected = w.controller.selected
        source, ref = (ANNOTATION, selected) if selected is not None else (IMAGE, w.image_id)
        self._params = SimilarParams(
            str(w.project.path), source, int(ref), self.target.currentData(), self.count.value()
        )
        record = w.controller.records.get(selected) if source == ANNOTATION else None
        self._set_label_choices(record.category if record is not None else "")
        self._send()
        what = f"annotation {ref}" if source == ANNOTATION else "this image"
        self.status.setText(f"Looking for what resembles {what}…")

    def _send(self) -> None:
        w = self.w
        self._req = w.controller.next_id()
        image_id = w.image_id if w.image_id is not None else -1
        w.worker.discover(DiscoveryRequest(self._req, image_id, "", SIMILAR, self._params))

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
        names = [c.name for c in self.w.project.categories()] if self.w.project else []
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
        w, row = self.w, self.rows[index]
        self._jump_to = row.ref_id if row.kind == ANNOTATION else None
        if row.image_id == w.image_id:
            self.image_shown(row.image_id)
            return
        rows = w.images.model_.rows
        position = next((i for i, r in enumerate(rows) if r.image_id == row.image_id), None)
        if position is not None:
            w.go_to(position)

    def image_shown(self, image_id: int) -> None:
        """After an image and its annotations appear: select the object a jump was for."""
        ann_id, self._jump_to = self._jump_to, None
        if ann_id is not None and ann_id in self.w.controller.records:
            self.w.controller.select(ann_id)

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
        w = self.w
        name = " ".join((label if label is not None else self.label.currentText()).split())
        if w.project is None or not name:
            return 0
        changes = []
        for row in self.checked():
            try:
                record = w.project.annotation(row.ref_id)
            except KeyError:
                continue  # deleted since the search
            if record.category != name:
                changes.append(record)
        if not changes:
            w.show_status(f"The checked objects are already “{name}”", 4000)
            return 0
        w.undo_stack.beginMacro(f"label {len(changes)} similar object(s) {name}")
        try:
            for record in changes:
                w.undo_stack.push(
                    RelabelCommand(
                        w.project,
                        w.refresh_image,
                        record.image_id,
                        record.id,
                        record.category,
                        name,
                    )
                )
        finally:
            w.undo_stack.endMacro()
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
        w.categories_changed()
        w.show_status(f"Labelled {len(changes)} object(s) “{name}” (Ctrl+Z undoes)", 5000)
        return len(changes)
