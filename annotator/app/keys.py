"""The keyboard model: every user action registered once (name, description, keys, context).

napari's action manager, kept small: the window binds its menu actions and shortcuts from this
registry, `docs/keys.md` and the README's key table are generated from it (`python -m
annotator.app.keys`), and `route` is the one rule that says what a key press means where it lands.
No Qt: keys are spelled as `QKeySequence` portable text ("Ctrl+Shift+Z", "Return", "Esc"), and the
routing is testable without a screen.

Contexts (where the key lands, and what waits):
- `window`: anywhere in the window; only keys with Ctrl, F-keys and Page keys, so typing in a
  text field never triggers them by accident.
- `canvas`: the canvas with nothing waiting for a label. Plain letters are tools and views.
- `waiting`: the canvas while a new mask or a drawn shape waits for its label. Every printable key
  that this context does not bind (all letters) types into the label field instead: "dog" is a
  label, never "next image, polygon tool, …".
- `label`: the label field. Enter accepts the mask with the typed label, Esc cancels the typing
  (a second Esc, now on the canvas, cancels the shape).
- `review`: the review queue has focus. Its keys never fall through to the window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

CONTEXTS: dict[str, str] = {
    "window": "anywhere in the window",
    "canvas": "canvas, nothing waits for a label",
    "waiting": "canvas, a new mask or shape waits for its label (letters type the label)",
    "label": "the label field (F2 or a letter opened it)",
    "review": "the review queue (Review dock) has focus",
}

TYPE = "type"  # `route`'s answer for a key that types into the context's text field
_SUGGESTIONS = 5  # the suggestions panel shows five labels: keys 1…5
_CLASSES = 9  # the review panel's classes: keys 1…9


@dataclass(frozen=True)
class Action:
    """One thing the user can do, with the keys that do it in its contexts."""

    name: str  # stable id the window binds a slot to, e.g. "tool.points"
    title: str  # menu text
    description: str  # one line for the key table and the status tip
    keys: tuple[str, ...]  # QKeySequence portable text, first = the one shown in menus
    contexts: tuple[str, ...]
    menu: str = ""  # "File", "Edit", "View", "Find", "Tools"; "" = a key without a menu entry
    widget: str = ""  # the widget that handles the keys itself ("" = a window shortcut)


class Registry:
    """Actions by name, in registration order (that is the order of menus and tables)."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def register(
        self,
        name: str,
        title: str,
        description: str,
        keys: Iterable[str] = (),
        contexts: Iterable[str] = ("window",),
        menu: str = "",
        widget: str = "",
    ) -> Action:
        if name in self._actions:
            raise ValueError(f"action {name!r} is registered twice")
        action = Action(name, title, description, tuple(keys), tuple(contexts), menu, widget)
        unknown = set(action.contexts) - CONTEXTS.keys()
        if unknown:
            raise ValueError(f"action {name!r}: unknown context {sorted(unknown)}")
        for context in action.contexts:
            for key in action.keys:
                other = self.owner(key, context)
                if other is not None:
                    raise ValueError(
                        f"{key} in {context} would mean both {other.name!r} and {name!r}"
                    )
        self._actions[name] = action
        return action

    def __getitem__(self, name: str) -> Action:
        return self._actions[name]

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def __len__(self) -> int:
        return len(self._actions)

    def in_context(self, context: str) -> list[Action]:
        return [a for a in self if context in a.contexts]

    def owner(self, key: str, context: str) -> Action | None:
        """The action `key` triggers in `context` (its own bindings only), or None."""
        key = normalize(key)
        return next(
            (a for a in self.in_context(context) if key in (normalize(k) for k in a.keys)), None
        )

    def route(self, key: str, text: str, context: str) -> str | None:
        """What a key press means: an action name, `TYPE` (the text goes into the label or class
        field) or None (nothing here: the key goes on to the widget's own handling).

        `key` is the portable text of the key with its modifiers, `text` the character it types.
        On the canvas, `window` keys apply too; in `label` and `review` a printable key types
        and only Ctrl keys reach the window."""
        key = normalize(key)
        own = self.owner(key, context)
        if own is not None:
            return own.name
        printable = len(text) == 1 and text.isprintable() and not text.isspace()
        commands = any(m in key.split("+")[:-1] for m in ("Ctrl", "Alt", "Meta"))
        if context in ("waiting", "label", "review") and printable and not commands:
            return TYPE
        window = self.owner(key, "window")
        if window is None:
            return None
        if context in ("label", "review") and not commands and not _is_function_key(key):
            return None  # a text field's own editing keys (Home, PgUp …) stay its own
        return window.name


def canvas_context(waiting: bool) -> str:
    """The canvas's context: `waiting` while a new mask or shape waits for its label."""
    return "waiting" if waiting else "canvas"


def normalize(key: str) -> str:
    """One spelling per key: "Enter" (keypad) is "Return", "Escape" is "Esc", "Num+" is dropped."""
    key = key.replace("Num+", "")
    parts = key.split("+") if key != "+" else ["+"]
    if key.endswith("++"):
        parts = [*key[:-2].split("+"), "+"]
    last = {"Enter": "Return", "Escape": "Esc", "PgDown": "PgDown", "Del": "Delete"}.get(
        parts[-1], parts[-1]
    )
    return "+".join([*parts[:-1], last])


def _is_function_key(key: str) -> bool:
    return re.fullmatch(r"F\d+", key.split("+")[-1]) is not None


def _build() -> Registry:
    r = Registry()
    add = r.register
    # File
    add("file.open", "Open folder…", "open a folder of images", ["Ctrl+O"], menu="File")
    add("file.import", "Import…", "import a dataset (COCO, YOLO, …)", ["Ctrl+I"], menu="File")
    add("file.export", "Export…", "export the dataset", ["Ctrl+E"], menu="File")
    add("file.settings", "Settings…", "models, device, cache", ["Ctrl+,"], menu="File")
    add("file.download", "Download models…", "get missing weights", [], menu="File")
    add(
        "file.quit",
        "Quit",
        "close the window (everything accepted is saved)",
        ["Ctrl+Q"],
        menu="File",
    )
    # Edit
    add(
        "edit.undo",
        "Undo",
        "undo the last edit (shows its image and object)",
        ["Ctrl+Z"],
        menu="Edit",
    )
    add("edit.redo", "Redo", "redo", ["Ctrl+Shift+Z", "Ctrl+Y"], menu="Edit")
    canvas = ("canvas", "waiting")
    add(
        "edit.accept",
        "Accept mask",
        "accept the mask with its best (or chosen) label (a tap on Space too)",
        ["Return"],
        canvas,
        menu="Edit",
    )
    add(
        "edit.clear",
        "Clear prompts",
        "discard the new mask or shape and its prompts; again: deselect",
        ["Esc"],
        canvas,
        menu="Edit",
    )
    add(
        "edit.delete",
        "Delete annotation",
        "delete the selected annotation (a waiting mask: discard it)",
        ["Delete", "Backspace"],
        canvas,
        menu="Edit",
    )
    add(
        "edit.candidate",
        "Next SAM candidate",
        "next of SAM's candidate masks",
        ["Tab"],
        canvas,
        widget="canvas",
    )
    add(
        "edit.type",
        "Type a label",
        "type a label, the best suggestion selected (completes from the vocabulary)",
        ["F2"],
        ("canvas", "waiting", "label"),
        menu="Edit",
    )
    for n in range(1, _SUGGESTIONS + 1):
        add(
            f"edit.suggestion{n}",
            f"Use suggestion {n}",
            f"take label suggestion {n} (of the new mask, or relabel the selection)",
            [str(n)],
            canvas,
            menu="Edit",
        )
    # View
    add("view.previous", "Previous image", "previous image", ["PgUp"], ("window",), menu="View")
    add("view.next", "Next image", "next image", ["PgDown"], ("window",), menu="View")
    add("view.previous_key", "Previous image", "previous image", ["A"], ("canvas",))
    add("view.next_key", "Next image", "next image", ["D"], ("canvas",))
    add("view.fit", "Fit to window", "fit the image to the window", ["F"], ("canvas",), menu="View")
    add("view.zoom_in", "Zoom in", "zoom in (or the wheel)", ["Ctrl++"], menu="View")
    add("view.zoom_out", "Zoom out", "zoom out (or the wheel)", ["Ctrl+-"], menu="View")
    add(
        "view.vocabulary",
        "Vocabulary editor",
        "show the vocabulary editor (add, rename, remove names)",
        ["Ctrl+Shift+V"],
        menu="View",
    )
    # Find
    add("find.text", "Find objects by text…", "find objects by text", ["Ctrl+F"], menu="Find")
    add(
        "find.similar",
        "Similar to selection",
        "images and objects similar to the selection",
        ["Ctrl+Shift+F"],
        menu="Find",
    )
    add("find.tags", "Seed labels from tags", "seed labels from the image tags", [], menu="Find")
    add(
        "find.compare",
        "Compare models…",
        "compare two model choices side by side",
        ["Ctrl+Shift+C"],
        menu="Find",
    )
    # Tools (plain letters: only while nothing waits for a label)
    for tool, title, key, description in (
        ("point", "Points", "P", "SAM points: left click adds, right or Shift click removes"),
        ("box", "Box", "B", "SAM box: drag a box, then refine with points"),
        ("rect", "Rectangle", "R", "manual rectangle (no model needed)"),
        ("polygon", "Polygon", "O", "manual polygon: click vertices, Enter or double-click closes"),
        ("brush", "Brush", "H", "paint onto the selected mask (Shift+wheel: size)"),
        ("eraser", "Eraser", "E", "erase from the selected mask (Shift+wheel: size)"),
    ):
        add(f"tool.{tool}", title, description, [key], ("canvas",), menu="Tools")
    add(
        "tool.refine",
        "Refine boxes into masks",
        "SAM masks for box-only annotations",
        [],
        menu="Tools",
    )
    # Sequences (issue 25): Ctrl keys, so they work while the clicked mask waits for its label
    add(
        "track.propagate",
        "Propagate",
        "track the clicked object (and the queued ones) through the video, as pending masks",
        ["Ctrl+T"],
        menu="Tools",
    )
    add(
        "track.add",
        "Add object to propagate",
        "queue the clicked object; Propagate tracks all queued objects together",
        ["Ctrl+Shift+T"],
        menu="Tools",
    )
    add(
        "track.accept",
        "Accept track",
        "accept every pending frame of the selected track (one undoable step)",
        ["Ctrl+Shift+Return"],
        menu="Tools",
    )
    add("view.previous_frame", "Previous frame", "previous frame of a video", [","], ("canvas",))
    add("view.next_frame", "Next frame", "next frame of a video", ["."], ("canvas",))
    # The label field
    add(
        "label.accept",
        "Accept typed label",
        "accept the mask with the typed label",
        ["Return"],
        ("label",),
        widget="label field",
    )
    add(
        "label.cancel",
        "Cancel typing",
        "clear the field, back to the canvas",
        ["Esc"],
        ("label",),
        widget="label field",
    )

    # The review queue
    def review(name, title, description, keys):
        add(name, title, description, keys, ("review",), widget="review queue")

    review("review.accept", "Accept proposal", "accept the proposal, go to the next", ["Return"])
    review("review.reject", "Reject proposal", "reject it, go to the next", ["Backspace", "Delete"])
    for n in range(1, _CLASSES + 1):
        review(
            f"review.class{n}", f"Class {n}", f"change the proposal's class to class {n}", [str(n)]
        )
    review("review.move", "Move", "previous / next proposal", ["Up", "Down"])
    review("review.leave", "Back to the canvas", "leave the queue (focus the canvas)", ["Esc"])
    return r


ACTIONS = _build()


# ---------------------------------------------------------------------- generated documentation
def _keys_cell(keys: tuple[str, ...]) -> str:
    return ", ".join(keys)


def _groups(context: str) -> list[tuple[str, str]]:
    """(keys, description) rows of a context; runs like 1…5 are folded into one row."""
    rows: list[tuple[str, str]] = []
    folded: dict[str, list[Action]] = {}
    for action in ACTIONS.in_context(context):
        base = re.sub(r"\d+$", "", action.name)
        if base != action.name:
            folded.setdefault(base, []).append(action)
            if len(folded[base]) > 1:
                continue
            rows.append((f"@{base}", ""))
            continue
        if action.keys:
            rows.append((_keys_cell(action.keys), action.description))
    out = []
    for keys, description in rows:
        if keys.startswith("@"):
            run = folded[keys[1:]]
            first, last = run[0], run[-1]
            text = re.sub(r"\b1\b", "N", first.description)
            out.append((f"{first.keys[0]} … {last.keys[0]}", text))
        else:
            out.append((keys, description))
    return out


TYPING = {
    "waiting": "any letter (no Ctrl)",
    "label": "any letter",
    "review": "any letter",
}
TYPING_DOES = {
    "waiting": "opens the label field with that letter: type the label, Enter accepts",
    "label": "types; the completer lists matching vocabulary names",
    "review": "opens the class field with that letter (Enter applies the class)",
}
MOUSE = (
    "Mouse: wheel zooms, middle drag or Space+drag pans, Shift+wheel sizes the brush; "
    "in the points tool a right or Shift click removes."
)


def markdown() -> str:
    """The key table, one section per context (the content of `docs/keys.md` after its title)."""
    lines: list[str] = []
    for context, where in CONTEXTS.items():
        lines += [
            f"### {where[0].upper()}{where[1:]} (`{context}`)",
            "",
            "| key | what it does |",
            "|---|---|",
        ]
        lines += [f"| {keys} | {description} |" for keys, description in _groups(context)]
        if context in TYPING:
            lines.append(f"| {TYPING[context]} | {TYPING_DOES[context]} |")
        lines.append("")
    lines += [MOUSE, ""]
    return "\n".join(lines)


DOC_HEADER = """# Keys

Generated from `annotator/app/keys.py` (`python -m annotator.app.keys --write`); do not edit by hand.
Every key has one meaning per context. While a new mask or shape waits for its label, letters type
the label (the tool letters work again once nothing waits); Enter accepts; Esc cancels the typing,
a second Esc the shape. With the review queue focused, its keys never reach the window.

"""

README_BEGIN = "<!-- keys: generated from annotator/app/keys.py, do not edit -->"
README_END = "<!-- /keys -->"


def doc() -> str:
    return DOC_HEADER + markdown()


def readme_table(readme: str) -> str:
    """`readme` with its key table (between the markers) regenerated."""
    start, end = readme.index(README_BEGIN), readme.index(README_END)
    return readme[: start + len(README_BEGIN)] + "\n\n" + markdown() + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    """`--write`: regenerate docs/keys.md and the README's table; default: print the table."""
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    if "--write" not in args:
        print(doc())
        return 0
    root = Path(__file__).resolve().parents[2]
    (root / "docs" / "keys.md").write_text(doc(), encoding="utf-8")
    readme = root / "README.md"
    readme.write_text(readme_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
