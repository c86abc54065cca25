"""``ssld-zoo info NAME|FILE``: the model card of a registered name or an exported weight file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.table import Table

from ssld_zoo.cli._console import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show the model card of a model name or exported weights")
    p.add_argument("name", help="registered name (resnet50_vd_ssld) or a weights file")
    p.set_defaults(func=run)


def _row_value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return "\n".join(map(str, v)) if v and isinstance(v[0], str) else str(tuple(v))
    return "-" if v is None else str(v)


def run(args: argparse.Namespace) -> int:
    if os.path.exists(args.name):
        from ssld_zoo.weights.files import sidecar_card

        card = sidecar_card(Path(args.name))
        if card is None:
            raise FileNotFoundError(f"{args.name} has no model card ({args.name}.json)")
        info = {"name": card.name, "architecture": card.arch, "weights": card.to_dict()}
    else:
        from ssld_zoo.api import model_info

        info = model_info(args.name)
    table = Table(title=f"model card: {info['name']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    weights = info.pop("weights")
    for key, value in info.items():
        table.add_row(key, _row_value(value))
    if weights is None:
        table.add_row("weights", "none published (pretrained=False)")
    else:
        for key, value in weights.items():
            if key == "transform":
                for tk, tv in value.items():
                    table.add_row(f"eval {tk}", _row_value(tv))
            elif key not in ("arch", "name"):
                table.add_row(key, _row_value(value))
    console.print(table)
    return 0
