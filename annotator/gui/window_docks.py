"""The window's docks: images (left); annotations, labels, vocabulary, search, similar and review
(right); the tags toolbar; and the menu slots that raise a dock (find, similar, refine, compare).

A mixin of `MainWindow`; every method runs on the window.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QWidget

from annotator.gui.compare_view import CompareView
from annotator.gui.review_panel import ReviewPanel


class WindowDocks:
    """Builds the docks and raises them (a mixin of `MainWindow`)."""

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

    def show_vocabulary(self) -> None:
        """View ▸ Vocabulary editor (Ctrl+Shift+V): the dock with the names labels come from."""
        self.vocab_dock.show()
        self.vocab_dock.raise_()

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


__all__ = ["WindowDocks"]
