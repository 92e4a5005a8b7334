"""Issue 22: the window's auto-label class field uses the one name rule (through
`app.review.typed_classes`): an invalid name is one line in the panel, and nothing runs."""

from __future__ import annotations

from annotator.store.proposals import ProposalStore


def test_invalid_class_name_is_one_line_in_the_panel(qtbot, window):
    panel = window.review
    assert not panel.start_autolabel("dog, ca\x07t", threshold=-1.0, top_k=2)
    text = panel.run_status.text()
    assert "classes: control character in name 'ca\\x07t'" in text and "\n" not in text
    assert not panel.running
    assert ProposalStore(window.project).summary()["images_done"] == 0
    assert all("\x07" not in c for c in panel.class_names())
