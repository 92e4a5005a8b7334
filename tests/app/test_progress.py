"""Status is the truth (issue 24): percentages, ETA, and a cancelled batch never says finished."""

from __future__ import annotations

from annotator.app.progress import BatchStatus, eta_text, progress_text


def test_progress_text_has_a_percentage_and_an_eta():
    assert progress_text(40, 100, 8.0) == "40 / 100 (40%, ETA 12 s)"
    assert progress_text(0, 100, 3.0) == "0 / 100 (0%)"
    assert progress_text(100, 100, 50.0) == "100 / 100 (100%)"
    assert progress_text(5, 0, 1.0) == "5"
    assert eta_text(30) == "30 s" and eta_text(600) == "10 min" and eta_text(7800) == "2 h 10 min"


def test_a_cancelled_batch_says_what_it_did_even_when_a_result_comes_after():
    clock = iter([0.0, 10.0, 20.0]).__next__
    status = BatchStatus("auto-label", 10, clock)
    for _ in range(3):
        status.step()
    assert status.text() == "auto-label: 3 / 10 (30%, ETA 23 s)"
    status.cancel()
    status.step()  # the image in progress when Cancel was pressed: its result is kept
    status.end()
    assert status.text() == "auto-label: cancelled after 4 of 10 images (run again to continue)"
    assert "finished" not in status.text()


def test_a_finished_batch_counts_skipped_images():
    status = BatchStatus("refine boxes", 3)
    status.step()
    status.step(skipped=True)
    status.step()
    status.end()
    assert status.text() == "refine boxes finished: 3 images, 1 skipped"


def test_import_summary_counts_and_says_when_everything_was_a_duplicate():
    from annotator.app.progress import import_summary

    line = import_summary("export.json", {"annotations_added": 0, "skipped_duplicate": 12})
    assert line.startswith("Nothing imported from export.json: all 12 annotation(s) are already")
    line = import_summary(
        "d.json",
        {"annotations_added": 3, "boxes_added": 1, "images_added": 2, "skipped_duplicate": 4},
    )
    assert line == "Imported 4 annotation(s) from d.json (2 new image(s); 4 duplicate(s) skipped)"


def test_a_cancelled_export_says_what_it_left(tmp_path):
    import os
    import time

    from annotator.app.progress import cancelled_export_text

    out = tmp_path / "yolo"
    (out / "labels").mkdir(parents=True)
    old = out / "labels" / "old.txt"
    old.write_text("kept from before")
    before = time.time() - 3600
    os.utime(old, (before, before))
    since = time.time() - 1
    assert cancelled_export_text("Exporting YOLO", out, since) == (
        "Exporting YOLO: cancelled, nothing was changed"
    )
    (out / "labels" / "a.txt").write_text("0 0.5 0.5 0.1 0.1")
    (out / "data.yaml").write_text("names: [dog]")
    text = cancelled_export_text("Exporting YOLO", out, since)
    assert "nothing was changed" not in text and "2 files" in text and "incomplete" in text
    assert cancelled_export_text("x", tmp_path / "absent.json", since).endswith(
        "nothing was changed"
    )
