"""The folder's images with their status: a list model (thousands of rows stay cheap) and its view."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView

from annotator.app.session import ImageRow

__all__ = ["ImageList", "ImageListModel", "ImageRow"]


def _dot(rgb: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(*rgb))
    painter.setPen(QColor(20, 20, 20))
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pixmap)


class ImageListModel(QAbstractListModel):
    """One row per image: name, then `[n]` annotations; the dot says encoded (green) or not (grey)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[ImageRow] = []
        self._row_of: dict[int, int] = {}
        self._icons: dict[str, QIcon] = {}

    def set_rows(self, rows: list[ImageRow], row_of: dict[int, int] | None = None) -> None:
        """Show `rows`; `row_of` (image id -> row), when given, was built off the GUI thread."""
        self.beginResetModel()
        self.rows = rows
        self._row_of = row_of if row_of is not None else {r.image_id: i for i, r in enumerate(rows)}
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def row_of(self, image_id: int) -> int | None:
        return self._row_of.get(image_id)

    def _icon(self, key: str) -> QIcon:
        if key not in self._icons:
            rgb = {"encoded": (60, 200, 90), "failed": (220, 60, 60), "pending": (150, 150, 150)}
            self._icons[key] = _dot(rgb[key])
        return self._icons[key]

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{row.name}  [{row.annotations}]" if row.annotations else row.name
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon("failed" if row.failed else "encoded" if row.encoded else "pending")
        if role == Qt.ItemDataRole.ToolTipRole:
            state = row.failed or ("encoded" if row.encoded else "not encoded yet")
            return f"{row.path}\n{row.annotations} annotation(s), {state}"
        if role == Qt.ItemDataRole.UserRole:
            return row.image_id
        return None

    def update(self, image_id: int, **changes) -> None:
        """Change some fields of one row and repaint it."""
        i = self._row_of.get(image_id)
        if i is None:
            return
        for key, value in changes.items():
            setattr(self.rows[i], key, value)
        index = self.index(i)
        self.dataChanged.emit(index, index)

    def encoded_count(self) -> int:
        return sum(r.encoded for r in self.rows)


class ImageList(QListView):
    """The left panel; emits the chosen row (the window decides what switching means)."""

    image_chosen = Signal(int)  # row

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model_ = ImageListModel(self)
        self.setModel(self.model_)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformItemSizes(True)
        # Lay out rows in batches between events: a folder of 20,000 images does not freeze it.
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(500)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.selectionModel().currentChanged.connect(self._current_changed)
        self._quiet = False

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid() and not self._quiet:
            self.image_chosen.emit(current.row())

    def select_row(self, row: int) -> None:
        """Move the highlight without emitting `image_chosen` (the window already switched)."""
        self._quiet = True
        try:
            self.setCurrentIndex(self.model_.index(row))
            self.scrollTo(self.model_.index(row))
        finally:
            self._quiet = False
