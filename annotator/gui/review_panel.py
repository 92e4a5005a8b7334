"""The review panel: pending auto-label proposals one by one at keyboard speed, and the auto-label run.

Keys (with the panel focused): Enter accepts, Backspace rejects, 1-9 change the class to the n-th
class, typing a name opens the class field (Enter applies it), Up/Down move. "Accept above" accepts
every pending proposal scoring at least the given value. Every edit is a `discovery.review` command
wrapped in a QUndoCommand on the window's undo stack. The counts are always shown at the top.

The auto-label run goes through the engine worker one image at a time ("autolabel" discovery job),
so clicks on the canvas are served between images, Cancel stops after the image in progress, and
each image's proposals and done mark are stored together (`ProposalStore.finish_image`): a run
closed or killed half-way continues where it stopped the next time. "Refine boxes into masks"
(`start_refine`) runs the same way with the "refine" job: the box-only annotations' masks become
pending proposals here (`app.refine`), reviewed like auto-label's.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
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

from annotator.app.autolabel import ImageLoop, autolabel_loop, project_images, refine_loop
from annotator.app.jobs import AutolabelParams
from annotator.app.keys import ACTIONS, TYPE
from annotator.app.large_view import annotation_crop
from annotator.app.progress import BatchStatus
from annotator.app.refine import waiting_boxes
from annotator.app.review import ORDERS, ReviewCommand, ReviewQueue, typed_classes
from annotator.gui.keymap import key_of
from annotator.gui.overlays import MaskItem
from annotator.gui.review_undo import Undoable

PROPOSAL_RGB = (0, 200, 255)


class ReviewPanel(QWidget):
    """Counts, order, the pending queue, accept / reject / class, accept above, auto-label run."""

    go_to_image = Signal(int)  # image id of the current proposal: the window shows it
    annotations_changed = Signal(int)  # image id whose annotations an accept / undo changed
    counts_changed = Signal(dict)
    leave = Signal()  # Esc in the queue: the canvas takes the keys

    def __init__(self, undo_stack: QUndoStack, worker: Any = None) -> None:
        super().__init__()
        self.undo_stack, self.worker = undo_stack, worker
        self.queue: ReviewQueue | None = None
        self.folder: Any = None
        self.run: ImageLoop | None = None  # the auto-label or refine run (`app.autolabel`)
        self._running = False
        self._store: Any = None  # the ProposalStore the run writes to
        self._names: dict[int, str] = {}  # image id -> file name, of images with proposals
        self._overlay: MaskItem | None = None
        self._scene: Any = None
        self._shown: int | None = None  # the image id the window shows (its pixels are there)
        self.counts = QLabel("no project")
        self.counts.setObjectName("review-counts")
        self.order = QComboBox()
        self.order.addItems(ORDERS)
        self.order.currentTextChanged.connect(self._order_changed)
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._row_changed)
        self.list.installEventFilter(self)
        self.class_edit = QLineEdit()
        self.class_edit.setPlaceholderText("class… (1-9 or type, Enter)")
        self.class_edit.returnPressed.connect(self._class_typed)
        self.class_edit.installEventFilter(self)
        self.accept_button = QPushButton("Accept (Enter)")
        self.accept_button.clicked.connect(lambda: self.accept())
        self.reject_button = QPushButton("Reject (Backspace)")
        self.reject_button.clicked.connect(self.reject)
        self.above = QDoubleSpinBox()
        self.above.setRange(-1.0, 1.0)
        self.above.setDecimals(3)
        self.above.setSingleStep(0.05)
        self.above.setValue(0.3)
        self.above_button = QPushButton("Accept all above")
        self.above_button.clicked.connect(lambda: self.accept_above(self.above.value()))
        self.classes_edit = QLineEdit()
        self.classes_edit.setPlaceholderText("classes to auto-label: person, car, …")
        self.classes_edit.returnPressed.connect(lambda: self.start_autolabel())
        self.classes_edit.installEventFilter(self)
        # the CLI's `annotator autolabel --threshold T --top-k K`, with the same defaults
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(-1.0, 1.0)
        self.threshold.setDecimals(2)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(0.2)
        self.threshold.setPrefix("threshold ")
        self.threshold.setToolTip(
            "keep regions whose class score is at least this (CLI --threshold)"
        )
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 1000)
        self.top_k.setValue(10)
        self.top_k.setPrefix("top ")
        self.top_k.setSuffix(" per class")
        self.top_k.setToolTip("at most K regions per class and image (CLI --top-k)")
        self.run_button = QPushButton("Auto-label")
        self.run_button.clicked.connect(lambda: self.start_autolabel())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_autolabel)
        self.cancel_button.setEnabled(False)
        self.run_status = QLabel("")

        top = QHBoxLayout()
        top.addWidget(self.counts, 1)
        top.addWidget(QLabel("order"))
        top.addWidget(self.order)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.reject_button)
        above = QHBoxLayout()
        above.addWidget(self.above)
        above.addWidget(self.above_button)
        run = QHBoxLayout()
        run.addWidget(self.classes_edit, 1)
        limits = QHBoxLayout()
        limits.addWidget(self.threshold)
        limits.addWidget(self.top_k)
        run.addWidget(self.run_button)
        run.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.class_edit)
        layout.addLayout(buttons)
        layout.addLayout(above)
        layout.addLayout(limits)
        layout.addLayout(run)
        layout.addWidget(self.run_status)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        if worker is not None:
            self.set_worker(worker)

    # ------------------------------------------------------------------------------ wiring
    def set_worker(self, worker: Any) -> None:
        self.worker = worker
        worker.discovered.connect(self.on_result)
        worker.failed.connect(self.on_failed)

    def set_queue(self, queue: ReviewQueue | None, folder: Any = None) -> None:
        """A project was opened (or closed: None)."""
        self.cancel_autolabel()
        self.queue, self.folder = queue, folder
        self._names: dict[int, str] = {}
        self.refresh()

    def image_shown(self, image_id: int, scene: Any) -> None:
        """The window shows `image_id`: draw the current proposal on it if it belongs there."""
        if self._overlay is not None and scene is not self._scene:
            self._overlay.remove(self._scene)
            self._overlay = None
        self._scene, self._shown = scene, image_id
        self._draw()

    def image_hidden(self, _image_id: int | None = None) -> None:
        """The window leaves the shown image (another one is loading): no overlay meanwhile."""
        self._shown = None
        self._draw()

    def overlay_image(self) -> int | None:
        """The image id the proposal overlay is drawn on (None: not drawn)."""
        if self._overlay is None or not self._overlay.fill.isVisible():
            return None
        return self._shown

    # ------------------------------------------------------------------------------ showing
    def refresh(self, show: bool = True) -> None:
        """Re-read the queue; `show` also brings the current proposal's image up (not when the
        change came from elsewhere: the window stays where the user is)."""
        q = self.queue
        self.list.blockSignals(True)
        self.list.clear()
        if q is None:
            self.counts.setText("no project")
            self.list.blockSignals(False)
            return
        q.refresh()
        names = self._image_names()
        for p in q.items:
            name = names.get(p.image_id, str(p.image_id))
            item = QListWidgetItem(f"{p.score:+.3f}  {p.category}  —  {name}")
            item.setData(Qt.ItemDataRole.UserRole, p.id)
            self.list.addItem(item)
        if q.items:
            self.list.setCurrentRow(q.index)
        self.list.blockSignals(False)
        counts = q.counts()
        self.counts.setText(
            f"pending {counts['pending']} · accepted {counts['accepted']} · "
            f"rejected {counts['rejected']} · images done {counts['images_done']}/{counts['images']}"
        )
        self.accept_button.setEnabled(bool(q.items))
        self.reject_button.setEnabled(bool(q.items))
        self.counts_changed.emit(counts)
        if show:
            self._show_current()
        else:
            self._draw()

    def _image_names(self) -> dict[int, str]:
        """File names of the queued proposals' images, read once per image (not the whole
        project's list on every refresh: a 20,000-image folder would stall the window)."""
        if self.queue is None:
            return {}
        wanted = {p.image_id for p in self.queue.items}
        missing = wanted - self._names.keys()
        project = self.queue.store.project
        if len(missing) > 200:
            self._names.update({r.id: r.file_name for r in project.images()})
        else:
            for image_id in missing:
                try:
                    self._names[image_id] = project.image(image_id).file_name
                except KeyError:
                    pass
        return self._names

    def _row_changed(self, row: int) -> None:
        if self.queue is not None and 0 <= row < len(self.queue.items):
            self.queue.index = row
            self._show_current()

    def _show_current(self) -> None:
        p = self.queue.current if self.queue is not None else None
        if p is not None:
            self.go_to_image.emit(p.image_id)
        self._draw()

    def _draw(self) -> None:
        """The current proposal's overlay, only on its own image (never on another one shown)."""
        if self._scene is None:
            return
        p = self.queue.current if self.queue is not None else None
        if p is None or p.image_id != self._shown:
            if self._overlay is not None:
                self._overlay.set_visible(False)
            return
        if self._overlay is None:
            self._overlay = MaskItem(self._scene, 14)
        # from the RLE's box (strided past a few MP): never a full-image mask of a large image
        x0, y0, step, crop = annotation_crop(p)
        self._overlay.show_mask(crop, PROPOSAL_RGB, 90, 2.0, dashed=True)
        self._overlay.place(x0, y0, step, step)
        self._overlay.set_visible(True)

    def _order_changed(self, order: str) -> None:
        if self.queue is not None:
            self.queue.set_order(order)
            self.refresh()

    # ------------------------------------------------------------------------------ editing
    def _push(self, command: ReviewCommand | None, image_ids: set[int]) -> bool:
        if command is None:
            return False
        self.undo_stack.push(Undoable(command, self, image_ids))
        return True

    def edited(self, image_ids: set[int]) -> None:
        """After a command's do / undo: re-read the queue, tell the window which images changed."""
        self.refresh()
        for image_id in sorted(image_ids):
            self.annotations_changed.emit(image_id)

    def accept(self, category: str | None = None) -> bool:
        q = self.queue
        if q is None or q.current is None:
            return False
        return self._push(q.accept(category), {q.current.image_id})

    def reject(self) -> bool:
        q = self.queue
        if q is None or q.current is None:
            return False
        return self._push(q.reject(), set())

    def change_class(self, name: str) -> bool:
        q = self.queue
        return q is not None and self._push(q.change_class(name), set())

    def choose_class(self, number: int) -> bool:
        """Keys 1-9: the n-th class of `ReviewQueue.classes`."""
        if self.queue is None:
            return False
        names = self.class_names()
        return 1 <= number <= len(names) and self.change_class(names[number - 1])

    def class_names(self) -> list[str]:
        """What 1-9 pick: the classes typed for auto-label first, then the queue's."""
        if self.queue is None:
            return []
        return self.queue.classes(typed_classes(self.classes_edit.text())[0])

    def accept_above(self, score: float) -> bool:
        q = self.queue
        if q is None:
            return False
        command = q.accept_above(score)
        ids = {p.image_id for p in q.store.proposals() if p.score >= score}
        return self._push(command, ids)

    def _class_typed(self) -> None:
        name = self.class_edit.text()
        self.class_edit.clear()
        if self.change_class(name):
            self.list.setFocus()

    def handle_key(self, event) -> bool:
        """The review keys (`app.keys`, context `review`); True when the key was one of them."""
        name = ACTIONS.route(key_of(event), event.text(), "review")
        if name == "review.accept":
            return self.accept() or True
        if name == "review.reject":
            return self.reject() or True
        if name is not None and name.startswith("review.class"):
            return self.choose_class(int(name.removeprefix("review.class"))) or True
        if name == "review.leave":
            self.leave.emit()
            return True
        if name == TYPE:
            self.class_edit.setText(event.text())
            self.class_edit.setFocus()
            return True
        return False  # Up / Down and the list's own keys

    def focusInEvent(self, event) -> None:  # noqa: N802 - Qt naming
        """The keys work on the queue: focusing the panel focuses its list."""
        self.list.setFocus(event.reason())

    def _is_review_key(self, event) -> bool:
        """With the queue focused its keys are its own: Enter is not "accept mask", Backspace not
        "delete annotation" (the window's shortcuts must not take them)."""
        name = ACTIONS.route(key_of(event), event.text(), "review")
        return name == TYPE or (name is not None and name.startswith("review."))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt naming
        if watched in (self.class_edit, self.classes_edit):
            # Enter finishes the field (the window binds Enter to "accept mask" otherwise)
            enter = (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            if event.type() == QEvent.Type.ShortcutOverride and event.key() in enter:
                event.accept()
                return True
            return False
        if watched is self.list:
            if event.type() == QEvent.Type.ShortcutOverride and self._is_review_key(event):
                event.accept()
                return True
            if event.type() == QEvent.Type.KeyPress:
                return self.handle_key(event)
        return super().eventFilter(watched, event)

    # ---------------------------------------------------------------- auto-label and refine
    # The loop itself (next image, storing its answer, counts, yields) is `app.autolabel.ImageLoop`,
    # the one `annotator autolabel` runs; the panel sends its requests and shows its status.
    @property
    def status(self) -> BatchStatus | None:
        """The run's counts and status line."""
        return self.run.status if self.run is not None else None

    def start_autolabel(
        self,
        classes: str | None = None,
        settings: Any = None,
        threshold: float | None = None,
        top_k: int | None = None,
    ) -> bool:
        """Label every image of the project with the classes, one worker request per image;
        `threshold` and `top_k` default to the panel's fields (the CLI's defaults, 0.2 and 10)."""
        if classes is not None:
            self.classes_edit.setText(classes)
        if threshold is not None:
            self.threshold.setValue(threshold)
        if top_k is not None:
            self.top_k.setValue(top_k)
        threshold, top_k = self.threshold.value(), self.top_k.value()
        typed, problem = typed_classes(self.classes_edit.text())
        names = tuple(typed)
        q = self.queue
        if q is None or self.worker is None or not names or self._running:
            self.run_status.setText(
                problem or ("Open a folder and give classes" if not names else "")
            )
            return False
        params = AutolabelParams(names, q.store, settings, threshold, top_k)
        return self._begin(autolabel_loop(q.store, project_images(q.store.project), params))

    def start_refine(self, clip: bool = True) -> bool:
        """Masks for the project's box-only annotations not refined yet (each box is SAM's prompt),
        stored as pending proposals for review; one worker request per image."""
        q = self.queue
        if q is None or self.worker is None or self._running:
            return False
        todo = waiting_boxes(q.store)
        if not todo:
            self.run_status.setText("no box-only annotations to refine")
            return False
        return self._begin(refine_loop(q.store, todo, clip))

    def _begin(self, run: ImageLoop) -> bool:
        self.run, self._store = run, self.queue.store
        self._running = True
        self.run_status.setText(run.status.text())
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._send_next()
        return True

    def cancel_autolabel(self) -> None:
        """Stop after the image in progress (its result is still stored); refine runs too."""
        if self._running:
            self.run.cancel()
            self.run_status.setText(self.run.status.text())

    @property
    def running(self) -> bool:
        return self._running

    def _send_next(self) -> None:
        request = self.run.request()
        if request is None:
            self._finish()
            return
        self.worker.discover(request)

    def on_result(self, kind: str, image_id: int, request_id: int, result: Any) -> None:
        if not self._running:
            return
        same_project = self.queue is not None and self.queue.store is self._store
        yielded = self.run.yielded
        if not self.run.answer(kind, image_id, request_id, result, same_project):
            return
        if self.run.yielded != yielded:
            self._send_next()  # a click went first; this image again (the cancelled: stop)
            return
        self.run_status.setText(self.run.status.text())
        self.refresh()
        self._send_next()

    def on_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        if not self._running or not self.run.refused(kind, image_id, request_id, message):
            return
        self.run_status.setText(f"{self.run.status.text()}; skipped: {message}")
        self._send_next()

    def _finish(self) -> None:
        self._running = False
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.run.end()
        self.run_status.setText(self.run.status.text())
        self.refresh()


__all__ = ["ReviewPanel"]
