"""Settings: QSettings round trips, command-line precedence, the dialog's values, colours."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from annotator.gui.colors import category_rgb
from annotator.gui.settings import AppSettings, ModelConfig, SettingsDialog, merge_args


def test_settings_round_trip(tmp_path):
    settings = AppSettings(tmp_path / "s.ini")
    cfg = ModelConfig(
        sam_checkpoint="/m/sam.pth", clip_model="ViT-B-32", device="cpu", vocabulary="coco"
    )
    settings.set_model_config(cfg)
    settings.last_folder = "/data/photos"
    settings.prefetch_mb = 256
    again = AppSettings(tmp_path / "s.ini")
    assert again.model_config() == cfg
    assert again.last_folder == "/data/photos" and again.prefetch_mb == 256


def test_command_line_wins_over_settings():
    stored = ModelConfig(sam_checkpoint="/stored.pth", clip_model="RN50", device="cuda")
    args = Namespace(sam_checkpoint=Path("/cli.pth"), clip_model=None, device="cpu", vocabulary="")
    merged = merge_args(stored, args)
    assert (
        merged.sam_checkpoint == "/cli.pth"
        and merged.clip_model == "RN50"
        and merged.device == "cpu"
    )
    assert stored.sam_checkpoint == "/stored.pth"  # the stored value is not modified


def test_missing_files_are_named(tmp_path):
    present = tmp_path / "sam.pth"
    present.write_bytes(b"x")
    assert ModelConfig().missing_files() == ["SAM checkpoint (not configured)"]
    cfg = ModelConfig(sam_checkpoint=str(present), clip_weights=str(tmp_path / "nope.bin"))
    assert cfg.missing_files() == [f"CLIP weights {tmp_path / 'nope.bin'}"]


def test_dialog_values(qtbot):
    cfg = ModelConfig(sam_checkpoint="/a.pth", region_head="crop", device="cpu")
    dialog = SettingsDialog(cfg, 512)
    qtbot.addWidget(dialog)
    dialog._edits["clip_model"].setText("  ViT-B-16 ")
    values, budget = dialog.values()
    assert values == ModelConfig(
        sam_checkpoint="/a.pth", clip_model="ViT-B-16", region_head="crop", device="cpu"
    )
    assert budget == 512


def test_category_colours_are_stable_and_distinct():
    assert category_rgb("dog") == category_rgb("dog")
    colours = {category_rgb(n) for n in ("dog", "cat", "car", "person", "tree", "boat")}
    assert len(colours) == 6
