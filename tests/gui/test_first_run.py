"""First start without weights (issue 6): the dialog against a local HTTP server, never the internet.

The registry entry of the default SAM checkpoint is replaced by one that points at a server on
127.0.0.1 serving the tiny test checkpoint, with its real size and sha256 (as tests/models/test_weights.py
fakes registry entries), so a finished download really loads in the window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog, QPushButton

from annotator.app import model_files
from annotator.gui.first_run import FirstRunDialog, missing_weights, with_cached_weights
from annotator.gui.settings import AppSettings, ModelConfig
from annotator.models import weights
from tests.file_server import FileServer
from tests.gui.conftest import click, open_window, wait_proposal


@pytest.fixture
def payload(engine_args) -> bytes:
    return Path(engine_args["sam_checkpoint"]).read_bytes()


@pytest.fixture
def server(payload) -> Iterator[FileServer]:
    # The tiny checkpoint is smaller than one download chunk: a 3 MiB file for the cancel test.
    s = FileServer(
        {"/sam.pth": payload, "/big.bin": bytes(range(256)) * (3 * weights.CHUNK // 256)}
    )
    yield s
    s.close()


@pytest.fixture
def fake_sam(server, payload, tmp_path, monkeypatch) -> weights.KnownWeights:
    """The default SAM entry, pointing at the local server; the weights cache in tmp_path."""
    monkeypatch.setenv("ANNOTATOR_CACHE", str(tmp_path / "annotator-cache"))
    entry = weights.KnownWeights(
        name=weights.DEFAULT_SAM,
        kind="sam",
        url=f"{server.url}/sam.pth",
        filename="tiny_sam_download.pth",
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        description="the tiny test SAM",
    )
    monkeypatch.setitem(weights.KNOWN, weights.DEFAULT_SAM, entry)
    return entry


@pytest.fixture
def no_sam(model_config) -> ModelConfig:
    """The tiny CLIP configured, no SAM checkpoint: only SAM is missing."""
    return replace(model_config, segmenter="", checkpoint="")


def _cancel_button(dialog) -> QPushButton:
    (button,) = dialog.progress_dialog.findChildren(QPushButton)
    return button


def test_window_names_the_missing_file_and_a_download_loads_the_models(
    qtbot, tmp_path, no_sam, fake_sam, payload, image_folder
):
    window = open_window(qtbot, tmp_path, no_sam, image_folder, wait_engine=False)
    assert not window.engine_ready
    assert "segmenter checkpoint (not configured)" in window.model_label.text()
    assert "Download models" in window.model_label.text()
    dialog = window.offer_downloads()
    # CLIP is configured; any one segmenter is enough: the CPU default first, SAM 1 among the others
    assert list(dialog.missing)[0] == "sam2.1_hiera_tiny" and weights.DEFAULT_SAM in dialog.missing
    assert [k.kind for k in dialog.missing.values()].count("clip") == 0
    assert dialog.status[weights.DEFAULT_SAM].text() == "missing"
    with qtbot.waitSignal(dialog.models_ready, timeout=60_000) as ready:
        dialog.download_buttons[weights.DEFAULT_SAM].click()
        assert dialog.thread is not None and dialog.progress_dialog.isVisible()
    assert dialog.last_progress == (len(payload), len(payload))  # 100 %
    target = weights.cached_path(weights.DEFAULT_SAM)
    assert target.read_bytes() == payload and not dialog.isVisible()
    assert (ready.args[0].segmenter, ready.args[0].checkpoint) == ("sam", str(target))
    assert window.settings.model_config().checkpoint == str(target)  # remembered
    qtbot.waitUntil(lambda: window.engine_ready, timeout=60_000)
    qtbot.waitUntil(lambda: dialog.thread is None)
    click(qtbot, window, 140, 110)
    assert wait_proposal(qtbot, window).mask.shape == (240, 320)


def test_cancel_keeps_the_part_file_and_the_next_download_resumes(
    qtbot, tmp_path, settings_file, server, fake_sam, no_sam, monkeypatch
):
    big = server.files["/big.bin"]
    entry = replace(
        fake_sam,
        url=f"{server.url}/big.bin",
        filename="big.bin",
        size=len(big),
        sha256=hashlib.sha256(big).hexdigest(),
    )
    monkeypatch.setitem(weights.KNOWN, weights.DEFAULT_SAM, entry)
    server.delay = 0.01  # about half a second for the 3 MiB
    dialog = FirstRunDialog([entry], no_sam, settings_file)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.download_buttons[entry.name].click()
    qtbot.waitUntil(lambda: dialog.last_progress[0] >= weights.CHUNK, timeout=60_000)
    assert dialog.last_progress[1] == len(big)
    assert (
        "MB" in dialog.progress_dialog.labelText() and " / " in dialog.progress_dialog.labelText()
    )
    _cancel_button(dialog).click()
    qtbot.waitUntil(lambda: dialog.thread is None, timeout=60_000)
    part = weights.cache_dir() / "big.bin.part"
    kept = part.stat().st_size
    assert 0 < kept < len(big) and kept % weights.CHUNK == 0
    assert not (weights.cache_dir() / "big.bin").exists()
    status = dialog.status[entry.name].text()
    assert "cancelled" in status and "resumes" in status
    assert dialog.download_buttons[entry.name].text() == "Resume"
    assert dialog.download_buttons[entry.name].isEnabled()

    server.delay = 0.0
    with qtbot.waitSignal(dialog.models_ready, timeout=60_000):
        dialog.download_buttons[entry.name].click()
    assert server.requests[-1] == ("/big.bin", f"bytes={kept}-")  # resumed, not restarted
    assert (weights.cache_dir() / "big.bin").read_bytes() == big and not part.exists()
    assert dialog.last_progress == (len(big), len(big))


def test_sha256_mismatch_shows_the_error_and_retry_starts_clean(
    qtbot, settings_file, server, fake_sam, no_sam, payload, monkeypatch
):
    monkeypatch.setitem(weights.KNOWN, fake_sam.name, replace(fake_sam, sha256="0" * 64))
    dialog = FirstRunDialog([fake_sam], no_sam, settings_file)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.download_buttons[fake_sam.name].click()
    qtbot.waitUntil(lambda: dialog.thread is None, timeout=60_000)
    status = dialog.status[fake_sam.name].text()
    assert status.startswith("download failed") and "\n" not in status
    details = dialog.details  # the whole message, wrapped and copyable (issue 24)
    assert details.isVisible() and details.isReadOnly() and "sha256" in details.toPlainText()
    assert details.lineWrapMode() == details.LineWrapMode.WidgetWidth
    assert dialog.download_buttons[fake_sam.name].text() == "Retry"
    assert dialog.isVisible() and dialog.progress_dialog is None
    target = weights.cached_path(fake_sam.name)
    assert not target.exists() and not target.with_name(target.name + ".part").exists()
    assert settings_file.model_config().checkpoint == ""  # nothing was stored

    monkeypatch.setitem(weights.KNOWN, fake_sam.name, fake_sam)  # the right file this time
    with qtbot.waitSignal(dialog.models_ready, timeout=60_000):
        dialog.download_buttons[fake_sam.name].click()
    assert server.requests[-1] == ("/sam.pth", None)  # a clean retry: no Range header
    assert target.read_bytes() == payload


def test_choose_file_sets_the_paths(qtbot, tmp_path, settings_file, engine_args, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_CACHE", str(tmp_path / "empty-cache"))
    # whatever ~/.cache holds
    monkeypatch.setattr(model_files, "_in_hub_cache", lambda known: False)
    missing = missing_weights(ModelConfig(device="cpu"))
    assert [k.name for k in missing] == ["sam2.1_hiera_tiny", weights.DEFAULT_CLIP]
    settings_file.set_model_config(ModelConfig(device="cpu"))
    dialog = FirstRunDialog(missing, ModelConfig(device="cpu"), settings_file)
    qtbot.addWidget(dialog)
    dialog.show()
    sam = str(engine_args["sam_checkpoint"])
    clip = str(tmp_path / "my_clip.bin")
    answers = iter([(sam, ""), (clip, "")])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: next(answers))
    dialog.choose_buttons[weights.DEFAULT_SAM].click()
    assert settings_file.model_config().checkpoint == sam
    assert dialog.status[weights.DEFAULT_SAM].text() == f"using {sam}"
    assert not dialog.download_buttons[weights.DEFAULT_SAM].isEnabled()
    assert not dialog.download_buttons["sam2.1_hiera_tiny"].isEnabled()  # one segmenter is enough
    with qtbot.waitSignal(dialog.models_ready) as ready:
        dialog.choose_buttons[weights.DEFAULT_CLIP].click()
    stored = settings_file.model_config()
    assert (stored.segmenter, stored.checkpoint, stored.clip_model, stored.clip_weights) == (
        "sam",
        sam,
        "convnext_base_w",
        clip,
    )
    assert ready.args[0] == stored
    # A later start finds nothing missing once the files are configured.
    assert missing_weights(stored) == []


def test_downloaded_files_are_found_at_the_next_start(qtbot, tmp_path, monkeypatch):
    """Files in the weights cache (from the dialog or `annotator weights download`) count."""
    monkeypatch.setenv("ANNOTATOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(model_files, "_in_hub_cache", lambda known: False)
    sam = weights.cached_path(weights.DEFAULT_SAM)
    sam.parent.mkdir(parents=True)
    sam.write_bytes(b"x")
    cpu = ModelConfig(device="cpu")
    config = with_cached_weights(cpu)  # only the previous default there: it is kept (ADR 6)
    assert config.checkpoint == str(sam) and config.clip_weights == ""
    assert [k.name for k in missing_weights(cpu)] == [weights.DEFAULT_CLIP]
    clip = weights.cached_path(weights.DEFAULT_CLIP)
    clip.write_bytes(b"y")
    config = with_cached_weights(cpu)
    assert (config.clip_model, config.clip_weights) == ("convnext_base_w", str(clip))
    assert missing_weights(cpu) == []
    # Another CLIP model or local files configured: the default CLIP file is not needed.
    assert missing_weights(ModelConfig(checkpoint="s.pth", clip_model="RN50")) == []
    # The CPU default downloaded too (a folder): it is the one used.
    tiny = weights.cached_path("sam2.1_hiera_tiny")
    tiny.mkdir()
    for name in weights.known("sam2.1_hiera_tiny").files:
        (tiny / name).write_bytes(b"z")
    assert with_cached_weights(cpu).checkpoint == str(tiny)
    # A chosen family without a checkpoint: that family's default, not another family's file.
    assert with_cached_weights(replace(cpu, segmenter="sam")).checkpoint == str(sam)
    assert [k.name for k in missing_weights(replace(cpu, segmenter="edgetam"))] == ["edgetam"]


def test_first_start_opens_the_dialog(qtbot, tmp_path, fake_sam, no_sam, monkeypatch):
    from annotator.gui.app import create_window

    settings = AppSettings(tmp_path / "first.ini")
    settings.set_model_config(no_sam)
    window = create_window(None, None, settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.first_run is not None and window.first_run.isVisible())
    assert list(window.first_run.missing)[0] == "sam2.1_hiera_tiny"  # the CPU default first
    window.first_run.reject()  # "Manual tools only": the window stays, without models
    assert window.isVisible() and not window.engine_ready


@pytest.fixture
def settings_file(tmp_path) -> AppSettings:
    return AppSettings(tmp_path / "settings.ini")


# ------------------------------------------------------------------ the device default (a folder)
TINY = "sam2.1_hiera_tiny"


@pytest.fixture(scope="module")
def sam2_files(tmp_path_factory) -> dict[str, bytes]:
    """A tiny SAM 2 folder's files (upstream classes, tests/tiny_hf.py), as a server serves them."""
    from tests import tiny_hf

    folder = tmp_path_factory.mktemp("tiny_sam2")
    tiny_hf.save("sam2", folder, seed=1)  # seed 1: masks neither empty nor full
    return {name: (folder / name).read_bytes() for name in weights.known(TINY).files}


@pytest.fixture
def fake_tiny(sam2_files, tmp_path, monkeypatch) -> Iterator[weights.KnownWeights]:
    """The CPU default's registry entry, pointing at a local server holding the tiny SAM 2."""
    monkeypatch.setenv("ANNOTATOR_CACHE", str(tmp_path / "annotator-cache"))
    s = FileServer({f"/tiny/{name}": data for name, data in sam2_files.items()})
    entry = replace(weights.known(TINY), url=f"{s.url}/tiny/")
    monkeypatch.setitem(weights.KNOWN, TINY, entry)
    yield entry
    s.close()


def test_the_first_run_dialog_offers_sam2_tiny_first_on_a_cpu(qtbot, settings_file, fake_tiny):
    config = ModelConfig(device="cpu", clip_model="RN50")  # CLIP not the default: not needed
    missing = missing_weights(config)
    assert [k.name for k in missing] == [TINY]
    dialog = FirstRunDialog(missing, config, settings_file)
    qtbot.addWidget(dialog)
    names = list(dialog.missing)
    assert names[0] == TINY and names[1:] == ["sam_vit_b", "edgetam", "sam_hq_vit_b"]
    assert dialog.needs == [set(names)]  # any one of them
    assert dialog.choose_buttons[TINY].text() == "Choose folder…"  # a transformers folder
    assert dialog.choose_buttons["sam_vit_b"].text() == "Choose file…"
    first_row = dialog.layout().itemAt(1).layout().itemAtPosition(0, 0).widget().text()
    assert TINY in first_row and "recommended" in first_row
    assert "(\u2248156 MB)" in first_row  # the estimated size, marked approximate (issue 24)


def test_downloading_the_cpu_default_folder_loads_sam2_in_the_window(
    qtbot, tmp_path, no_sam, fake_tiny, sam2_files, image_folder
):
    window = open_window(qtbot, tmp_path, no_sam, image_folder, wait_engine=False)
    dialog = window.offer_downloads()
    assert list(dialog.missing)[0] == TINY
    with qtbot.waitSignal(dialog.models_ready, timeout=60_000) as ready:
        dialog.download_buttons[TINY].click()
    folder = weights.cached_path(TINY)
    assert {n: (folder / n).read_bytes() for n in sam2_files} == sam2_files
    assert not list(folder.glob("*.part"))
    assert (ready.args[0].segmenter, ready.args[0].checkpoint) == ("sam2", str(folder))
    stored = window.settings.model_config()
    assert (stored.segmenter, stored.checkpoint) == ("sam2", str(folder))
    qtbot.waitUntil(lambda: window.engine_ready, timeout=60_000)
    assert window.worker._engine.sam.family == "sam2" and TINY in window.model_label.text()
    click(qtbot, window, 140, 110)
    mask = wait_proposal(qtbot, window).mask
    assert mask.shape == (240, 320) and 0 < mask.sum() < mask.size
    # the next start finds it in the cache: nothing to offer
    assert missing_weights(replace(no_sam, checkpoint="")) == []


def test_choose_folder_takes_any_family_and_refuses_a_non_model(
    qtbot, tmp_path, settings_file, fake_tiny, sam2_files, monkeypatch
):
    config = ModelConfig(device="cpu", clip_model="RN50")
    dialog = FirstRunDialog(missing_weights(config), config, settings_file)
    qtbot.addWidget(dialog)
    dialog.show()
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(empty))
    dialog.choose_buttons[TINY].click()
    status = dialog.status[TINY].text()
    assert "no config.json" in status and "\n" not in status and dialog.isVisible()
    assert settings_file.model_config().checkpoint == ""  # nothing stored
    local = tmp_path / "my_sam2"
    local.mkdir()
    for name, data in sam2_files.items():
        (local / name).write_bytes(data)
    # a model.safetensors picked in SAM 1's row ("Choose file…"): its folder, and its own family
    picked = (str(local / "model.safetensors"), "")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: picked)
    with qtbot.waitSignal(dialog.models_ready) as ready:
        dialog.choose_buttons["sam_vit_b"].click()
    assert (ready.args[0].segmenter, ready.args[0].checkpoint) == ("sam2", str(local))
    assert settings_file.model_config().checkpoint == str(local)


def test_the_default_follows_the_device_without_importing_torch(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from annotator.device import likely_device

    monkeypatch.setenv("ANNOTATOR_CACHE", str(tmp_path / "empty-cache"))
    assert likely_device("cpu") == "cpu" and likely_device("cuda:1") == "cuda"
    assert likely_device("mps") == "mps" and likely_device("auto") in ("cpu", "cuda", "mps")
    cuda = ModelConfig(device="cuda", clip_model="RN50")
    assert [k.name for k in missing_weights(cuda)] == ["sam2.1_hiera_base_plus"]
    code = (
        "import sys\nfrom annotator.device import likely_device\nlikely_device('auto')\n"
        "import annotator\nprint(annotator.__file__, 'torch' in sys.modules)"
    )
    root = str(Path(__file__).resolve().parents[2])  # this checkout, not an installed copy
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    where, torch_loaded = out.stdout.split()
    assert where.startswith(root) and torch_loaded == "False"
