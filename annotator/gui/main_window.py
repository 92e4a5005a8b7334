"""The main window: image list (left), canvas (centre), annotations + suggestions + vocabulary (right),
menus, toolbar, status bar; wires the widgets, the worker thread and the controller together.

The state is the Qt-free `annotator.app.session.Session`; the window creates it, hands it (with the
worker and the undo stack) to the panels and renders its events. Folder opening, import and export
are long jobs (`annotator.app.longjob`) run by `LongJobRunner` off the GUI thread, with progress and
Cancel in the status bar.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QUndoStack
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QLineEdit,
    QMainWindow,
    QMessageBox,
)

from annotator.app.change_feed import ChangeFeed
from annotator.app.exemplars import ExemplarKeeper
from annotator.app.keys import canvas_context
from annotator.app.session import Session
from annotator.app.vocabulary import Vocabulary
from annotator.gui import large_display
from annotator.gui.annotation_panel import AnnotationPanel
from annotator.gui.canvas import Canvas, Tool
from annotator.gui.compare_view import CompareView
from annotator.gui.controller import Controller
from annotator.gui.files import FileActions
from annotator.gui.first_run import FirstRunDialog
from annotator.gui.image_list import ImageList
from annotator.gui.image_loader import ImageLoader
from annotator.gui.keymap import bind
from annotator.gui.long_jobs import LongJobRunner
from annotator.gui.search_panel import SearchPanel
from annotator.gui.sequence_view import SequenceView
from annotator.gui.settings import AppSettings, ModelConfig
from annotator.gui.similar_panel import SimilarPanel
from annotator.gui.suggestions import SuggestionPanel
from annotator.gui.tags_bar import TagsBar
from annotator.gui.undo_actions import step, undo_actions
from annotator.gui.vocab_editor import VocabularyEditor
from annotator.gui.window_docks import WindowDocks
from annotator.gui.window_images import WindowImages
from annotator.gui.window_models import WindowModels
from annotator.gui.window_status import WindowStatus
from annotator.gui.worker import EngineWorker


class MainWindow(FileActions, WindowStatus, WindowDocks, WindowModels, WindowImages, QMainWindow):
    """Builds the window and wires its parts; what each part does lives in its mixin (status bar,
    docks, models, images and folders, file actions) and, below Qt, in `annotator.app`."""

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
        # before the views subscribe: the exemplars are current when an edit's views react
        self.exemplars = ExemplarKeeper(self.session, self.worker)
        self.change_feed = ChangeFeed(self.session)  # other processes' work, polled
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
        # issue 25: the sequence timeline dock and its actions (Propagate, frames): gui/sequence_view
        self.timeline = SequenceView(self)
        slots.update(self.timeline.slots())
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

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.hide()  # the worker may need a moment to finish an encode: do not look frozen
        self.jobs.close()
        self.jobs.blockSignals(True)
        self.loader.close()
        self.timeline.close()  # issue 25: its frame loader thread
        large_display.close_for(self)  # issue 26: its tile thread
        self.worker.stop()
        self.worker.blockSignals(True)
        self.session.engine_ready = False
        self.change_timer.stop()
        self.session.close()
        super().closeEvent(event)
