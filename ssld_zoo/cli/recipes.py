"""``ssld-zoo recipes``: the distillation recipes, one line each."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("recipes", help="list the distillation recipes",
                              description="List the recipes `ssld-zoo distill` accepts by name "
                                          "(from $SSLD_ZOO_RECIPES and the repository's recipes/).")
    p.add_argument("--paths", action="store_true", help="show each recipe's file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table
    from ssld_zoo.cli._console import console
    from ssld_zoo.distill.config import list_recipes, recipe_dirs

    found = list_recipes()
    if not found:
        console.print("no recipes found; looked in: "
                      + (", ".join(map(str, recipe_dirs())) or "(no recipe folder exists)"))
        return 1
    table = Table(title="ssld-zoo distill recipes")
    table.add_column("recipe", style="bold")
    table.add_column("description")
    if args.paths:
        table.add_column("file")
    for name, desc, path in found:
        table.add_row(name, desc, *([str(path)] if args.paths else []))
    console.print(table)
    return 0
