"""Label suggestions for the current mask (keys 1-5) and a completer over the whole vocabulary.

22k names filter instantly: the completer works on a QStringListModel with substring matching, and no
widget per name ever exists.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotator.app.keys import ACTIONS
from annotator.gui.colors import category_rgb
from annotator.gui.keymap import key_of


class LabelEdit(QLineEdit):
    """The label field: Enter accepts, Esc cancels the typing (the `label` key context). Esc is
    taken here, not by the window's "clear prompts", and also while the completer's popup is open
    (the completer hands keys to the field first), so one Esc always clears the text."""

    cancelled = Signal()
    left = Signal()  # the focus went elsewhere (not to the completer's popup)

    def focusOutEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().focusOutEvent(event)
        if event.reason() != Qt.FocusReason.PopupFocusReason:
            self.left.emit()

    def event(self, event) -> bool:  # noqa: D401 - Qt override
        if event.type() == QEvent.Type.ShortcutOverride and ACTIONS.route(
            key_of(event), event.text(), "label"
        ) in ("label.accept", "label.cancel", "edit.type"):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt naming
        name = ACTIONS.route(key_of(event), event.text(), "label")
        if name == "label.cancel":
            self.clear()
            if self.completer() is not None:
                self.completer().popup().hide()
            event.accept()
            self.cancelled.emit()
            return
        if name == "edit.type":
            self.selectAll()
            event.accept()
            return
        super().keyPressEvent(event)


class SuggestionPanel(QWidget):
    """Top-5 labels with scores; typing a name picks any vocabulary entry or adds a new one."""

    label_chosen = Signal(str)  # a vocabulary name the user picked
    label_added = Signal(str)  # a new name to add to the vocabulary, then pick
    typing_cancelled = Signal()  # Esc in the label field: the canvas takes the keys again

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.title = QLabel("Suggestions")
        self.list = QListWidget()
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.list.itemClicked.connect(self._clicked)
        self.edit = LabelEdit()
        self.edit.cancelled.connect(self.cancel_typing)
        self.edit.left.connect(lambda: setattr(self, "typing", False))
        self.edit.setPlaceholderText("type a label… (F2)")
        self.edit.setClearButtonEnabled(True)
        self._names = QStringListModel(self)
        self._lower: dict[str, str] = {}
        self.completer = QCompleter(self._names, self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.setMaxVisibleItems(15)
        self.edit.setCompleter(self.completer)
        self.completer.activated.connect(self._completed)
        self.edit.returnPressed.connect(self.enter)
        self.edit.textChanged.connect(self._text_changed)
        self.add_button = QPushButton("Add")
        self.add_button.setVisible(False)
        self.add_button.clicked.connect(self.enter)
        row = QHBoxLayout()
        row.addWidget(self.edit, 1)
        row.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        self.labels: list[tuple[str, float]] = []
        self.typing = False  # the field was opened by F2 or a letter and not finished yet

    def set_names(self, names: list[str]) -> None:
        """The whole vocabulary (and project categories) for the completer."""
        self._names.setStringList(names)
        self._lower = {n.lower(): n for n in names}

    def canonical(self, text: str) -> str | None:
        """The known name that `text` spells, ignoring case and surrounding spaces."""
        return self._lower.get(text.strip().lower())

    def set_suggestions(
        self,
        labels: list[tuple[str, float]],
        title: str = "Suggestions",
        sources: list[str] | None = None,
    ) -> None:
        """Show up to five labels; `sources` says per label why it is suggested ('text',
        'exemplars' — the project's own accepted objects — or 'both')."""
        self.labels = list(labels[:5])
        self.title.setText(title)
        self.list.clear()
        for i, (name, score) in enumerate(self.labels, start=1):
            source = sources[i - 1] if sources is not None and i <= len(sources) else "text"
            why = _WHY.get(source, "")
            item = QListWidgetItem(f"{i}   {name}   {score:.0%}{why}")
            item.setToolTip(_TIPS.get(source, ""))
            r, g, b = category_rgb(name)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setForeground(Qt.GlobalColor.white)
            item.setBackground(_dim(r, g, b))
            self.list.addItem(item)

    def pick(self, number: int) -> str | None:
        """Name behind number key 1-5, if that many suggestions exist."""
        if 1 <= number <= len(self.labels):
            return self.labels[number - 1][0]
        return None

    def start_typing(self, text: str | None = None) -> None:
        """Open the label field. A letter (typed while a mask waits) starts the text, or goes on
        with it while the field is open; None (F2) puts the best suggestion in, selected, so
        Enter takes it and typing replaces it. Old text never stays in the field."""
        if text is None:
            best = self.labels[0][0] if self.labels else ""
            self.typing = True
            self.edit.setText(best)
            self.edit.selectAll()
            self.edit.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        if self.typing:
            self.edit.insert(text)
        else:
            self.edit.setText(text)
        self.typing = True
        self.edit.setFocus(Qt.FocusReason.OtherFocusReason)
        if text:
            self.completer.setCompletionPrefix(self.edit.text())
            self.completer.complete()

    def cancel_typing(self) -> None:
        """Esc in the field: no text stays; the shape still waits (a second Esc on the canvas
        discards it)."""
        self.typing = False
        self.edit.clear()
        self.typing_cancelled.emit()

    def _clicked(self, item: QListWidgetItem) -> None:
        self.label_chosen.emit(item.data(Qt.ItemDataRole.UserRole))

    def _completed(self, text: str) -> None:
        name = self.canonical(text)
        if name is not None:
            self.typing = False
            self.edit.clear()
            self.label_chosen.emit(name)

    def enter(self) -> None:
        """Use the typed text: a known name is chosen, an unknown one is added."""
        text = " ".join(self.edit.text().split())
        if not text:
            return
        self.typing = False
        self.edit.clear()
        self.completer.popup().hide()
        name = self.canonical(text)
        if name is not None:
            self.label_chosen.emit(name)
        else:
            self.label_added.emit(text)

    def _text_changed(self, text: str) -> None:
        text = text.strip()
        unknown = bool(text) and self.canonical(text) is None
        self.add_button.setVisible(unknown)
        if unknown:
            self.add_button.setText(f"Add “{text}”")


def _dim(r: int, g: int, b: int):
    from PySide6.QtGui import QColor

    return QColor(int(r * 0.55), int(g * 0.55), int(b * 0.55))


_WHY = {"exemplars": "   · your objects", "both": "   · text + your objects"}
_TIPS = {
    "text": "suggested by the name's text embedding",
    "exemplars": "suggested because it looks like objects you accepted under this name",
    "both": "the name's text and objects you accepted under it agree",
}
