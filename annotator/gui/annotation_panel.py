"""The current image's annotations: colour, category, score and a visibility check box per row."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem

from annotator.gui.colors import category_rgb


@dataclass(frozen=True)
class AnnotationRow:
    ann_id: int
    category: str
    score: float
    area: int
    visible: bool = True
    author: str = ""  # "created by X at T; changed by Y at T'" (ADR 0011)


def _swatch(rgb: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(*rgb))
    return QIcon(pixmap)


class AnnotationPanel(QListWidget):
    """Few rows per image, so a QListWidget is enough; the check box toggles the overlay."""

    annotation_selected = Signal(object)  # annotation id or None
    visibility_changed = Signal(int, bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._quiet = False
        self.currentItemChanged.connect(self._current_changed)
        self.itemChanged.connect(self._item_changed)

    def set_annotations(self, rows: list[AnnotationRow], selected: int | None = None) -> None:
        """Replace all rows (a handful per image) and keep the selection."""
        self._quiet = True
        try:
            self.clear()
            for row in rows:
                text = f"{row.category}   {row.score:.2f}   ({row.area} px)"
                item = QListWidgetItem(_swatch(category_rgb(row.category)), text)
                item.setData(Qt.ItemDataRole.UserRole, row.ann_id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(
                    Qt.CheckState.Checked if row.visible else Qt.CheckState.Unchecked
                )
                tip = f"annotation {row.ann_id}: {row.category}"
                item.setToolTip(f"{tip}\n{row.author}" if row.author else tip)
                self.addItem(item)
                if row.ann_id == selected:
                    self.setCurrentItem(item)
        finally:
            self._quiet = False

    def ids(self) -> list[int]:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())]

    def select(self, ann_id: int | None) -> None:
        """Highlight a row without emitting (the window already knows)."""
        self._quiet = True
        try:
            self.setCurrentItem(None)
            for i in range(self.count()):
                if self.item(i).data(Qt.ItemDataRole.UserRole) == ann_id:
                    self.setCurrentItem(self.item(i))
        finally:
            self._quiet = False

    def _current_changed(self, current: QListWidgetItem | None, _previous) -> None:
        if self._quiet:
            return
        self.annotation_selected.emit(
            None if current is None else current.data(Qt.ItemDataRole.UserRole)
        )

    def _item_changed(self, item: QListWidgetItem) -> None:
        if self._quiet:
            return
        visible = item.checkState() == Qt.CheckState.Checked
        self.visibility_changed.emit(item.data(Qt.ItemDataRole.UserRole), visible)
