"""File → Export… / Import… for every dataset format: each export, read back by the project's own
importers, holds what the window's project holds; an import shows its annotations; the window keeps
ticking during a long export; a bad target is refused in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from annotator.app.transfer import EXPORT_FORMATS, ExportOptions
from annotator.gui.settings import ModelConfig
from annotator.io import formats
from annotator.io.masks import mask_to_rle
from annotator.store import Project
from annotator.store import extras as store_extras
from tests.formats_data import best_match, expected_masks, make_project
from tests.gui.conftest import make_images, open_window

pytestmark = pytest.mark.filterwarnings("ignore::annotator.io.formats.FormatWarning")

# (format, options, exact masks?, masks back, boxes back) for the formats_data project:
# 6 masks (holes, 1-3 px, one in two parts) and 1 box-only annotation.
CASES = [
    ("coco", ExportOptions(), True, 6, 1),
    ("coco", ExportOptions(polygons=True), False, 6, 1),
    ("yolo", ExportOptions(yolo_task="segment"), False, 7, 0),  # the box becomes a rectangle
    ("yolo", ExportOptions(yolo_task="detect"), None, 0, 7),  # boxes only
    ("voc", ExportOptions(), True, 6, 1),
    ("cvat", ExportOptions(), True, 6, 1),
    ("cvat", ExportOptions(polygons=True), False, 6, 1),
    ("labelme", ExportOptions(), False, 6, 1),
    ("masks", ExportOptions(), True, 6, 0),  # a box-only annotation has no mask to paint
]
BRIDGED = ("a.png", 4)  # the mask in two parts: one YOLO polygon bridges them


@pytest.fixture
def data_window(qtbot, tmp_path):
    make_project(tmp_path / "proj").close()
    return open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), tmp_path / "proj", False)


def _target(tmp_path: Path, name: str) -> Path:
    return tmp_path / "out" / {"coco": "x.json", "cvat": "x.xml"}.get(name, name)


def _export(qtbot, window, name, out, options) -> dict:
    with qtbot.waitSignal(window.jobs.finished, timeout=60_000) as blocker:
        assert window.export_dataset(name, out, options)
        assert window.transfer_progress is not None
    qtbot.waitUntil(lambda: window.transfer_progress is None)
    return blocker.args[1]


def _read_back(tmp_path: Path, folder: Path, name: str, out: Path) -> Project:
    db = tmp_path / "back.db"
    Project(db).set_meta("folder", str(folder))
    back = Project(db)
    formats.import_(out, folder, back, name)
    return back


@pytest.mark.parametrize(("name", "options", "exact", "n_masks", "n_boxes"), CASES)
def test_every_format_exports_what_the_window_holds(
    qtbot, tmp_path, data_window, name, options, exact, n_masks, n_boxes
):
    window, out = data_window, _target(tmp_path, name)
    summary = _export(qtbot, window, name, out, options)
    assert summary["format"] == name and summary["images"] == 3
    assert window.transfer_text.startswith("Exported ")
    if summary["warnings"]:  # what the format cannot hold is summarised, not lost silently
        assert window.summary_box is not None and window.summary_box.isVisible()
        assert summary["warnings"][0] in window.summary_box.informativeText()
    with _read_back(tmp_path, window.folder, name, out) as back:
        assert [c.name for c in back.categories()] == [c.name for c in window.project.categories()]
        assert len(back.annotations()) == n_masks
        assert len(store_extras.boxes(back)) == n_boxes
        if exact is None:
            return
        got = expected_masks(back)
        for file_name, items in expected_masks(window.project).items():
            candidates = [m for _, m in got[file_name]]
            for k, (_, mask) in enumerate(items):
                if name == "yolo" and (file_name, k) == BRIDGED:
                    continue
                score = best_match(mask, candidates)
                assert score == 1.0 if exact else score >= 0.99, (file_name, k, score)


def test_the_export_dialog_offers_every_format_and_its_options(qtbot, tmp_path, data_window):
    window, out = data_window, tmp_path / "detect"

    def fill() -> None:
        dialog = window.transfer_dialog
        offered = [dialog.format.itemData(i) for i in range(dialog.format.count())]
        if offered != list(EXPORT_FORMATS):  # close the modal dialog, or the test would hang
            dialog.reject()
        assert offered == list(EXPORT_FORMATS)
        dialog.set_format("coco")
        assert dialog.target_label.text() == "File" and dialog.target.text().endswith(".json")
        assert not dialog.yolo_task.isVisibleTo(dialog)
        dialog.set_format("yolo")
        assert dialog.target_label.text() == "Folder" and dialog.yolo_task.isVisibleTo(dialog)
        assert not Path(dialog.target.text()).is_relative_to(window.folder)
        dialog.yolo_task.setCurrentIndex(1)
        dialog.target.setText(str(out))
        dialog.ok.click()

    QTimer.singleShot(0, fill)
    with qtbot.waitSignal(window.jobs.finished, timeout=60_000):
        assert window.export_dialog()
    lines = (out / "labels" / "train" / "a.txt").read_text().splitlines()
    assert len(lines) == 5 and all(len(line.split()) == 5 for line in lines)  # boxes


def _fresh_copy(tmp_path: Path, source: Path) -> Path:
    copy = tmp_path / "dst"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".annotator"))
    return copy


def test_importing_a_yolo_folder_shows_its_annotations(qtbot, tmp_path):
    with make_project(tmp_path / "src") as source:
        formats.export("yolo", source, tmp_path / "yolo")
    dst = _fresh_copy(tmp_path, tmp_path / "src")
    window = open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), dst, False)
    row = next(i for i, r in enumerate(window.images.model_.rows) if r.name == "a.png")
    window.go_to(row)
    qtbot.waitUntil(lambda: window.canvas.image_size() == (48, 64), timeout=60_000)
    assert window.canvas.masks == {}
    # YOLO's own images/ are outside this project folder: the window needs the images folder
    assert not window.import_dataset(tmp_path / "yolo")
    assert "\n" not in window.errors[-1] and "images" in window.errors[-1]
    with qtbot.waitSignal(window.jobs.finished, timeout=60_000):
        assert window.import_dataset(tmp_path / "yolo", None, dst)
    qtbot.waitUntil(lambda: len(window.canvas.masks) == 5, timeout=60_000)
    assert len(window.project.annotations()) == 7
    assert sum(r.annotations for r in window.images.model_.rows) == 7
    assert window.transfer_text.startswith("Imported 7 annotation(s) from yolo")


def test_the_import_dialog_detects_labelme_and_the_window_shows_it(qtbot, tmp_path):
    with make_project(tmp_path / "src") as source:
        shutil.copytree(tmp_path / "src", tmp_path / "dst", ignore=shutil.ignore_patterns(".*"))
        source.folder = tmp_path / "dst"  # imagePath relative to the copy: inside its folder
        formats.export("labelme", source, tmp_path / "dst" / "labelme")
    dst = tmp_path / "dst"
    window = open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), dst, False)
    row = next(i for i, r in enumerate(window.images.model_.rows) if r.name == "a.png")
    window.go_to(row)
    qtbot.waitUntil(lambda: window.canvas.image_size() == (48, 64), timeout=60_000)
    seen = {}

    def fill() -> None:
        dialog = window.transfer_dialog
        dialog.path.setText(str(dst / "labelme"))
        seen["detected"] = dialog.detected.text()
        seen["needed"] = dialog.images_needed()
        dialog.ok.click()

    QTimer.singleShot(0, fill)
    with qtbot.waitSignal(window.jobs.finished, timeout=60_000):
        assert window.import_dialog()
    assert seen == {"detected": "Detected: labelme JSON", "needed": False}
    qtbot.waitUntil(lambda: len(window.canvas.masks) == 5, timeout=60_000)
    assert len(window.project.annotations()) == 6 and len(store_extras.boxes(window.project)) == 1


def test_the_import_dialog_asks_for_images_only_when_needed(qtbot, tmp_path, data_window):
    from annotator.gui.transfer_dialogs import ImportDialog

    formats.export("masks", data_window.project, tmp_path / "m")
    dialog = ImportDialog(data_window.folder)
    qtbot.addWidget(dialog)
    dialog.path.setText(str(tmp_path / "m"))
    assert dialog.detected.text() == "Detected: PNG masks" and dialog.images_needed()
    assert not dialog.ok.isEnabled()
    dialog.images.setText(str(data_window.folder))
    assert dialog.ok.isEnabled()
    assert dialog.values() == (tmp_path / "m", None, data_window.folder)
    dialog.path.setText(str(tmp_path))
    assert "Cannot tell" in dialog.detected.text() and not dialog.ok.isEnabled()


def test_a_bad_target_is_refused_in_one_line(qtbot, tmp_path, data_window):
    window = data_window
    database = window.project.path
    for name, target in (("coco", database), ("yolo", database.parent), ("voc", database)):
        before = database.read_bytes()[:100]
        assert not window.export_dataset(name, target)
        message = window.errors[-1]
        assert "\n" not in message and "refusing" in message
        assert window.error_box.isVisible() and window.error_box.text() == message
        assert database.read_bytes()[:100] == before
    assert not window.jobs.busy()
    # a folder format into an existing file: refused before the job starts (issue 22: the one
    # output check, io/outputs.py), in one line, the file untouched
    blocker_file = tmp_path / "a_file"
    blocker_file.write_text("x")
    assert not window.export_dataset("voc", blocker_file)
    assert "\n" not in window.errors[-1] and "is a file" in window.errors[-1]
    assert blocker_file.read_text() == "x" and not window.jobs.busy()


def _many_annotations(folder: Path, n_images: int = 300, per_image: int = 40) -> None:
    make_images(folder, n=1, size=(64, 48))
    mask = np.zeros((48, 64), bool)
    mask[10:30, 12:40] = True
    rle = mask_to_rle(mask)
    with Project.open_folder(folder) as project:
        with project.transaction():
            for i in range(n_images):
                image_id = project.add_image(f"sub/img_{i:04d}.png", 64, 48)
                for j in range(per_image):
                    project.add_annotation_rle(image_id, rle, f"label {j % 25}", 0.5)


@pytest.mark.slow
def test_a_long_export_keeps_the_window_ticking_and_reports_progress(qtbot, tmp_path):
    from tests.gui.test_long_jobs import StallMeter

    folder = tmp_path / "big"
    _many_annotations(folder)
    window = open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), folder, False)
    progress = []
    window.jobs.progress.connect(lambda *args: progress.append(args[1:3]))
    with StallMeter() as meter:
        with qtbot.waitSignal(window.jobs.finished, timeout=300_000):
            assert window.export_dataset("yolo", tmp_path / "yolo")
    meter.report("yolo export")
    assert meter.seconds > 0.5, "the export was too quick to prove anything"
    assert meter.kept_ticking(), f"the GUI thread waited for the export: {len(meter.gaps)} ticks"
    assert any(total == 301 and 0 < done < total for done, total in progress), progress[:5]
    lines = (tmp_path / "yolo" / "labels" / "train" / "sub__img_0007.txt").read_text()
    assert len(lines.splitlines()) == 40


@pytest.mark.slow
def test_cancel_in_the_progress_dialog_keeps_the_old_file(qtbot, tmp_path):
    folder = tmp_path / "big"
    _many_annotations(folder)
    window = open_window(qtbot, tmp_path, ModelConfig(vocabulary="coco"), folder, False)
    out = tmp_path / "old.xml"
    out.write_text("<previous/>")
    progress = []
    window.jobs.progress.connect(lambda *args: progress.append(args[1:3]))
    with qtbot.waitSignal(window.jobs.cancelled, timeout=120_000):
        assert window.export_dataset("cvat", out)
        qtbot.waitUntil(lambda: any(0 < done for done, _ in progress), timeout=60_000)
        window.transfer_progress.cancel_button.click()
    qtbot.waitUntil(lambda: window.transfer_progress is None)
    assert "cancelled" in window.statusBar().currentMessage()
    assert out.read_text() == "<previous/>"  # CVAT writes its XML at the end, atomically
