"""``ssld-zoo download NAME [NAME...]``: fetch, validate, convert and cache published weights."""

from __future__ import annotations

import argparse

from rich.table import Table

from ssld_zoo.cli._console import console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="download and convert published weights into the cache",
        description="Download registered weights (names or shell patterns such "
        "as '*_ssld'), check them (hash, keys, shapes, dtypes, "
        "values), convert them and cache the result, so that later "
        "loads need no network. SSLD_ZOO_MIRROR points every "
        "download at a mirror server or folder.",
    )
    p.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help="weight name (resnet50_vd_ssld) or pattern ('*_ssld')",
    )
    p.set_defaults(func=run)


def _expand(names: list[str]) -> list[str]:
    """Names with published weights, patterns expanded, in the given order, without repeats."""
    from ssld_zoo.registry import get_weights, list_models

    out: list[str] = []
    for name in names:
        if any(c in name for c in "*?["):
            found = list_models(name, pretrained=True)
            if not found:
                raise KeyError(
                    f"no weights match {name!r}; `ssld-zoo list --pretrained` shows "
                    "the names with published weights"
                )
        else:
            if get_weights(name) is None:  # raises a helpful KeyError for unknown names
                raise ValueError(f"{name!r} has no published weights to download")
            found = [name]
        out += [n for n in found if n not in out]
    return out


def run(args: argparse.Namespace) -> int:
    from ssld_zoo.registry import get_weights
    from ssld_zoo.weights.cache import converted_path
    from ssld_zoo.weights.settings import cache_dir
    from ssld_zoo.weights.source import load_weights

    names = _expand(args.names)
    table = Table(title="cached weights", caption=f"converted files: {cache_dir() / 'converted'}")
    for col in ("name", "file", "converted size"):
        table.add_column(
            col,
            justify="right" if col == "converted size" else "left",
            no_wrap=col != "converted size",
            overflow="fold",
        )
    for name in names:
        console.print(f"[bold]{name}[/]")
        card = get_weights(name)
        load_weights(card, card.arch)  # obtains, validates, converts and caches
        conv = converted_path(card)
        size = conv.stat().st_size if conv.exists() else 0
        table.add_row(name, card.file_name, f"{size / 2**20:.1f} MiB")
    console.print(table)
    return 0
