"""Label suggestions for the current mask (keys 1-5) and a completer over the whole vocabulary.

22k names filter instantly: the completer works on a QStringListModel with substring matching, and no
widget per name ever exists.
"""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt, Signal
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

from annotator.gui.colors import category_rgb


class SuggestionPanel(QWidget):
    """Top-5 labels with scores; typing a name picks any vocabulary entry or adds a new one."""

    label_chosen = Signal(str)  # a vocabulary name the user picked
    label_added = Signal(str)  # a new name to add to the vocabulary, then pick

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.title = QLabel("Suggestions")
        self.list = QListWidget()
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.list.itemClicked.connect(self._clicked)
        self.edit = QLineEdit()
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

    def start_typing(self, text: str = "") -> None:
        self.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.edit.setText(text)
        if text:
            self.completer.setCompletionPrefix(text)
            self.completer.complete()

    def _clicked(self, item: QListWidgetItem) -> None:
        self.label_chosen.emit(item.data(Qt.ItemDataRole.UserRole))

    def _completed(self, text: str) -> None:
        name = self.canonical(text)
        if name is not None:
            self.edit.clear()
            self.label_chosen.emit(name)

    def enter(self) -> None:
        """Use the typed text: a known name is chosen, an unknown one is added."""
        text = " ".join(self.edit.text().split())
        if not text:
            return
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
