"""``ssld-zoo to-timm NAME OUT.safetensors``: the older spelling of ``ssld-zoo to timm``."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ssld_zoo.cli.to import add_arguments

    p = sub.add_parser("to-timm", help="same as `ssld-zoo to timm`",
                       description="Same as `ssld-zoo to timm NAME OUT.safetensors`.")
    add_arguments(p, format_name="timm")
