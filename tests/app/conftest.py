"""tests/app is the Qt-free layer: when a run collects only this folder, PySide6 (and any of its
modules already loaded, e.g. by the pytest-qt plugin, whose hooks are then taken out) is made
unimportable before a test module loads, so an import of Qt anywhere under `annotator.app` (or the engine it drives) fails the run
(issue 23). A run that also collects other folders leaves Qt alone for tests/gui."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _only_this_folder(args: list[str]) -> bool:
    paths = [Path(a.split("::")[0]).resolve() for a in args if not a.startswith("-")]
    return bool(paths) and all(p == HERE or HERE in p.parents for p in paths)


@pytest.hookimpl(trylast=True)  # after plugins (pytest-qt) that import Qt while configuring
def pytest_configure(config) -> None:
    if _only_this_folder(list(config.args)):
        # `-p no:pytestqt` does not stop the plugin (its entry point is named "pytest-qt"): it has
        # imported Qt already; take its hooks out so nothing here touches Qt again
        for name in ("pytest-qt", "_qt_logging"):
            plugin = config.pluginmanager.get_plugin(name)
            if plugin is not None:
                config.pluginmanager.unregister(plugin)
        for name in [n for n in sys.modules if n == "PySide6" or n.startswith("PySide6.")]:
            sys.modules[name] = None  # type: ignore[assignment]
        sys.modules["PySide6"] = None  # type: ignore[assignment]
