"""Two windows on one PostgreSQL project (ADR 0011): one claim per image, others' accepts show up
without a restart, and undo refuses to undo someone else's change."""

from __future__ import annotations

from tests.gui.conftest import click, open_window, wait_proposal


def test_two_windows_share_a_postgresql_project(
    qtbot, tmp_path, model_config, image_folder, pg_project_url, monkeypatch
):
    url = f"{pg_project_url}&images={image_folder}"
    monkeypatch.setenv("ANNOTATOR_USER", "alice")
    alice = open_window(qtbot, tmp_path / "a", model_config, url)
    monkeypatch.setenv("ANNOTATOR_USER", "bob")
    bob = open_window(qtbot, tmp_path / "b", model_config, url, wait_engine=False)
    first = alice.image_id
    assert bob.image_id == first
    # exactly one window has the image: bob is told who has it
    assert any("alice@" in e and "being edited by" in e for e in bob.errors)
    assert bob.project.claims() == {first: alice.project.holder}

    click(qtbot, alice, 140, 110)
    wait_proposal(qtbot, alice)
    alice.controller.accept()  # Enter (bob's window, opened last, has the keyboard)
    qtbot.waitUntil(lambda: len(alice.project.annotations(first)) == 1, timeout=60_000)
    (ann,) = alice.project.annotations(first)
    assert ann.created_by == "alice"
    # bob sees alice's accepted mask without a restart (the window polls the change feed)
    qtbot.waitUntil(lambda: bob.images.model_.rows[0].annotations == 1, timeout=60_000)
    qtbot.waitUntil(lambda: len(bob.canvas.masks) == 1, timeout=60_000)

    # alice moves on: the image is free; bob deletes her mask; alice's undo must not bring
    # back or remove anything of bob's doing
    alice.next_image()
    assert alice.image_id != first and bob.project.claims().get(first) is None
    bob.project.claim(first)
    bob.project.delete_annotation(ann.id)
    count = alice.undo_stack.count()
    alice.undo_stack.undo()
    assert any("deleted by someone else" in e for e in alice.errors)
    assert alice.project.annotations(first) == [] and alice.undo_stack.count() == count - 1
    alice.close()
    bob.close()
