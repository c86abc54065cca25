"""``ssld-zoo configs [PATTERN]``: the MMDetection / MMSegmentation configs that ship with
ssld-zoo, with the path to give ``mim train`` and the name to inherit them by."""

from __future__ import annotations

import argparse
import fnmatch


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "configs",
        help="list the shipped MMDetection / MMSegmentation configs",
        description="List the downstream configs: `mim train mmdet PATH` trains one; a config "
        "of your own inherits one with _base_ = 'PATH'.",
    )
    p.add_argument(
        "pattern",
        nargs="?",
        default="*",
        help="shell pattern on 'mmdet/<file>' (e.g. '*retinanet*')",
    )
    p.add_argument(
        "--path-only",
        action="store_true",
        help="print only the matching files' paths, one per line (for scripts)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ssld_zoo.cli._console import console
    from ssld_zoo.shipped import downstream_configs

    rows = [(f"{p.parent.name}/{p.name}", p) for p in downstream_configs()]
    rows = [(n, p) for n, p in rows if fnmatch.fnmatch(n, args.pattern)]
    if not rows:
        raise FileNotFoundError(f"no shipped downstream config matches {args.pattern!r}")
    if args.path_only:
        for _, path in rows:
            print(path)
        return 0
    table = Table(title="downstream configs (mim train mmdet|mmseg PATH)")
    table.add_column("config", no_wrap=True)
    table.add_column("path", overflow="fold")
    for name, path in rows:
        table.add_row(name, str(path))
    console.print(table)
    return 0
