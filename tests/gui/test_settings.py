"""Settings: QSettings round trips, command-line precedence, the dialog's values, colours; the
segmenter families (old SAM-only settings, folders, a family that does not fit its checkpoint)."""

from __future__ import annotations

from argparse import Namespace
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog

from annotator.gui.colors import category_rgb
from annotator.gui.settings import AppSettings, ModelConfig, SettingsDialog, merge_args


def test_settings_round_trip(tmp_path):
    settings = AppSettings(tmp_path / "s.ini")
    cfg = ModelConfig(
        segmenter="sam2",
        checkpoint="/m/sam2.1-tiny",
        clip_model="ViT-B-32",
        device="cpu",
        vocabulary="coco",
    )
    settings.set_model_config(cfg)
    settings.last_folder = "/data/photos"
    settings.prefetch_mb = 256
    again = AppSettings(tmp_path / "s.ini")
    assert again.model_config() == cfg
    assert again.last_folder == "/data/photos" and again.prefetch_mb == 256


def test_command_line_wins_over_settings():
    stored = ModelConfig(segmenter="sam2", checkpoint="/stored", clip_model="RN50", device="cuda")
    args = Namespace(sam_checkpoint=Path("/cli.pth"), clip_model=None, device="cpu", vocabulary="")
    merged = merge_args(stored, args)
    assert (merged.segmenter, merged.checkpoint) == ("sam", "/cli.pth")  # = --segmenter sam
    assert merged.clip_model == "RN50" and merged.device == "cpu"
    assert stored.checkpoint == "/stored"  # the stored value is not modified
    # --checkpoint alone: the checkpoint says its own family (the stored one may not fit it)
    merged = merge_args(stored, Namespace(checkpoint=Path("/cli_folder"), segmenter=None))
    assert (merged.segmenter, merged.checkpoint) == ("", "/cli_folder")
    merged = merge_args(stored, Namespace(checkpoint=Path("/e"), segmenter="edgetam"))
    assert (merged.segmenter, merged.checkpoint) == ("edgetam", "/e")


def test_missing_files_are_named(tmp_path):
    present = tmp_path / "sam.pth"
    present.write_bytes(b"x")
    assert ModelConfig().missing_files() == ["segmenter checkpoint (not configured)"]
    cfg = ModelConfig(checkpoint=str(present), clip_weights=str(tmp_path / "nope.bin"))
    assert cfg.missing_files() == [f"CLIP weights {tmp_path / 'nope.bin'}"]
    folder = tmp_path / "sam2_folder"  # a transformers model is a folder: present, not missing
    folder.mkdir()
    assert ModelConfig(segmenter="sam2", checkpoint=str(folder)).missing_files() == []
    gone = tmp_path / "gone"
    assert ModelConfig(checkpoint=str(gone)).missing_files() == [f"segmenter checkpoint {gone}"]


def test_dialog_values(qtbot):
    cfg = ModelConfig(checkpoint="/a.pth", region_head="crop", device="cpu")
    dialog = SettingsDialog(cfg, 512)
    qtbot.addWidget(dialog)
    assert dialog.segmenter.currentText() == "Default for this device"
    dialog._edits["clip_model"].setText("  ViT-B-16 ")
    values, budget = dialog.values()
    assert values == ModelConfig(
        checkpoint="/a.pth", clip_model="ViT-B-16", region_head="crop", device="cpu"
    )
    assert budget == 512
    families = [dialog.segmenter.itemData(i) for i in range(dialog.segmenter.count())]
    assert families == ["", "sam", "sam2", "edgetam", "sam_hq"]
    dialog.segmenter.setCurrentIndex(families.index("edgetam"))
    assert dialog.values()[0].segmenter == "edgetam"
    assert SettingsDialog(ModelConfig(segmenter="sam_hq"), 512).segmenter.currentData() == "sam_hq"


def test_category_colours_are_stable_and_distinct():
    assert category_rgb("dog") == category_rgb("dog")
    colours = {category_rgb(n) for n in ("dog", "cat", "car", "person", "tree", "boat")}
    assert len(colours) == 6


# ------------------------------------------------------------------------ segmenter families
def test_settings_of_older_versions_keep_their_sam_checkpoint(tmp_path, engine_args):
    """Before the families, the settings held `models/sam_checkpoint` only: the same file loads."""
    sam = str(engine_args["sam_checkpoint"])
    path = tmp_path / "old.ini"
    path.write_text(f"[models]\nsam_checkpoint={sam}\nclip_model=RN50\ndevice=cpu\n")
    cfg = AppSettings(path).model_config()
    assert (cfg.segmenter, cfg.checkpoint, cfg.clip_model) == ("sam", sam, "RN50")
    spec = cfg.to_spec()
    assert (spec.segmenter, spec.checkpoint) == ("sam", Path(sam))
    assert cfg.missing_files() == [] and cfg.checkpoint_problem() is None
    # saved again (the dialog's OK): the same model, and an older version still finds its key
    AppSettings(path).set_model_config(cfg)
    assert AppSettings(path).model_config() == cfg
    assert f"sam_checkpoint={sam}" in path.read_text()


def test_a_cleared_or_folder_checkpoint_is_not_read_back_from_the_old_key(tmp_path, engine_args):
    path = tmp_path / "old.ini"
    path.write_text(f"[models]\nsam_checkpoint={engine_args['sam_checkpoint']}\n")
    settings = AppSettings(path)
    settings.set_model_config(ModelConfig())  # back to the device's default
    assert settings.model_config() == ModelConfig()
    settings.set_model_config(ModelConfig(segmenter="sam2", checkpoint="/models/sam2.1-tiny"))
    assert AppSettings(path).model_config().checkpoint == "/models/sam2.1-tiny"
    assert "sam_checkpoint" not in path.read_text()


@pytest.fixture(scope="module")
def sam2_folder(tmp_path_factory) -> Path:
    from tests import tiny_hf

    folder = tmp_path_factory.mktemp("tiny_sam2")
    tiny_hf.save("sam2", folder, seed=1)  # seed 0's best candidate is empty at every click
    return folder


def test_a_checkpoint_of_another_family_is_one_line(sam2_folder, engine_args):
    sam = str(engine_args["sam_checkpoint"])
    assert ModelConfig(segmenter="sam2", checkpoint=str(sam2_folder)).checkpoint_problem() is None
    assert ModelConfig(checkpoint=str(sam2_folder)).checkpoint_problem() is None  # detected
    assert ModelConfig(segmenter="sam", checkpoint=sam).checkpoint_problem() is None
    wrong = ModelConfig(segmenter="sam", checkpoint=str(sam2_folder)).checkpoint_problem()
    assert wrong is not None and "is a sam2 checkpoint, not sam" in wrong and "\n" not in wrong
    reverse = ModelConfig(segmenter="sam2", checkpoint=sam).checkpoint_problem()
    assert reverse is not None and "is a sam checkpoint, not sam2" in reverse
    assert "unknown segmenter" in ModelConfig(segmenter="sam9", checkpoint=sam).checkpoint_problem()


def test_dialog_refuses_a_mismatch_with_one_line_and_takes_a_folder(
    qtbot, sam2_folder, monkeypatch
):
    dialog = SettingsDialog(ModelConfig(device="cpu"), 512)
    qtbot.addWidget(dialog)
    dialog.show()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(sam2_folder))
    dialog.checkpoint_folder.click()
    assert dialog._edits["checkpoint"].text() == str(sam2_folder)
    dialog.segmenter.setCurrentIndex(dialog.segmenter.findData("sam"))
    dialog.accept()
    assert dialog.isVisible() and dialog.result() == 0  # not accepted
    assert dialog.error.isVisible() and "is a sam2 checkpoint" in dialog.error.text()
    assert "\n" not in dialog.error.text()
    dialog.segmenter.setCurrentIndex(dialog.segmenter.findData("sam2"))
    dialog.accept()
    assert not dialog.isVisible() and dialog.result() == 1 and not dialog.error.isVisible()
    assert dialog.values()[0].to_spec().checkpoint == sam2_folder


def test_picking_a_safetensors_file_means_its_folder(qtbot, sam2_folder, monkeypatch):
    dialog = SettingsDialog(ModelConfig(), 512)
    qtbot.addWidget(dialog)
    picked = (str(sam2_folder / "model.safetensors"), "")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: picked)
    dialog.checkpoint_file.click()
    assert dialog._edits["checkpoint"].text() == str(sam2_folder)


def test_window_with_a_sam2_folder_gives_a_mask(
    qtbot, tmp_path, model_config, image_folder, sam2_folder
):
    from tests.gui.conftest import click, open_window, wait_proposal

    config = replace(model_config, segmenter="sam2", checkpoint=str(sam2_folder))
    window = open_window(qtbot, tmp_path, config, image_folder)
    assert sam2_folder.name in window.model_label.text()
    assert window.engine_info["sam"] == sam2_folder.name
    assert window.worker._engine.sam.family == "sam2"
    click(qtbot, window, 140, 110)
    proposal = wait_proposal(qtbot, window)
    assert proposal.mask.shape == (240, 320) and window.errors == []
    # the very mask the SAM 2 model gives for that click (random weights: its shape is arbitrary)
    from annotator.engine import build_engine

    engine = build_engine(config.to_spec(str(tmp_path / "cache2")), build_index=False)
    (x, y, positive), *_ = proposal.prompts["points"]
    image = sorted(image_folder.glob("*.png"))[0]
    expected = engine.segment(engine.embed(image), [(x, y, positive)]).mask
    assert 0 < expected.sum() < expected.size and np.array_equal(proposal.mask, expected)


def test_window_with_a_mismatched_family_says_so_and_manual_tools_work(
    qtbot, tmp_path, model_config, image_folder, sam2_folder
):
    from PySide6.QtCore import Qt

    from tests.gui.conftest import key, open_window, view_pos

    config = replace(model_config, segmenter="sam", checkpoint=str(sam2_folder))
    window = open_window(qtbot, tmp_path, config, image_folder, wait_engine=False)
    assert not window.engine_ready
    (message,) = window.errors
    assert "is a sam2 checkpoint, not sam" in message and "\n" not in message
    assert "manual tools only" in window.model_label.text()
    key(qtbot, window, Qt.Key.Key_R)  # the rectangle tool still makes an annotation
    viewport = window.canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=view_pos(window, 50, 40))
    qtbot.mouseMove(viewport, view_pos(window, 120, 100))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=view_pos(window, 120, 100))
    assert window.controller.pending is not None and window.controller.pending.mask[70, 85]
    key(qtbot, window, Qt.Key.Key_Return)  # no model, no label: asks for one
    qtbot.keyClicks(window.suggestions.edit, "bicycle")
    qtbot.keyClick(window.suggestions.edit, Qt.Key.Key_Return)
    (record,) = window.project.annotations(window.image_id)
    assert record.category == "bicycle" and not window.engine_ready
