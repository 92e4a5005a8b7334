"""The store's shape (ADR 0027): one module per table on one shared connection, none over 500
lines, and no module anywhere in `annotator/` importing a private (`_name`) helper of a store module
(what is shared is public and documented)."""

from __future__ import annotations

import ast
from pathlib import Path

import annotator

PACKAGE = Path(annotator.__file__).parent
STORE = PACKAGE / "store"
LIMIT = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str | None, level: int, here: str, is_package: bool) -> str:
    if not level:
        return module or ""
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def private_store_imports(path: Path, text: str | None = None) -> list[str]:
    """Every `from annotator.store.X import _name` (absolute or relative) in the module at `path`
    (source `text` when given), except a module importing from itself."""
    here = _module_name(path)
    source_text = path.read_text(encoding="utf-8") if text is None else text
    tree = ast.parse(source_text, str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        source = _absolute(node.module, node.level, here, path.name == "__init__.py")
        if not source.startswith("annotator.store") or source == here:
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {source}.{alias.name}"
                )
    return found


def test_no_private_store_helper_is_imported_across_modules():
    bad = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in private_store_imports(path)]
    assert bad == [], "private store helpers imported across modules:\n" + "\n".join(bad)


def test_the_checker_sees_a_private_import():
    # the rule above must be able to fail: private names are reported, public ones and dunders not
    probe = PACKAGE / "cli" / "probe.py"
    text = (
        "from annotator.store.project import _hidden, Project\n"
        "from ..store.files import _x, __all__, ok\n"
        "from annotator.io.images import _show\n"
    )
    hits = private_store_imports(probe, text)
    assert [h.split(": ")[1] for h in hits] == [
        "annotator.store.project._hidden",
        "annotator.store.files._x",
    ]


def test_every_store_module_is_at_most_500_lines():
    sizes = {
        path.name: len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(STORE.glob("*.py"))
    }
    assert {name: n for name, n in sizes.items() if n > LIMIT} == {}


def test_one_module_per_table_and_one_transaction():
    # each table's code is in its own module, and `transaction` is defined once, for both backends
    for table in ("connection", "images", "categories", "annotations", "claims", "changes"):
        assert (STORE / f"{table}.py").is_file()
    defining = [
        path.name
        for path in sorted(STORE.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name in ("transaction", "snapshot")
    ]
    assert defining == ["connection.py", "connection.py"]


def test_the_public_names_still_come_from_project():
    from annotator.store.postgres import PostgresProject
    from annotator.store.project import KEEP, Annotation, Category, Changes, ImageRecord, Project

    assert {cls.__module__ for cls in (Annotation, Category, Changes, ImageRecord)} == {
        "annotator.store.annotations",
        "annotator.store.categories",
        "annotator.store.changes",
        "annotator.store.images",
    }
    assert repr(KEEP) == "KEEP"
    assert PostgresProject.transaction is Project.transaction
