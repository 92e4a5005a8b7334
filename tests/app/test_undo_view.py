"""What an undo or redo shows (issue 24): the step's image, its object if it still exists. No Qt."""

from __future__ import annotations

import pytest

from annotator.app.undo_view import CHANGES, CREATES, REMOVES, Shown, first_shown, shown_after


def test_an_accept_undone_shows_its_image_with_nothing_selected_and_redone_selects_it():
    assert shown_after(CREATES, 7, 42, undone=True) == Shown(7, None)
    assert shown_after(CREATES, 7, 42, undone=False) == Shown(7, 42)


def test_a_delete_undone_selects_the_restored_object():
    assert shown_after(REMOVES, 3, 9, undone=True) == Shown(3, 9)
    assert shown_after(REMOVES, 3, 9, undone=False) == Shown(3, None)


def test_a_change_selects_the_object_both_ways():
    assert shown_after(CHANGES, 3, 9, undone=True) == shown_after(CHANGES, 3, 9, undone=False)


def test_no_image_no_view_and_unknown_kinds_are_refused():
    assert shown_after(CHANGES, None, None, undone=True) is None
    with pytest.raises(ValueError):
        shown_after("renames", 1, 1, undone=True)


def test_a_macro_shows_its_first_image_step():
    assert first_shown([None, Shown(2, 5), Shown(4, 1)]) == Shown(2, 5)
    assert first_shown([None, None]) is None
