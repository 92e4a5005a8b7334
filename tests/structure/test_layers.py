"""The floors of the house (ADR 0028): `io/` primitives (files, images, masks, bounds, outputs...)
lie below `store/`, the dataset formats (`io/formats/`) above it; no import runs back up.

Every import statement counts, inside functions too, so a lazy import cannot hide an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "annotator"


def _imports(path: Path, where: Path | None = None) -> set[str]:
    """The absolute module names a file imports (relative imports resolved as if it lay at
    `where`, default its own place), anywhere in it."""
    rel = (where or path).relative_to(ROOT).with_suffix("")
    package = list(rel.parts if rel.name == "__init__" else rel.parts[:-1])
    if rel.name == "__init__":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _offending(
    files: list[Path], forbidden: tuple[str, ...], where: Path | None = None
) -> list[str]:
    bad = []
    for path in files:
        for name in sorted(_imports(path, where)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(
                    f"{path.name} imports {name}"
                    if where
                    else f"{path.relative_to(ROOT)} imports {name}"
                )
    return bad


def _primitives() -> list[Path]:
    formats = PACKAGE / "io" / "formats"
    return [p for p in (PACKAGE / "io").rglob("*.py") if formats not in p.parents]


def test_io_primitives_lie_below_the_store_and_the_formats() -> None:
    files = _primitives()
    assert {p.name for p in files} >= {"files.py", "images.py", "masks.py", "outputs.py"}
    assert _offending(files, ("annotator.store", "annotator.io.formats")) == []


def test_the_store_does_not_import_the_formats() -> None:
    files = list((PACKAGE / "store").rglob("*.py"))
    assert files
    assert _offending(files, ("annotator.io.formats",)) == []


def test_coco_lives_in_the_formats() -> None:
    """`io/coco.py` was folded into `io/formats/coco.py`; its public functions are imported there."""
    assert not (PACKAGE / "io" / "coco.py").exists()
    from annotator.io.formats import coco

    assert callable(coco.export_coco) and callable(coco.import_coco)


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("from annotator.store.project import Project", "annotator.store"),
        ("from annotator.io import formats", "annotator.io.formats"),
        ("def f():\n    from ..store import files\n", "annotator.store"),
    ],
)
def test_the_check_sees_each_kind_of_import(tmp_path: Path, source: str, forbidden: str) -> None:
    """The checker itself can fail: a module-level, a from-package and a lazy relative import."""
    fake = tmp_path / "probe.py"
    fake.write_text(source, encoding="utf-8")
    bad = _offending([fake], (forbidden,), where=PACKAGE / "io" / "probe.py")
    assert bad != []


def test_one_mask_box_helper() -> None:
    """One mask-box helper, in `io/masks.py` (XYXY, exclusive ends); COCO's XYWH is a second,
    clearly named function that agrees with pycocotools' own box of the same mask."""
    import re

    import numpy as np

    from annotator.io.masks import mask_box, mask_box_xywh, mask_to_rle, rle_bbox

    defined = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in PACKAGE.rglob("*.py")
        for m in re.finditer(
            r"^def (mask_box|mask_bbox)\w*", path.read_text(encoding="utf-8"), re.M
        )
    ]
    assert sorted(defined) == [
        "annotator/io/masks.py: def mask_box",
        "annotator/io/masks.py: def mask_box_xywh",
    ]
    rng = np.random.default_rng(3)
    for _ in range(20):
        mask = np.zeros((37, 53), dtype=bool)
        y0, x0 = rng.integers(0, 30), rng.integers(0, 45)
        mask[y0 : y0 + rng.integers(1, 8), x0 : x0 + rng.integers(1, 9)] = True
        x_0, y_0, x_1, y_1 = mask_box(mask)
        assert mask[y_0:y_1, x_0:x_1].sum() == mask.sum() and mask[y_0, x_0:x_1].any()
        assert mask_box_xywh(mask) == rle_bbox(mask_to_rle(mask))
    assert mask_box(np.zeros((4, 4), dtype=bool)) is None
    assert mask_box_xywh(np.zeros((4, 4), dtype=bool)) == (0.0, 0.0, 0.0, 0.0)
