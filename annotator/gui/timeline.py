"""The timeline of a sequence (issue 25): a frame slider over a painted strip with one lane per
track (pending frames light, accepted frames solid, frames where the object was lost in red,
prompted frames marked), and the propagate controls. It renders `app.propagate.Timeline` and
sends what the user does back as signals; it holds no state of its own."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from annotator.app.propagate import DIRECTIONS, Timeline
from annotator.gui.colors import category_rgb

LANE = 16  # pixels per track lane
RULER = 14  # the frame ruler above the lanes


def track_rgb(object_id: int, category: str) -> tuple[int, int, int]:
    """A track's colour: its category's, so masks and lanes of one object match."""
    return category_rgb(f"{category}#{object_id}")


class TimelineStrip(QWidget):
    """Frames left to right, one lane per track; a click picks the frame (and the lane's track)."""

    frame_clicked = Signal(int)
    track_clicked = Signal(object)  # object id, or None (the ruler: a new object)

    def __init__(self, model: Timeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setMinimumHeight(RULER + 2 * LANE)
        self.setMouseTracking(False)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt naming
        return QSize(600, RULER + LANE * max(2, len(self.model.tracks)) + 4)

    def _x(self, frame: float) -> float:
        count = max(1, len(self.model.frames))
        return 4 + (self.width() - 8) * frame / count

    def frame_at(self, x: float) -> int:
        count = max(1, len(self.model.frames))
        frame = int((x - 4) / max(1.0, self.width() - 8) * count)
        return max(0, min(count - 1, frame))

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        m = self.model
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(40, 40, 44))
        count = len(m.frames)
        if not count:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "not a sequence")
            return
        p.setPen(QColor(150, 150, 150))
        step = max(1, count // 10)
        for f in range(0, count, step):
            x = self._x(f)
            p.drawLine(int(x), RULER - 4, int(x), RULER)
            p.drawText(int(x) + 2, RULER - 3, str(f))
        width = max(1.0, self._x(1) - self._x(0))
        for lane, t in enumerate(m.tracks):
            y = RULER + lane * LANE
            r, g, b = track_rgb(t.object_id, t.category)
            if t.object_id == m.selected:
                p.fillRect(QRectF(0, y, self.width(), LANE), QColor(80, 80, 90))
            for f in t.pending:
                p.fillRect(QRectF(self._x(f), y + 3, width, LANE - 6), QColor(r, g, b, 110))
            for f in t.accepted:
                p.fillRect(QRectF(self._x(f), y + 2, width, LANE - 4), QColor(r, g, b))
            for f in t.lost:
                p.fillRect(QRectF(self._x(f), y + 6, width, LANE - 12), QColor(230, 50, 50))
            p.setBrush(QColor(255, 255, 255))
            p.setPen(Qt.PenStyle.NoPen)
            for f in t.prompted:  # a small white triangle over each conditioning frame
                x = self._x(f) + width / 2
                p.drawPolygon(QPolygonF([QPointF(x - 4, y), QPointF(x + 4, y), QPointF(x, y + 6)]))
            p.setPen(QColor(230, 230, 230))
            p.drawText(4, y + LANE - 4, f"{t.object_id} {t.category}")
        pen = QPen(QColor(255, 220, 0), 2)
        p.setPen(pen)
        x = self._x(m.index) + width / 2
        p.drawLine(int(x), 0, int(x), self.height())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        position = event.position()
        self.frame_clicked.emit(self.frame_at(position.x()))
        lane = int((position.y() - RULER) // LANE)
        if position.y() < RULER:
            return
        tracks = self.model.tracks
        self.track_clicked.emit(tracks[lane].object_id if 0 <= lane < len(tracks) else None)


class TimelinePanel(QWidget):
    """Slider, strip and the propagate controls under the canvas."""

    frame_chosen = Signal(int)
    propagate = Signal()
    add_object = Signal()
    new_object = Signal()
    accept_track = Signal()

    def __init__(self, model: Timeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setMinimum(0)
        self.slider.valueChanged.connect(self._slid)
        self.frame_label = QLabel("")
        self.strip = TimelineStrip(model)
        self.strip.frame_clicked.connect(self.frame_chosen)
        self.strip.track_clicked.connect(model.select)
        self.direction = QComboBox()
        self.direction.addItems(DIRECTIONS)
        self.direction.currentTextChanged.connect(self._direction)
        self.propagate_button = QPushButton("Propagate")
        self.propagate_button.setToolTip("Track the clicked object(s) through the sequence")
        self.propagate_button.clicked.connect(self.propagate)
        self.add_button = QPushButton("Add object")
        self.add_button.setToolTip("Queue the clicked object; Propagate tracks all together")
        self.add_button.clicked.connect(self.add_object)
        self.new_button = QPushButton("New object")
        self.new_button.setToolTip("The next click is a new object (not a correction)")
        self.new_button.clicked.connect(lambda: model.select(None))
        self.accept_button = QPushButton("Accept track")
        self.accept_button.clicked.connect(self.accept_track)
        self.target = QLabel("")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #c60;")
        top = QHBoxLayout()
        top.addWidget(self.slider, 1)
        top.addWidget(self.frame_label)
        controls = QHBoxLayout()
        for w in (
            self.target,
            self.direction,
            self.propagate_button,
            self.add_button,
            self.new_button,
            self.accept_button,
        ):
            controls.addWidget(w)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(top)
        layout.addWidget(self.strip)
        layout.addLayout(controls)
        layout.addWidget(self.note)
        model.changed.connect(self.render)
        self.render()

    def _slid(self, value: int) -> None:
        if value != self.model.index:
            self.frame_chosen.emit(value)

    def _direction(self, text: str) -> None:
        self.model.direction = text

    def render(self) -> None:
        """Draw the model (after every change it reports)."""
        m = self.model
        count = len(m.frames)
        self.setEnabled(m.active)
        self.slider.blockSignals(True)
        self.slider.setMaximum(max(0, count - 1))
        self.slider.setValue(m.index)
        self.slider.blockSignals(False)
        self.frame_label.setText(f"frame {m.index} / {count - 1}" if count else "")
        queued = len(m.queued)
        selected = m.track(m.selected)
        if selected is not None:
            self.target.setText(f"click corrects: {selected.object_id} {selected.category}")
        else:
            self.target.setText(f"click adds object {m.next_object_id()}" if m.active else "")
        self.add_button.setText(f"Add object ({queued} queued)" if queued else "Add object")
        self.accept_button.setEnabled(selected is not None and bool(selected.pending))
        self.note.setText(m.note)
        self.note.setVisible(bool(m.note))
        self.strip.setMinimumHeight(RULER + LANE * max(2, len(m.tracks)) + 4)
        self.strip.update()
