"""The keyboard model (issue 24): one registry, one meaning per key per context, and the key tables
in docs/keys.md and the README generated from it. No Qt."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from annotator.app import keys
from annotator.app.keys import ACTIONS, CONTEXTS, TYPE, Registry

ROOT = Path(__file__).resolve().parents[2]


def test_docs_keys_md_is_the_registry():
    assert (ROOT / "docs" / "keys.md").read_text(encoding="utf-8") == keys.doc(), (
        "run: python -m annotator.app.keys --write"
    )


def test_readme_table_is_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert keys.readme_table(readme) == readme, "run: python -m annotator.app.keys --write"
    start = readme.index(keys.README_BEGIN)
    table = readme[start : readme.index(keys.README_END)]
    assert table.strip().removeprefix(keys.README_BEGIN).strip() == keys.markdown().strip()
    assert "| 1 … 5 | take label suggestion N" in table  # the panel shows five, not nine


def test_one_meaning_per_key_per_context():
    for context in CONTEXTS:
        seen: dict[str, str] = {}
        for action in ACTIONS.in_context(context):
            for key in action.keys:
                assert keys.normalize(key) not in seen, (context, key, seen.get(key))
                seen[keys.normalize(key)] = action.name
    # a window shortcut (a QAction) never has two meanings: canvas and window keys are disjoint
    window_keys: dict[str, str] = {}
    for action in ACTIONS:
        if action.widget:
            continue
        for key in action.keys:
            k = keys.normalize(key)
            assert window_keys.get(k, action.name) == action.name or (
                ACTIONS[window_keys[k]].title == action.title
            ), (k, window_keys[k], action.name)
            window_keys[k] = action.name


def test_registering_a_key_twice_in_a_context_is_refused():
    r = Registry()
    r.register("a", "A", "first", ["X"], ("canvas",))
    with pytest.raises(ValueError, match="both"):
        r.register("b", "B", "second", ["X"], ("canvas",))
    with pytest.raises(ValueError, match="twice"):
        r.register("a", "A", "again", ["Y"], ("canvas",))
    r.register("c", "C", "elsewhere", ["X"], ("review",))  # another context: fine


def test_letters_type_while_a_mask_waits_and_are_tools_when_nothing_waits():
    assert keys.canvas_context(True) == "waiting" and keys.canvas_context(False) == "canvas"
    for letter in string.ascii_lowercase:
        key = letter.upper()
        assert ACTIONS.route(key, letter, "waiting") == TYPE
        assert ACTIONS.route(f"Shift+{key}", key, "waiting") == TYPE
    for word in ("dog", "bench", "airplane", "horse"):
        assert all(ACTIONS.route(ch.upper(), ch, "waiting") == TYPE for ch in word)
    assert ACTIONS.route("D", "d", "canvas") == "view.next_key"
    assert ACTIONS.route("O", "o", "canvas") == "tool.polygon"
    assert ACTIONS.route("X", "x", "canvas") is None  # an unbound letter does nothing
    # Enter accepts, Esc cancels, F2 opens the field; Ctrl keys work everywhere
    assert ACTIONS.route("Return", "\r", "waiting") == "edit.accept"
    assert ACTIONS.route("Enter", "\r", "waiting") == "edit.accept"  # keypad Enter
    assert ACTIONS.route("Esc", "\x1b", "waiting") == "edit.clear"
    assert ACTIONS.route("F2", "", "waiting") == "edit.type"
    assert ACTIONS.route("3", "3", "waiting") == "edit.suggestion3"
    assert ACTIONS.route("Ctrl+Z", "", "waiting") == "edit.undo"
    assert ACTIONS.route("Ctrl+Z", "", "label") == "edit.undo"


def test_label_field_keys():
    assert ACTIONS.route("Return", "\r", "label") == "label.accept"
    assert ACTIONS.route("Esc", "\x1b", "label") == "label.cancel"
    assert ACTIONS.route("D", "d", "label") == TYPE
    assert ACTIONS.route("1", "1", "label") == TYPE
    assert ACTIONS.route("PgDown", "", "label") is None  # the field's own (no image change)


def test_review_keys_never_fall_through():
    assert ACTIONS.route("Return", "\r", "review") == "review.accept"
    assert ACTIONS.route("Backspace", "\x08", "review") == "review.reject"
    assert ACTIONS.route("Delete", "\x7f", "review") == "review.reject"  # not "delete annotation"
    assert ACTIONS.route("9", "9", "review") == "review.class9"
    assert ACTIONS.route("H", "h", "review") == TYPE
    assert ACTIONS.route("Esc", "\x1b", "review") == "review.leave"
    for action in ACTIONS.in_context("review"):
        assert action.widget == "review queue"
    assert ACTIONS.route("Ctrl+Shift+Z", "", "review") == "edit.redo"


def test_every_action_is_documented_once():
    names = [a.name for a in ACTIONS]
    assert len(names) == len(set(names)) == len(ACTIONS)
    for action in ACTIONS:
        assert action.description and action.title
        assert set(action.contexts) <= CONTEXTS.keys()
