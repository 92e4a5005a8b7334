"""The settings dialog's precision choice: shown, edited, stored and turned into the spec."""

from __future__ import annotations

from annotator.gui.settings import ModelConfig, SettingsDialog


def test_dialog_offers_the_precisions_and_the_spec_gets_the_choice(qtbot):
    dialog = SettingsDialog(ModelConfig(device="cpu"), 512)
    qtbot.addWidget(dialog)
    items = [dialog.precision.itemText(i) for i in range(dialog.precision.count())]
    assert items == ["auto", "fp32", "bf16", "int8"]
    assert dialog.precision.currentText() == "auto"
    dialog.precision.setCurrentText("bf16")
    config = dialog.values()[0]
    assert config.precision == "bf16" and config.to_spec().precision == "bf16"
    assert ModelConfig().to_spec().precision == "auto"
    # a value this version does not know (settings edited by hand) shows as auto
    assert SettingsDialog(ModelConfig(precision="fp8"), 512).precision.currentText() == "auto"
