"""``ssld-zoo to-timm NAME OUT.safetensors``: the older spelling of ``ssld-zoo to timm``."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    import textwrap

    from ssld_zoo.cli.to import add_arguments
    from ssld_zoo.interop import TIMM_EQUIVALENTS

    pairs = "  ".join(f"{a}->{t}" for a, t in sorted(TIMM_EQUIVALENTS.items()))
    p = sub.add_parser(
        "to-timm",
        help="same as `ssld-zoo to timm`",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Same as `ssld-zoo to timm NAME OUT.safetensors`.",
        epilog="architectures with an exact timm equivalent (ours->timm):\n"
        + textwrap.fill(
            pairs, width=96, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
        ),
    )
    add_arguments(p, format_name="timm")
