"""A first start with an unencoded vocabulary: the window gives masks at once and labels as the text
index grows (the index builds on its own thread, the project's categories first)."""

from __future__ import annotations

import time

from tests.gui.conftest import click, open_window, wait_proposal


def test_a_mask_comes_before_the_vocabulary_is_encoded(qtbot, tmp_path, model_config, image_folder):
    big = tmp_path / "big.txt"
    big.write_text("".join(f"thing number {i}, item {i}\n" for i in range(6000)), encoding="utf-8")
    model_config.vocabulary = str(big)
    events: list[tuple[str, float]] = []
    window = open_window(qtbot, tmp_path, model_config, image_folder, wait_engine=False)
    window.worker.vocabulary_ready.connect(lambda n: events.append(("labels complete", n)))
    qtbot.waitUntil(lambda: window.engine_ready, timeout=60_000)
    start = time.perf_counter()
    click(qtbot, window, 140, 110)
    first = wait_proposal(qtbot, window, labelled=False)
    events.append(("mask", time.perf_counter() - start))
    assert first.mask.shape == (240, 320)
    assert events[0][0] == "mask", events  # the mask did not wait for the 12,000 texts
    assert window.progress.format() == "labels from %v of %m names"  # the window says so
    assert window.progress.maximum() == 6000
    # the labels complete (a wait, not a bound: 12,000 texts on a loaded 2-core machine take long)
    qtbot.waitUntil(window.worker.labels_complete, timeout=600_000)
    click(qtbot, window, 150, 120)
    later = wait_proposal(qtbot, window, first)
    assert len(later.labels) == 5 and all(n.startswith("thing number") for n, _ in later.labels)


def test_the_mask_does_not_wait_for_the_clip_half_and_enter_keeps_it(
    qtbot, tmp_path, model_config, image_folder, monkeypatch
):
    """A click on an image whose CLIP half does not exist yet: the mask comes from the segmenter
    half alone, "labels follow"; Enter then saves it with its best label once that exists, even
    after the user has moved to the next image."""
    import threading

    from PySide6.QtCore import Qt

    from annotator.models.region import MaskPoolingHead
    from annotator.models.sam import SamModel
    from tests.gui.conftest import key

    sam_gate, clip_gate = threading.Event(), threading.Event()
    real_encode, real_prepare = SamModel.encode, MaskPoolingHead.prepare

    def gated_encode(self, image):
        assert sam_gate.wait(30)
        return real_encode(self, image)

    def gated_prepare(self, image):
        assert clip_gate.wait(30)
        return real_prepare(self, image)

    monkeypatch.setattr(SamModel, "encode", gated_encode)
    monkeypatch.setattr(MaskPoolingHead, "prepare", gated_prepare)
    window = open_window(qtbot, tmp_path, model_config, image_folder, wait_engine=False)
    qtbot.waitUntil(lambda: window.engine_ready, timeout=60_000)
    qtbot.waitUntil(window.worker.labels_complete, timeout=60_000)
    first_image = window.image_id
    click(qtbot, window, 140, 110)  # the worker is inside the first image's segmenter encode
    sam_gate.set()
    proposal = wait_proposal(qtbot, window, labelled=False).proposal
    assert proposal.labels_pending and proposal.labels == [] and proposal.mask.any()
    assert "labels follow" in window.suggestions.title.text()
    assert not clip_gate.is_set()  # the mask really came before the CLIP half
    key(qtbot, window, Qt.Key.Key_Return)
    assert window.project.annotations(first_image) == []  # no label yet: nothing saved so far
    key(qtbot, window, Qt.Key.Key_D)
    assert window.image_id != first_image
    clip_gate.set()
    qtbot.waitUntil(lambda: len(window.project.annotations(first_image)) == 1, timeout=60_000)
    (saved,) = window.project.annotations(first_image)
    assert saved.category  # the best label of the mask, computed once the CLIP half existed
    assert window.project.annotations(window.image_id) == []
    assert window.error_box is None or not window.error_box.isVisible()
