"""The main window: image list (left), canvas (centre), annotations + suggestions + vocabulary (right),
menus, toolbar, status bar; wires the widgets, the worker thread and the controller together.

The state is the Qt-free `annotator.app.session.Session`; the window creates it, hands it (with the
worker and the undo stack) to the panels and renders its events. Folder opening, import and export
are long jobs (`annotator.app.longjob`) run by `LongJobRunner` off the GUI thread, with progress and
Cancel in the status bar.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QImage, QUndoStack
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QToolButton,
    QWidget,
)

from annotator.app.folder import OpenedFolder, open_folder_job, open_location
from annotator.app.keys import canvas_context
from annotator.app.longjob import LongJob, paused_gc
from annotator.app.progress import progress_text
from annotator.app.review_feed import ReviewFeed
from annotator.app.session import Session
from annotator.errors import AnnotatorError
from annotator.gui.annotation_panel import AnnotationPanel
from annotator.gui.canvas import Canvas, Tool
from annotator.gui.commands import on_refused_undo
from annotator.gui.compare_view import CompareView
from annotator.gui.controller import Controller
from annotator.gui.files import FileActions
from annotator.gui.first_run import FirstRunDialog, missing_weights, with_cached_weights
from annotator.gui.image_list import ImageList
from annotator.gui.keymap import bind
from annotator.gui.long_jobs import LongJobRunner
from annotator.gui.review_panel import ReviewPanel
from annotator.gui.search_panel import SearchPanel
from annotator.gui.settings import AppSettings, ModelConfig
from annotator.gui.similar_panel import SimilarPanel
from annotator.gui.suggestions import SuggestionPanel
from annotator.gui.tags_bar import TagsBar
from annotator.gui.undo_actions import step, undo_actions
from annotator.gui.vocab_editor import VocabularyEditor
from annotator.gui.worker import EngineWorker, ImageLoader
from annotator.vocab.vocabulary import Vocabulary

log = logging.getLogger(__name__)


class MainWindow(FileActions, QMainWindow):
    image_selected = Signal(int)  # image id chosen (its pixels are still loading)
    image_shown = Signal(int)  # image id now on the canvas with its annotations

    def __init__(
        self,
        settings: AppSettings,
        config: ModelConfig,
        cache_dir: str | None = None,
        worker: EngineWorker | None = None,
    ) -> None:
        super().__init__()
        self.settings, self.cache_dir = settings, cache_dir
        self.session = Session(config)
        self.setWindowTitle("annotator")
        self._image_req = 0
        self._job_start = 0.0
        self.review_feed: ReviewFeed | None = None  # the open project's proposals, polled
        self.after_open_status = ""  # said when the folder job that is running ends
        self._select_after: int | None = None  # select this object once its image is shown
        self._after_open: int | None = None  # row to show once a reopened folder is listed
        self._job_done: Callable[[Any], None] | None = None
        self._job_end: Callable[[], None] | None = None
        self.error_box: QMessageBox | None = None
        self.first_run: FirstRunDialog | None = None
        self.errors: list[str] = []  # every message shown, newest last (tests and the log read it)
        self.undo_stack = QUndoStack(self)
        self.session.vocabulary = self._initial_vocabulary()
        # The window owns the worker it makes (stopped in closeEvent, deleted with the window), so
        # no parentless QThread outlives the application object.
        self.worker = worker or EngineWorker(settings.prefetch_mb, parent=self)
        self.jobs = LongJobRunner(self)
        self.jobs.prepare_processes()
        self.canvas = Canvas(self)
        self.setCentralWidget(self.canvas)
        self.images = ImageList()
        self.annotations = AnnotationPanel()
        self.suggestions = SuggestionPanel()
        self.vocab_editor = VocabularyEditor(self.vocabulary)
        s, wk, undo = self.session, self.worker, self.undo_stack
        self.controller = Controller(
            s, wk, undo, self.canvas, self.suggestions, self.annotations, self
        )
        self.search = SearchPanel(s, wk, undo, self.canvas)
        self.similar = SimilarPanel(s, wk, undo)
        self.tags = TagsBar(s, wk, undo)
        self.compare_view: CompareView | None = None
        self._docks()
        self._status_bar()
        self._actions()
        self._connect()
        self._connect_session()
        self._connect_jobs()
        self._connect_worker()
        self._review_hooks()
        self.loader = ImageLoader(self)
        self.loader.loaded.connect(self._image_loaded)
        self.loader.load_failed.connect(self._image_failed)
        self.worker.start()
        self.update_completer()
        geometry = settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        state = settings.state()
        if state is not None:
            self.restoreState(state)
        self.load_models(config)
        # other annotators' accepted work (ADR 0011): poll the project's change feed
        self._change_token: int | None = None
        self._exemplars: Any = None  # app.exemplars.ProjectExemplars of the open project
        self._region_model_id = ""
        self.change_timer = QTimer(self)
        self.change_timer.setInterval(2000)
        self.change_timer.timeout.connect(self.poll_changes)
        self.change_timer.start()

    # ------------------------------------------------------------------ the session's state
    # Read-only views of the session for the window's own code, menus and tests.
    project = property(lambda self: self.session.project)
    folder = property(lambda self: self.session.folder)
    image_id = property(lambda self: self.session.image_id)
    _row = property(lambda self: self.session.row)
    engine_ready = property(lambda self: self.session.engine_ready)
    engine_info = property(lambda self: self.session.engine_info)
    current_image = property(lambda self: self.session.display_image)

    @property
    def config(self) -> ModelConfig:
        return self.session.config

    @config.setter
    def config(self, value: ModelConfig) -> None:
        self.session.config = value

    @property
    def vocabulary(self) -> Vocabulary:
        return self.session.vocabulary

    @vocabulary.setter
    def vocabulary(self, value: Vocabulary) -> None:
        self.session.vocabulary = value

    # ------------------------------------------------------------------ building
    def _dock(self, title: str, widget: QWidget, area, name: str) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _docks(self) -> None:
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self._dock("Images", self.images, left, "images")
        self._dock("Annotations", self.annotations, right, "annotations")
        self._dock("Labels", self.suggestions, right, "labels")
        self.vocab_dock = self._dock("Vocabulary", self.vocab_editor, right, "vocabulary")
        self.vocab_dock.hide()
        self.search_dock = self._dock("Search", self.search, right, "search")
        self.similar_dock = self._dock("Similar", self.similar, right, "similar")
        self.tabifyDockWidget(self.search_dock, self.similar_dock)
        self.search_dock.raise_()
        self.addToolBarBreak()
        self.tags_toolbar = self.addToolBar("Tags")
        self.tags_toolbar.setObjectName("tags")
        self.tags_toolbar.addWidget(self.tags)

    def _status_bar(self) -> None:
        bar = self.statusBar()
        self.encode_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(200)
        self.progress.setVisible(False)
        self.model_label = QLabel("no models")
        self.zoom_label = QLabel("")
        self.job_label = QLabel("")
        self.job_progress = QProgressBar()
        self.job_progress.setMaximumWidth(200)
        self.job_cancel = QToolButton()
        self.job_cancel.setText("Cancel")
        self.job_cancel.setToolTip("Stop this job; nothing it did is kept")
        self.job_cancel.clicked.connect(self.cancel_job)
        for widget in (self.job_label, self.job_progress, self.job_cancel):
            widget.setVisible(False)
        for widget in (
            self.job_label,
            self.job_progress,
            self.job_cancel,
            self.encode_label,
            self.progress,
            self.zoom_label,
            self.model_label,
        ):
            bar.addPermanentWidget(widget)

    def _actions(self) -> None:
        """Menus, toolbar and shortcuts, bound from the action registry (`app.keys`)."""
        c = self.controller
        bar = self.menuBar()
        menus = {name: bar.addMenu(f"&{name}") for name in ("File", "Edit", "View", "Find")}
        menus["Find"].setTitle("Fi&nd")
        menus["Tools"] = bar.addMenu("&Tools")
        self.toolbar = self.addToolBar("Tools")
        self.toolbar.setObjectName("tools")
        undo, redo = undo_actions(self, self.undo_stack, self.step)
        slots: dict[str, Any] = {
            "file.open": self.choose_folder,
            "file.import": self.import_dialog,
            "file.export": self.export_dialog,
            "file.settings": self.open_settings,
            "file.download": self.offer_downloads,
            "file.quit": self.close,
            "edit.undo": undo,
            "edit.redo": redo,
            "edit.accept": self._accept_key,
            "edit.clear": c.clear,
            "edit.delete": c.delete_selected,
            "edit.type": self.suggestions.start_typing,
            "view.previous": self.previous_image,
            "view.next": self.next_image,
            "view.previous_key": self.previous_image,
            "view.next_key": self.next_image,
            "view.fit": self.canvas.fit,
            "view.zoom_in": partial(self.canvas.zoom_by, 1.25),
            "view.zoom_out": partial(self.canvas.zoom_by, 0.8),
            "view.vocabulary": self.show_vocabulary,
            "find.text": self._start_search,
            "find.similar": self._find_similar,
            "find.tags": lambda: self.tags.seed(),
            "find.compare": self.open_compare,
            "tool.refine": lambda: self.refine_boxes(),
        }
        for n in range(1, 10):
            slots[f"edit.suggestion{n}"] = partial(c.pick_number, n)
        for tool in Tool:
            slots[f"tool.{tool.value}"] = partial(self.set_tool, tool)
        self.key_actions = bind(self, slots, menus)
        menus["View"].addSeparator()
        for dock in self.findChildren(QDockWidget):
            menus["View"].addAction(dock.toggleViewAction())
        menus["View"].addAction(self.tags_toolbar.toggleViewAction())
        group = QActionGroup(self)
        self.tool_actions: dict[Tool, QAction] = {}
        for tool in Tool:
            action = self.key_actions[f"tool.{tool.value}"]
            action.setCheckable(True)
            group.addAction(action)
            self.tool_actions[tool] = action
            self.toolbar.addAction(action)
        self.tool_actions[Tool.POINT].setChecked(True)
        self.toolbar.addSeparator()
        self.toolbar.addAction(undo)
        self.toolbar.addAction(redo)
        self.toolbar.addAction(self.key_actions["file.open"])

    def step(self, undone: bool) -> None:
        """Undo (`undone`) or redo one step, then show its image and select its object."""
        shown = step(self.undo_stack, undone)
        if shown is None:
            return
        if shown.image_id != self.image_id:
            self._select_after = shown.ann_id
            self.go_to_image_id(shown.image_id)
        elif shown.ann_id is not None and shown.ann_id in self.session.records:
            self.controller.select(shown.ann_id)
        self.show_status(f"{'Undone' if undone else 'Redone'}: {shown.text}", 4000)

    def show_vocabulary(self) -> None:
        """View ▸ Vocabulary editor (Ctrl+Shift+V): the dock with the names labels come from."""
        self.vocab_dock.show()
        self.vocab_dock.raise_()

    def _connect(self) -> None:
        c, canvas = self.controller, self.canvas
        canvas.accept_requested.connect(c.accept)
        canvas.cycle_requested.connect(c.cycle_candidate)
        canvas.shape_drawn.connect(c.shape_drawn)
        canvas.mask_edited.connect(c.mask_edited)
        canvas.annotation_picked.connect(c.select)
        canvas.text_typed.connect(self.suggestions.start_typing)
        canvas.key_context = lambda: canvas_context(self.session.pending is not None)
        self.suggestions.typing_cancelled.connect(self.canvas.setFocus)
        canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z:.0%}"))
        self.images.image_chosen.connect(self.go_to)
        self.annotations.annotation_selected.connect(c.select)
        self.annotations.visibility_changed.connect(c.set_visible)
        self.suggestions.label_chosen.connect(c.choose_label)
        self.suggestions.label_added.connect(c.add_label)
        self.vocab_editor.edit_requested.connect(c.edit_vocabulary)
        self.vocab_editor.import_requested.connect(self.import_vocabulary)
        self.vocab_editor.export_requested.connect(self.export_vocabulary)
        self.vocab_editor.restrict_toggled.connect(lambda _on: self.categories_changed())
        self.image_shown.connect(self.similar.image_shown)
        self.image_shown.connect(self.tags.request)
        self.tags.tag_clicked.connect(self._search_for)

    def _connect_session(self) -> None:
        events = self.session.events
        events.status.connect(self.show_status)
        events.error.connect(self.show_error)
        events.annotations.connect(self._annotations_changed)
        events.categories.connect(self.categories_changed)
        events.navigate.connect(self.go_to)
        events.image.connect(self.search.image_changed)
        events.vocabulary.connect(self._vocabulary_edited)
        events.vocabulary_settled.connect(self._send_vocabulary)

    def _connect_jobs(self) -> None:
        self.jobs.started.connect(self._job_started)
        self.jobs.progress.connect(self._job_progress)
        self.jobs.finished.connect(self._job_finished)
        self.jobs.failed.connect(self._job_failed)
        self.jobs.cancelled.connect(self._job_cancelled)

    def _connect_worker(self) -> None:
        wk = self.worker
        wk.engine_ready.connect(self._engine_ready)
        wk.engine_failed.connect(self._engine_failed)
        wk.engine_loading.connect(lambda name: self.model_label.setText(f"loading {name}…"))
        wk.progress.connect(self._progress)
        wk.encoded.connect(lambda image_id: self.images.model_.update(image_id, encoded=True))
        wk.encode_progress.connect(self._encode_progress)
        wk.proposal_ready.connect(self.controller.on_proposal)
        wk.labels_ready.connect(self.controller.on_labels)
        wk.vocabulary_ready.connect(
            lambda n: self.show_status(f"Suggestions now use {n} vocabulary entries", 4000)
        )
        wk.failed.connect(self._worker_failed)
        for panel in (self.search, self.similar, self.tags):
            wk.discovered.connect(panel.on_result)
            wk.failed.connect(panel.on_failed)
        wk.vocabulary_ready.connect(lambda _n: self.tags.request())

    def _review_hooks(self) -> None:
        """The auto-label review panel (issue 14): a dock, showing its proposal's image."""
        self.review = ReviewPanel(self.undo_stack, self.worker)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.review_dock = self._dock("Review", self.review, right, "review")
        self.tabifyDockWidget(self.search_dock, self.review_dock)
        self.search_dock.raise_()
        self.review.go_to_image.connect(self.go_to_image_id)
        self.review.leave.connect(self.canvas.setFocus)
        self.image_selected.connect(self.review.image_hidden)
        self.review.annotations_changed.connect(self.refresh_image)
        self.image_shown.connect(lambda i: self.review.image_shown(i, self.canvas.scene()))

    def refine_boxes(self) -> bool:
        """Tools ▸ Refine boxes into masks: the review panel runs it and lists the proposals."""
        self.review_dock.show()
        self.review_dock.raise_()
        started = self.review.start_refine()
        if not started:
            self.show_status(self.review.run_status.text() or "Open a folder first", 5000)
        return started

    def go_to_image_id(self, image_id: int) -> None:
        rows = self.images.model_.rows
        row = next((i for i, r in enumerate(rows) if r.image_id == image_id), None)
        if row is not None:
            self.go_to(row)

    # ------------------------------------------------------------------ models
    def load_models(self, config: ModelConfig) -> None:
        """Start loading in the worker, or say which files are missing (manual tools still work)."""
        config = with_cached_weights(config)  # files downloaded earlier (GUI or CLI) count
        self.config = config
        self.session.set_engine(False)
        missing = config.missing_files()
        if missing:
            text = "Missing model files: " + "; ".join(missing)
            self.model_label.setText(f"{text}. Manual tools only (File ▸ Download models…)")
            self.model_label.setToolTip("\n".join(missing))
            self.show_status(text + ". Rectangle and polygon tools still work.", 0)
            return
        problem = config.checkpoint_problem()  # a family mismatch: one line, not a traceback
        if problem is not None:
            self.model_label.setText("segmenter checkpoint refused: manual tools only")
            self.model_label.setToolTip(problem)
            self.show_error(f"Could not load the models: {problem}")
            return
        try:
            spec = config.to_spec(self.cache_dir)
        except AnnotatorError as error:  # a value the spec refuses (an unknown region head)
            self._engine_failed(str(error))
            return
        self.model_label.setText("loading models…")
        self.worker.load(spec)

    def offer_downloads(self) -> FirstRunDialog | None:
        """Open the first-run dialog for the missing default weights (non-modal); None if none are."""
        missing = missing_weights(self.config)
        if not missing:
            self.show_status("No model file is missing", 4000)
            return None
        if self.first_run is not None:
            self.first_run.close()
        self.first_run = FirstRunDialog(missing, self.config, self.settings, self)
        self.first_run.models_ready.connect(self.load_models)
        self.first_run.show()
        return self.first_run

    def _engine_ready(self, info: dict) -> None:
        self.session.set_engine(True, info)
        self._region_model_id = str(info.get("region_model_id", ""))
        self._load_exemplars()
        self.model_label.setText(f"{info['device']} · {info['sam']} · CLIP {info['clip']}")
        self.progress.setVisible(False)
        self.clear_status()
        self.categories_changed()
        # The vocabulary was edited before the models were ready.
        if len(self.vocabulary) != info.get("vocabulary", -1):
            self.worker.set_vocabulary(Vocabulary.loads(self.vocabulary.dumps()))
        self._send_order()
        if self.controller.annotate.has_prompts():
            self.controller.annotate.request_mask()
        if self.canvas.image_size() is not None:
            self.tags.request()

    def _engine_failed(self, message: str) -> None:
        self.session.set_engine(False)
        self.model_label.setText("models failed to load: manual tools only")
        self.show_error(f"Could not load the models: {message}")

    def _worker_failed(self, kind: str, image_id: int, request_id: int, message: str) -> None:
        self.controller.on_failed(kind, image_id, request_id, message)
        if kind == "encode":
            self.images.model_.update(image_id, failed=message)
        if kind in ("decode", "relabel") and image_id != self.image_id:
            return
        self.show_error(f"{kind} failed: {message}")

    def _progress(self, stage: str, done: int, total: int) -> None:
        if stage == "labels":  # masks already work; say how much of the vocabulary labels use
            self.vocab_editor.show_progress(done, total)
            self.progress.setFormat("labels from %v of %m names")
            self.progress.setMaximum(max(total, 1))
            self.progress.setValue(done)
            self.progress.setVisible(done < total)
            return
        if stage == "vocabulary":
            self.vocab_editor.show_progress(done, total)
        self.progress.setFormat(f"{stage} %v / %m")
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.progress.setVisible(done < total)

    def _encode_progress(self, done: int, total: int) -> None:
        self.encode_label.setText(f"encoded {self.images.model_.encoded_count()} / {total}")

    # ------------------------------------------------------------------ folder and images
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", self.settings.last_folder)
        if folder:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path | str, show_row: int | None = None) -> bool:
        """Open (or create) the folder's project in the background; its list and first image (or
        `show_row`) appear when the job ends. False when another long job is running. `folder`
        may be a project URL (postgresql://…?project=NAME): its images are in the folder the
        project records."""
        from annotator.store.backend import is_url

        self._after_open = show_row
        location = str(folder) if is_url(str(folder)) else Path(folder)
        return self.start_job(open_folder_job(location), self._folder_opened)

    def _folder_opened(self, opened: OpenedFolder) -> None:
        """The folder job's result: open its project here and show its images (the old project is
        closed)."""
        from annotator.store.backend import is_url

        rows = opened.image_rows if opened.image_rows is not None else []
        folder, unreadable = opened.folder, opened.unreadable
        try:
            project, folder = open_location(opened.location or folder)
        except AnnotatorError as error:
            self.show_error(str(error))
            return
        self.session.set_folder(project, folder, rows)
        self.undo_stack.clear()
        from annotator.app.review import ReviewQueue
        from annotator.store.proposals import ProposalStore

        self.review.set_queue(ReviewQueue(ProposalStore(project)), folder)
        self.review_feed = ReviewFeed(self.review.queue.store)
        self.worker.set_label_priority([c.name for c in project.categories()])
        self._load_exemplars()
        self._change_token = project.changes_since().token
        on_refused_undo(project, self.show_error)
        location = opened.location or str(folder)
        if not is_url(location):
            # Writing the settings file syncs it to disk: in its own event, not in this long one.
            QTimer.singleShot(0, partial(setattr, self.settings, "last_folder", str(folder)))
        self.setWindowTitle(f"annotator — {location}")
        with paused_gc():
            self.images.model_.set_rows(rows, opened.row_of)
        self.encode_label.setText(f"encoded 0 / {len(rows)}")
        self.categories_changed()
        row, self._after_open = self._after_open, None
        if rows:
            self.go_to(row if row is not None and 0 <= row < len(rows) else 0)
        else:
            self.show_status(f"No images in {folder}", 0)
        message, self.after_open_status = self.after_open_status, ""
        if message:  # an import's result, said again once its reload has shown the image
            self.show_status(message, 10000)
        if unreadable:  # say why files are missing from the list (each one is in self.errors)
            self.errors.extend(unreadable)
            count = "1 file" if len(unreadable) == 1 else f"{len(unreadable)} files"
            self.show_error(f"{count} could not be read and are not listed; {unreadable[0]}")

    # ------------------------------------------------------------------ long jobs
    def start_job(
        self,
        job: LongJob,
        on_done: Callable[[Any], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> bool:
        """Run `job` off the GUI thread (one at a time): `on_end()` runs however it ends, then
        `on_done(result)` if it succeeded. False (and a status message) while another job runs."""
        if self.jobs.busy():
            self.show_status(f"Wait for “{self.jobs.job.name}” to finish, or cancel it", 5000)
            return False
        self._job_done, self._job_end = on_done, on_end
        return self.jobs.start(job)

    def cancel_job(self) -> None:
        if self.jobs.busy():
            self.job_label.setText(f"{self.jobs.job.name}: cancelling…")
            self.jobs.cancel()

    def _job_started(self, name: str) -> None:
        self._job_start = time.monotonic()
        self.job_label.setText(name)
        self.job_progress.setRange(0, 0)  # busy until the first progress report
        for widget in (self.job_label, self.job_progress, self.job_cancel):
            widget.setVisible(True)

    def _job_progress(self, name: str, done: int, total: int, text: str) -> None:
        """The job's stage with its count, percentage and ETA ("writing YOLO: 40 / 100 (40%, ETA
        12 s)")."""
        count = progress_text(done, total, time.monotonic() - self._job_start)
        line = " ".join(part for part in (text, count) if part)
        self.job_label.setText(f"{name}: {line}" if line else name)
        self.job_progress.setRange(0, max(total, 0))
        if total:
            self.job_progress.setValue(done)

    def _job_finished(self, name: str, result: Any) -> None:
        self.cancel_text = None
        on_done = self._end_job()
        if on_done is not None:
            on_done(result)

    def _job_failed(self, name: str, message: str) -> None:
        self.cancel_text = None
        self._end_job()
        self.show_error(f"{name} failed: {message}")

    def _job_cancelled(self, name: str) -> None:
        text_of, self.cancel_text = self.cancel_text, None
        self._end_job()
        self.show_status(text_of() if text_of else f"{name}: cancelled, nothing was changed", 10000)

    def _end_job(self) -> Any:
        """Hide the job's status widgets, run its `on_end`; returns its `on_done`."""
        for widget in (self.job_label, self.job_progress, self.job_cancel):
            widget.setVisible(False)
        on_done, on_end = self._job_done, self._job_end
        self._job_done = self._job_end = None
        if on_end is not None:
            on_end()
        return on_done

    def image_path(self) -> str:
        return self.session.image_path()

    def go_to(self, row: int) -> None:
        rows = self.session.rows
        previous = self.image_id
        if not self.session.set_row(row):
            return
        if self.project is not None and previous is not None and previous != self.image_id:
            self.project.release(previous)  # a team project: others may take it now
        self._claim(self.image_id)
        self.images.select_row(row)
        self.image_selected.emit(self.image_id)
        self.canvas.clear_image()
        self.annotations.set_annotations([])
        self._image_req += 1
        self.loader.request(self.image_id, self._image_req, rows[row].path)
        self._send_order()
        self.show_status(f"{rows[row].name} ({row + 1} / {len(rows)})", 3000)

    def _claim(self, image_id: int) -> None:
        """Take the image for editing; when someone else has it, say so (the store refuses their
        edits, so nothing can be saved here until they move on)."""
        try:
            self.project.claim(image_id)
        except (AnnotatorError, KeyError) as error:
            self.show_error(f"{error} (read-only here)")

    def poll_changes(self) -> None:
        """Show other annotators' accepted work: refresh the images their changes touched."""
        if self.project is None or self._change_token is None:
            return
        try:
            changes = self.project.changes_since(self._change_token)
        except AnnotatorError as error:
            self.show_status(str(error), 4000)
            return
        self._change_token = changes.token
        feed = self.review_feed
        if feed is not None and feed.poll() and not self.review.running:
            self.review.refresh(show=False)  # another process's proposals (annotator autolabel)
        known = {row.image_id for row in self.images.model_.rows}
        for image_id in sorted(changes.images & known):
            self.refresh_image(image_id)

    def _send_order(self) -> None:
        rows = self.images.model_.rows
        if self._row is None or not self.engine_ready:
            return
        ordered = rows[self._row :] + rows[: self._row]
        self.worker.set_order([(r.image_id, r.path) for r in ordered])

    def next_image(self) -> None:
        if self._row is not None:
            self.go_to(min(self._row + 1, len(self.images.model_.rows) - 1))

    def previous_image(self) -> None:
        if self._row is not None:
            self.go_to(max(self._row - 1, 0))

    def _image_loaded(self, image_id: int, request_id: int, image: QImage) -> None:
        if image_id != self.image_id or request_id != self._image_req:
            return
        self.canvas.set_image(image)
        self.session.display_image = image
        self.controller.refresh(image_id)
        select, self._select_after = self._select_after, None
        if select is not None and select in self.session.records:
            self.controller.select(select)  # the object an undo / redo on this image acted on
        focus = QApplication.focusWidget()
        if focus is None or not (self.review.isAncestorOf(focus) or isinstance(focus, QLineEdit)):
            self.canvas.setFocus()  # but the review queue and a text field keep their keys
        self.image_shown.emit(image_id)

    def _image_failed(self, image_id: int, request_id: int, message: str) -> None:
        if request_id == self._image_req:
            self.images.model_.update(image_id, failed=message)
            self.show_error(message)

    def refresh_image(self, image_id: int) -> None:
        """The store changed for `image_id`: the session tells every view (list, canvas), and the
        exemplars follow (an accept, relabel, delete or undo changes the next suggestion)."""
        exemplars = getattr(self, "_exemplars", None)
        if exemplars is not None:
            try:
                exemplars.refresh_image(image_id)
            except AnnotatorError as error:
                self.show_status(str(error), 4000)
        self.session.annotations_changed(image_id)

    def _load_exemplars(self) -> None:
        """The open project's accepted objects as exemplars for the engine's region model."""
        from annotator.app.exemplars import ProjectExemplars

        model_id = getattr(self, "_region_model_id", "")
        self._exemplars = None
        if self.project is not None and model_id:
            try:
                self._exemplars = ProjectExemplars(self.project, model_id)
            except AnnotatorError as error:
                self.show_status(f"exemplars not loaded: {error}", 4000)
        self.worker.set_exemplars(None if self._exemplars is None else self._exemplars.exemplars)

    def _annotations_changed(self, image_id: int) -> None:
        if self.project is not None:
            count = len(self.project.annotations(image_id))
            self.images.model_.update(image_id, annotations=count)

    def _vocabulary_edited(self) -> None:
        self.vocab_editor.refresh()
        self.update_completer()

    def _send_vocabulary(self) -> None:
        """The edits have paused: save the file and re-embed the texts."""
        self.save_vocabulary()
        if self.engine_ready:
            self.worker.set_vocabulary(Vocabulary.loads(self.vocabulary.dumps()))

    def categories_changed(self) -> None:
        """Keep the worker's 'project labels only' restriction and the completer in step."""
        names = None
        if self.vocab_editor.restrict.isChecked() and self.project is not None:
            names = [c.name for c in self.project.categories()]
        self.controller.annotate.set_restrict(names)  # clicks: sent with each request
        self.worker.set_restrict(names)  # discovery jobs
        self.update_completer()

    # ------------------------------------------------------------------ discovery
    def _start_search(self) -> None:
        self.search_dock.show()
        self.search_dock.raise_()
        self.search.start()

    def _search_for(self, text: str) -> None:
        self.search_dock.show()
        self.search_dock.raise_()
        self.search.search(text)

    def _find_similar(self) -> None:
        self.similar_dock.show()
        self.similar_dock.raise_()
        self.similar.find()

    def open_compare(self) -> CompareView:
        """The side-by-side view on the current image, starting from the canvas's clicks."""
        if self.compare_view is None:
            self.compare_view = CompareView(self.session, self.worker, self)
        self.compare_view.open_current()
        return self.compare_view

    # ------------------------------------------------------------------ small helpers
    def _accept_key(self) -> None:
        """Enter accepts the mask, except in a text field where it finishes the text."""
        focus = QApplication.focusWidget()
        if focus is self.suggestions.edit:
            self.suggestions.enter()
        elif focus is self.search.edit:
            self.search.search()
        elif not isinstance(focus, QLineEdit | QAbstractSpinBox | QComboBox):
            self.controller.accept()

    def set_tool(self, tool: Tool) -> None:
        self.canvas.set_tool(tool)
        self.tool_actions[tool].setChecked(True)
        self.canvas.setFocus()

    def show_status(self, text: str, timeout_ms: int = 4000) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def clear_status(self) -> None:
        self.statusBar().clearMessage()

    def show_error(self, text: str) -> None:
        """A non-modal message: the window keeps working behind it."""
        log.warning("%s", text)
        self.errors.append(text)
        self.show_status(text, 10000)
        if self.error_box is None:
            self.error_box = QMessageBox(QMessageBox.Icon.Warning, "annotator", text, parent=self)
            self.error_box.setWindowModality(Qt.WindowModality.NonModal)
            self.error_box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_box.setText(text)
        self.error_box.show()

    def update_completer(self) -> None:
        names = self.vocabulary.names()
        if self.project is not None:
            extra = [
                c.name for c in self.project.categories() if self.vocabulary.match(c.name) is None
            ]
            names = names + extra
        self.suggestions.set_names(names)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.hide()  # the worker may need a moment to finish an encode: do not look frozen
        self.jobs.close()
        self.jobs.blockSignals(True)
        self.loader.close()
        self.worker.stop()
        self.worker.blockSignals(True)
        self.session.engine_ready = False
        self.change_timer.stop()
        self.session.close()
        super().closeEvent(event)
