"""``ssld-zoo cache list|clear|dir``: inspect and clean the weight cache."""
from __future__ import annotations

import argparse
import sys

from rich.table import Table

from ssld_zoo.cli._console import console, err_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="list or clear cached weight files")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION")
    lp = csub.add_parser("list", help="list cached downloads and converted weights")
    lp.set_defaults(func=run_list)
    cp = csub.add_parser("clear", help="delete cached files (all, or those matching PATTERN)")
    cp.add_argument("pattern", nargs="?",
                    help="shell pattern on file or weight names, e.g. 'resnet50_vd*'")
    cp.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    cp.add_argument("--forget-hashes", action="store_true",
                    help="also forget the sha256 recorded at first download (by default a "
                         "re-download must match it)")
    cp.set_defaults(func=run_clear)
    dp = csub.add_parser("dir", help="print the cache directory")
    dp.set_defaults(func=lambda args: console.print(str(_hub().cache_dir()), highlight=False))
    p.set_defaults(func=run_list)  # `ssld-zoo cache` alone lists


def _hub():
    from ssld_zoo.weights import hub
    return hub


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _count(entries: list) -> str:
    return f"{len(entries)} file{'' if len(entries) == 1 else 's'}"


def _table(entries, title: str) -> Table:
    table = Table(title=title)
    for col in ("kind", "file", "weights", "size", "sha256"):
        # The short columns never wrap; long file/weight names fold instead.
        table.add_column(col, justify="right" if col == "size" else "left", overflow="fold",
                         no_wrap=col in ("kind", "size", "sha256"))
    for e in entries:
        table.add_row(e.kind, e.name, ", ".join(e.weights) or "-", _size(e.size),
                      e.sha256[:10] if e.sha256 else "-")
    return table


def run_list(args: argparse.Namespace) -> int:
    hub = _hub()
    entries = hub.cache_entries()
    root = hub.cache_dir()
    if not entries:
        console.print(f"the cache {root} is empty", highlight=False)
        return 0
    total = sum(e.size for e in entries)
    console.print(_table(entries, f"{root} ({_count(entries)}, {_size(total)})"))
    return 0


def run_clear(args: argparse.Namespace) -> int:
    hub = _hub()
    entries = hub.find_entries(args.pattern)
    if not entries:
        what = f"matching {args.pattern!r} " if args.pattern else ""
        console.print(f"no cached files {what}in {hub.cache_dir()}", highlight=False)
        return 0
    total = sum(e.size for e in entries)
    console.print(_table(entries, f"to delete: {_count(entries)}, {_size(total)}"))
    if not args.yes:
        if not sys.stdin.isatty():
            err_console.print("[bold red]error:[/] not deleting without confirmation: "
                              "pass --yes")
            return 1
        from rich.prompt import Confirm
        if not Confirm.ask("delete these files?", console=console, default=False):
            console.print("nothing deleted")
            return 1
    removed = hub.clear_cache(args.pattern, forget_hashes=args.forget_hashes)
    console.print(f"[green]deleted[/] {_count(removed)} ({_size(sum(e.size for e in removed))})")
    return 0
