"""``ssld-zoo list [PATTERN]``: the registered models as a table."""

from __future__ import annotations

import argparse

from rich.table import Table

from ssld_zoo.cli._console import console
from ssld_zoo.registry import get_arch, get_weights, list_models


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models and weights")
    p.add_argument("pattern", nargs="?", help="shell pattern, e.g. '*_ssld' or 'resnet*'")
    p.add_argument("--pretrained", action="store_true", help="only names with published weights")
    p.set_defaults(func=run)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def run(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, pretrained=True if args.pretrained else None)
    table = Table(title=f"ssld-zoo models ({len(names)})")
    for col in ("name", "architecture", "weights", "top-1", "baseline", "teacher"):
        table.add_column(
            col,
            justify="right" if col in ("top-1", "baseline") else "left",
            no_wrap=col == "name",
            overflow="fold",
        )
    for name in names:
        card = get_weights(name)
        if card is None:
            table.add_row(name, get_arch(name).paddle_name, "-", "-", "-", "-")
        else:
            table.add_row(
                name,
                get_arch(name).paddle_name,
                "SSLD" if card.is_ssld else "baseline",
                _fmt(card.top1),
                _fmt(card.baseline_top1),
                card.teacher or "-",
            )
    console.print(table)
    return 0
