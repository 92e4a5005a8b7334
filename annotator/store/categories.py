"""The categories table: a name (checked by `names.category_name`) and a supercategory per id."""

from __future__ import annotations

from dataclasses import dataclass

from annotator.errors import ProjectError
from annotator.names import category_name
from annotator.store.connection import Connection, wanted_id


@dataclass(frozen=True)
class Category:
    id: int
    name: str
    supercategory: str


class Categories(Connection):
    """The categories table's part of `Project`."""

    def category_id(self, name: str, create: bool = True, supercategory: str = "") -> int:
        """Id of the category `name` (surrounding spaces ignored), created when missing and `create`.

        KeyError when missing and not `create`; ValueError for a blank name.
        """
        name = name.strip()  # a lookup finds any stored name; a new one is checked by add_category
        if not name:
            category_name(name)  # raises InvalidName (a ValueError): a blank name
        rows = self.read("SELECT id FROM categories WHERE name = ?", (name,))
        if rows:
            return int(rows[0][0])
        if not create:
            raise KeyError(f"no category named {name!r}")
        return self.add_category(name, supercategory)

    def add_category(
        self, name: str, supercategory: str = "", category_id: int | None = None
    ) -> int:
        """Id of the category `name`, added if new; `category_id` is used when adding if it is free."""
        name = category_name(name)
        with self.transaction():
            rows = self.read("SELECT id FROM categories WHERE name = ?", (name,))
            if rows:
                return int(rows[0][0])
            category_id = wanted_id(category_id)
            if category_id is not None and self.read(
                "SELECT 1 FROM categories WHERE id = ?", (category_id,)
            ):
                category_id = None
            cursor = self.write(
                "INSERT INTO categories (id, name, supercategory) VALUES (?, ?, ?)",
                (category_id, name, supercategory or ""),
            )
            return int(cursor.lastrowid)

    def categories(self) -> list[Category]:
        """All categories by id."""
        return [
            Category(*row)
            for row in self.read("SELECT id, name, supercategory FROM categories ORDER BY id")
        ]

    def category(self, category_id: int) -> Category:
        rows = self.read(
            "SELECT id, name, supercategory FROM categories WHERE id = ?", (category_id,)
        )
        if not rows:
            raise KeyError(f"no category with id {category_id}")
        return Category(*rows[0])

    def rename_category(self, category_id: int, name: str) -> None:
        """Rename a category (its id, and so its annotations, stay). ProjectError if the name is taken."""
        name = category_name(name)
        with self.transaction():
            self.category(category_id)
            other = self.read("SELECT id FROM categories WHERE name = ?", (name,))
            if other and other[0][0] != category_id:
                raise ProjectError(f"a category named {name!r} already exists")
            self.write("UPDATE categories SET name = ? WHERE id = ?", (name, category_id))

    def delete_category(self, category_id: int) -> Category:
        """Delete an unused category (undo of adding it); ProjectError while annotations use it."""
        with self.transaction():
            old = self.category(category_id)
            used = self.read(
                "SELECT count(*) FROM annotations WHERE category_id = ?", (category_id,)
            )
            if used[0][0]:
                raise ProjectError(f"category {old.name!r} is used by {used[0][0]} annotation(s)")
            self.write("DELETE FROM categories WHERE id = ?", (category_id,))
            return old
