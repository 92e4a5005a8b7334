"""`annotator project copy SRC DST`: move a project between SQLite and PostgreSQL (ADR 0011)."""

from __future__ import annotations

import argparse
import json

from annotator.cli.flags import open_project, project_location


def register(sub, models: argparse.ArgumentParser) -> None:
    p = sub.add_parser("project", help="manage projects (copy between SQLite and PostgreSQL)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = actions.add_parser(
        "copy", help="copy a whole project into a new one, all or nothing (ids, authors kept)"
    )
    c.add_argument("source", type=project_location, help="project folder, .db file or URL")
    c.add_argument(
        "target",
        type=project_location,
        help="new project: folder, .db file or postgresql://…?project=NAME (must be empty)",
    )
    c.set_defaults(handler=cmd_copy)


def cmd_copy(args: argparse.Namespace) -> int:
    from annotator.store.copy import copy_project

    with open_project(args.source, create=False) as source:
        with open_project(args.target) as target:
            counts = copy_project(source, target)
    print(json.dumps({"source": str(source.path), "target": str(target.path), **counts}))
    return 0
