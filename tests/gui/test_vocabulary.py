"""Vocabulary editing in the window: search, edits through the Qt model, undo, re-embedding, restriction."""

from __future__ import annotations

from PySide6.QtCore import Qt

from annotator.gui.vocab_editor import parse_synonyms
from annotator.vocab.vocabulary import Entry, Vocabulary
from tests.gui.conftest import click, key, wait_proposal
from tests.timing import record


def test_parse_synonyms():
    assert parse_synonyms(" a,  b  c ,, d ") == ("a", "b c", "d")
    assert parse_synonyms("") == ()


def test_search_filters_instantly_over_the_default_vocabulary(qtbot):
    import time

    from annotator.gui.vocab_editor import VocabularyEditor

    editor = VocabularyEditor(Vocabulary.default())
    qtbot.addWidget(editor)
    total = editor.model.rowCount()
    assert total > 20_000
    started = time.perf_counter()
    editor.search.setText("retriever")
    elapsed = time.perf_counter() - started
    names = [editor.proxy.index(i, 0).data() for i in range(editor.proxy.rowCount())]
    assert 0 < len(names) < 100 and any("retriever" in n.lower() for n in names)
    record("vocabulary editor filter", seconds=elapsed, entries=total, bound_was=0.25)
    assert editor.count.text().startswith(f"{len(names)} of {total}")


def test_edit_then_suggestions_use_the_new_name(qtbot, window):
    editor, vocab = window.vocab_editor, window.vocabulary
    before = vocab.names()
    # Leave four entries (remove the rest through the editor's own signals), then add a new name.
    for name in before[4:]:
        row = editor.model._names.index(name)
        editor.table.selectRow(editor.proxy.mapFromSource(editor.model.index(row, 0)).row())
        editor._remove()
    assert vocab.names() == before[:4]
    window.controller.edit_vocabulary(None, Entry("zebra crossing", ("crosswalk",)))
    # Rename through the table model, the way a double-click edit does.
    row = editor.model._names.index(before[0])
    assert editor.model.setData(editor.model.index(row, 0), "hound")
    assert "hound" in vocab and before[0] not in vocab
    with qtbot.waitSignal(window.worker.vocabulary_ready, timeout=60_000) as ready:
        pass
    assert ready.args == [5]
    saved = Vocabulary.load(window.vocabulary_file())
    assert saved.names() == vocab.names() and saved.get("zebra crossing").synonyms == ("crosswalk",)
    click(qtbot, window, 140, 110)
    pending = wait_proposal(qtbot, window)
    names = {n for n, _ in pending.labels}
    assert names == {"hound", *before[1:4], "zebra crossing"}
    # Undo the rename: the old name is back, for suggestions too.
    key(qtbot, window, Qt.Key.Key_Escape)
    window.undo_stack.undo()
    assert before[0] in vocab and "hound" not in vocab
    with qtbot.waitSignal(window.worker.vocabulary_ready, timeout=60_000):
        pass
    click(qtbot, window, 140, 110)
    pending = wait_proposal(qtbot, window)
    assert before[0] in {n for n, _ in pending.labels}


def test_unknown_typed_label_is_added_and_project_labels_only(qtbot, window):
    click(qtbot, window, 140, 110)
    wait_proposal(qtbot, window)
    window.suggestions.start_typing("red square")
    assert window.suggestions.add_button.isVisible()
    qtbot.keyClick(window.suggestions.edit, Qt.Key.Key_Return)
    (record,) = window.project.annotations(window.image_id)
    assert record.category == "red square" and "red square" in window.vocabulary
    # Only the project's labels: suggestions for a new mask are all "red square".
    window.vocab_editor.restrict.setChecked(True)
    with qtbot.waitSignal(window.worker.vocabulary_ready, timeout=60_000):
        pass
    click(qtbot, window, 60, 200)
    pending = wait_proposal(qtbot, window)
    assert [n for n, _ in pending.labels] == ["red square"]
    # One undo removes the annotation and the new vocabulary entry together.
    key(qtbot, window, Qt.Key.Key_Escape)
    window.undo_stack.undo()
    assert window.project.annotations(window.image_id) == []
    assert "red square" not in window.vocabulary


def test_typing_on_the_canvas_opens_the_completer(qtbot, window):
    key(qtbot, window, Qt.Key.Key_C)  # nothing waits for a label: a letter types nothing
    assert window.suggestions.edit.text() == ""
    click(qtbot, window, 140, 110)
    wait_proposal(qtbot, window)
    key(qtbot, window, Qt.Key.Key_C)  # a mask waits: the letter starts its label (docs/keys.md)
    edit = window.suggestions.edit
    assert edit.hasFocus() and edit.text() == "c"
    qtbot.keyClicks(edit, "at")
    completer = window.suggestions.completer
    matches = [
        completer.completionModel().index(i, 0).data() for i in range(completer.completionCount())
    ]
    assert matches == ["cat"]
