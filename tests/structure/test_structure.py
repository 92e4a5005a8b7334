"""The shape of the package: no import cycles, and the light commands start without torch.

The import graph is static (every import statement, inside functions and TYPE_CHECKING blocks too),
so a cycle cannot hide behind a lazy import.
"""

from __future__ import annotations

import ast
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.timing import record

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "annotator"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = f
    return mods


def _resolve(module: str, level: int, current: str, is_package: bool) -> str:
    if level == 0:
        return module
    parts = current.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([module] if module else []))


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (by any import statement anywhere in it)."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(node.module or "", node.level, name, is_package)
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append(sub if sub in mods else source)
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package():
    graph = import_graph()
    assert "annotator.cli" in graph and "annotator.gui.main_window" in graph
    assert cycles(graph) == []


def test_layers_import_no_qt_outside_gui_and_no_torch_inside_gui():
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        if name.startswith("annotator.gui"):
            assert "torch" not in imported, name
        else:
            assert not imported & {"PySide6", "PyQt5", "PyQt6", "shiboken6"}, name


LIGHT = [
    ["--help"],
    ["--version"],
    ["weights", "list"],
    ["vocab", "list", "--vocabulary", "coco", "--search", "dog"],
    ["export", "--help"],
    ["import", "--help"],
]


@pytest.mark.parametrize("argv", LIGHT, ids=" ".join)
def test_light_commands_import_no_torch(argv, tmp_path):
    code = (
        "import sys, json\n"
        "from annotator.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'open_clip', 'segment_anything', 'transformers', 'PySide6')"
        " if m in sys.modules]\n"
        "print(json.dumps(heavy), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert json.loads(result.stderr.strip().splitlines()[-1]) == []


def test_export_and_import_import_no_torch(tmp_path):
    """The file commands on a real project: COCO out and back in without loading any model."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(folder / "a.png")
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 3, 3],
             "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]], "area": 9, "iscrowd": 0}
        ],
    }  # fmt: skip
    (tmp_path / "in.json").write_text(json.dumps(coco))
    code = (
        "import sys, json\n"
        "from annotator.cli import main\n"
        f"a = main(['import', {str(tmp_path / 'in.json')!r}, '--images', {str(folder)!r},"
        f" '--project', {str(folder)!r}])\n"
        f"b = main(['export', {str(folder)!r}, '-o', {str(tmp_path / 'out.json')!r}])\n"
        "print(json.dumps([a, b, 'torch' in sys.modules]), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert json.loads(result.stderr.strip().splitlines()[-1]) == [0, 0, False], result.stderr


HEAVY = ("torch", "PySide6", "cv2", "transformers", "open_clip", "segment_anything", "ray")


def test_help_starts_fast():
    """`annotator --help` imports none of the heavy libraries (it took 3.7 s when the parser
    imported torch; 0.3 s without). The check is structural, so a busy machine cannot fail it;
    the wall time is recorded for benchmarks/bench_test_timings.py."""
    code = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "from annotator.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), time.perf_counter() - start,"
        " file=sys.stderr)\n"
    )
    times = []
    for _ in range(3):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
        heavy, seconds = result.stderr.strip().splitlines()[-1].rsplit(" ", 1)
        assert heavy == "[]", result.stderr
        times.append(float(seconds))
    record("help_starts_fast", seconds=statistics.median(times), bound_was=0.5)
