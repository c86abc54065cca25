"""``ssld-zoo cache list|clear|forget|dir``: inspect and clean the weight cache."""

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
    cp.add_argument(
        "pattern", nargs="?", help="shell pattern on file or weight names, e.g. 'resnet50_vd*'"
    )
    cp.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    cp.add_argument(
        "--keep-hashes",
        action="store_true",
        help="keep the sha256 recorded for the deleted downloads, so that a "
        "re-download must be the very same file (by default they go too)",
    )
    cp.add_argument("--forget-hashes", action="store_true", help=argparse.SUPPRESS)  # former
    cp.set_defaults(func=run_clear)
    fp = csub.add_parser(
        "forget",
        help="forget the sha256 recorded for downloads matching "
        "PATTERN (e.g. after the file changed upstream)",
    )
    fp.add_argument("pattern", help="shell pattern on file or weight names")
    fp.set_defaults(func=run_forget)
    dp = csub.add_parser("dir", help="print the cache directory")
    dp.set_defaults(func=lambda args: console.print(str(_cache().cache_dir()), highlight=False))
    p.set_defaults(func=run_list)  # `ssld-zoo cache` alone lists


def _cache():
    from ssld_zoo.weights import cache

    return cache


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
        table.add_column(
            col,
            justify="right" if col == "size" else "left",
            overflow="fold",
            no_wrap=col in ("kind", "size", "sha256"),
        )
    for e in entries:
        table.add_row(
            e.kind,
            e.name,
            ", ".join(e.weights) or "-",
            _size(e.size),
            e.sha256[:10] if e.sha256 else "-",
        )
    return table


def run_list(args: argparse.Namespace) -> int:
    cache = _cache()
    entries = cache.cache_entries()
    root = cache.cache_dir()
    if not entries:
        console.print(f"the cache {root} is empty", highlight=False)
        return 0
    total = sum(e.size for e in entries)
    console.print(_table(entries, f"{root} ({_count(entries)}, {_size(total)})"))
    return 0


def run_clear(args: argparse.Namespace) -> int:
    cache = _cache()
    entries = cache.find_entries(args.pattern)
    if args.keep_hashes:
        entries = [e for e in entries if e.kind != "hash"]
    if not entries:
        what = f"matching {args.pattern!r} " if args.pattern else ""
        console.print(f"no cached files {what}in {cache.cache_dir()}", highlight=False)
        return 0
    total = sum(e.size for e in entries)
    console.print(_table(entries, f"to delete: {_count(entries)}, {_size(total)}"))
    if not args.yes:
        if not sys.stdin.isatty():
            err_console.print("[bold red]error:[/] not deleting without confirmation: pass --yes")
            return 1
        from rich.prompt import Confirm

        if not Confirm.ask("delete these files?", console=console, default=False):
            console.print("nothing deleted")
            return 1
    removed = cache.clear_cache(args.pattern, keep_hashes=args.keep_hashes)
    console.print(f"[green]deleted[/] {_count(removed)} ({_size(sum(e.size for e in removed))})")
    return 0


def run_forget(args: argparse.Namespace) -> int:
    gone = _cache().forget_hashes(args.pattern)
    if not gone:
        console.print(f"no recorded hash matches {args.pattern!r}", highlight=False)
        return 0
    console.print(f"[green]forgot[/] the recorded sha256 of {', '.join(gone)}", highlight=False)
    return 0
