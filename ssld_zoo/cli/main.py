"""Entry point of ``ssld-zoo``: finds every subcommand module in this package and dispatches.

A subcommand module defines ``add_parser(subparsers)``, which adds its parser and sets
``func=callable(args) -> int | None`` as the default. Adding a subcommand is adding a file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

import ssld_zoo.cli as cli_pkg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssld-zoo",
        description="PaddleClas SSLD backbones in PyTorch, and SSLD distillation.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.import_module('ssld_zoo').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if mod.name in ("main",) or mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{cli_pkg.__name__}.{mod.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ssld_zoo.cli._console import console_error
    try:
        return int(args.func(args) or 0)
    except (KeyError, ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        console_error(e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
