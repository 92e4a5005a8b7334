"""The packaging files are valid and the frozen app would carry every resource the app loads."""

from __future__ import annotations

import ast
import configparser
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
DESKTOP = PACKAGING / "io.github.annotator.Annotator.desktop"
METAINFO = PACKAGING / "io.github.annotator.Annotator.metainfo.xml"
SPEC = PACKAGING / "annotator.spec"


def spec_resources() -> list[tuple[str, str]]:
    """The RESOURCES list of the spec, read without running PyInstaller."""
    tree = ast.parse(SPEC.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "RESOURCES":
            return ast.literal_eval(node.value)
    raise AssertionError("the spec has no RESOURCES list")


def test_spec_is_python_and_lists_every_runtime_resource():
    compile(SPEC.read_text(), str(SPEC), "exec")
    listed = {src for src, _ in spec_resources()}
    shipped = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "resources").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped <= listed, f"missing from the spec: {sorted(shipped - listed)}"
    for src in listed:
        assert (ROOT / src).is_file(), f"the spec lists {src}, which does not exist"
    # Installed layout: resources/X lands at annotator/resources/X, where resources_path looks for it.
    for src, dest in spec_resources():
        assert dest == str(Path("annotator") / Path(src).parent)


def test_runtime_resources_exist():
    from annotator.resources_path import resources_dir, vocabulary_file

    for name in ("imagenet21k", "lvis", "coco"):
        assert vocabulary_file(name).is_file()
    assert (resources_dir() / "icons" / "annotator.png").is_file()


def test_desktop_entry():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(DESKTOP)
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Exec"].split()[0] == "annotator"
    assert section["Icon"] == METAINFO.name.removesuffix(".metainfo.xml")
    assert section["Categories"].endswith(";")
    if shutil.which("desktop-file-validate"):
        result = subprocess.run(
            ["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "error" not in result.stdout


def test_metainfo():
    root = ET.parse(METAINFO).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == METAINFO.name.removesuffix(".metainfo.xml")
    assert root.find("launchable").text == DESKTOP.name
    assert root.findtext("metadata_license") and root.findtext("project_license")
    assert root.find("description/p") is not None
    if shutil.which("appstreamcli"):
        result = subprocess.run(
            ["appstreamcli", "validate", "--no-net", str(METAINFO)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [ROOT / "resources/icons/annotator.png"])
def test_icon_is_a_square_png(path):
    from PIL import Image

    with Image.open(path) as icon:
        assert icon.format == "PNG" and icon.size[0] == icon.size[1] >= 128
