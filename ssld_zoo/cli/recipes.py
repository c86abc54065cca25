"""``ssld-zoo recipes [NAME]``: the distillation recipes, one line each; with a name, that
recipe fully resolved (its ``_base_`` files merged, checked): a dry run
of what ``ssld-zoo distill NAME`` would train."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    from mmengine.config import DictAction

    p = subparsers.add_parser(
        "recipes",
        help="list the distillation recipes, or show one",
        description="List the recipes `ssld-zoo distill` accepts by name "
        "(from $SSLD_ZOO_RECIPES and those shipped with "
        "ssld-zoo); with NAME, print that recipe resolved "
        "and validated, without training.",
    )
    p.add_argument("name", nargs="?", help="a recipe name or file to resolve and check")
    p.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        help="overrides, as for ssld-zoo distill (key=value ...)",
    )
    p.add_argument("--paths", action="store_true", help="show each recipe's file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ssld_zoo.cli._console import console
    from ssld_zoo.distill.recipes import list_recipes, load_recipe, recipe_dirs

    if args.name:
        recipe = load_recipe(args.name, args.cfg_options)
        console.print(
            f"[bold]{recipe.filename}[/]: valid; the Runner config it resolves to "
            f"(its _base_ files merged):"
        )
        console.print(recipe.pretty_text, markup=False, highlight=False)
        return 0
    found = list_recipes()
    if not found:
        console.print(
            "no recipes found; looked in: "
            + (", ".join(map(str, recipe_dirs())) or "(no recipe folder exists)")
        )
        return 1
    table = Table(title="ssld-zoo distill recipes")
    table.add_column("recipe", style="bold", no_wrap=True)
    table.add_column("description")
    if args.paths:
        table.add_column("file", overflow="fold")
    for name, desc, path in found:
        table.add_row(name, desc, *([str(path)] if args.paths else []))
    console.print(table)
    return 0
