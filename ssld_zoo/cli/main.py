"""Entry point of ``ssld-zoo``: finds every subcommand module in this package and dispatches.

A subcommand module ``foo_bar.py`` defines ``add_parser(subparsers)``, which adds the parser
of command ``foo-bar`` and sets ``func=callable(args) -> int | None`` as the default. Adding a
subcommand is adding a file.

Only the module of the command that runs is imported (``ssld-zoo list`` never imports
mmengine); ``ssld-zoo --help`` imports them all, and a command whose module needs an extra that
is not installed is still listed and says which extra to install.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

import ssld_zoo.cli as cli_pkg

# The optional dependency each extra brings (pyproject.toml), for the message a command gives
# when its own is missing.
EXTRA_OF_MODULE = {
    "mmengine": "train",
    "sklearn": "demo",
    "matplotlib": "demo",
    "onnx": "export",
    "onnxruntime": "export",
    "onnxscript": "export",
    "mmdet": "det",
    "mmseg": "seg",
    "mmcv": "det,seg",
}


def command_modules() -> dict[str, str]:
    """Command name (``to-timm``) -> module name (``to_timm``) of every subcommand."""
    return {
        m.name.replace("_", "-"): m.name
        for m in pkgutil.iter_modules(cli_pkg.__path__)
        if m.name != "main" and not m.name.startswith("_")
    }


def missing_extra_message(command: str, error: ModuleNotFoundError) -> str | None:
    """``ssld-zoo COMMAND needs ...``, when ``error`` is a missing optional dependency."""
    top = (error.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return (
        f"ssld-zoo {command} needs {top}, which is not installed: pip install 'ssld-zoo[{extra}]'"
    )


def _add_unavailable(sub: argparse._SubParsersAction, command: str, message: str) -> None:
    p = sub.add_parser(command, help=f"(unavailable: {message})", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=lambda args: _fail(message))


def _fail(message: str) -> int:
    from ssld_zoo.cli._console import console_error

    console_error(RuntimeError(message))
    return 1


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``ssld-zoo`` parser, with every subcommand, or only the command ``only``."""
    parser = argparse.ArgumentParser(
        prog="ssld-zoo", description="PaddleClas SSLD backbones in PyTorch, and SSLD distillation."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {importlib.import_module('ssld_zoo').__version__}",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command, module_name in sorted(command_modules().items()):
        if only is not None and command != only:
            continue
        try:
            module = importlib.import_module(f"{cli_pkg.__name__}.{module_name}")
            if hasattr(module, "add_parser"):
                module.add_parser(sub)  # some take argparse actions from mmengine
        except ModuleNotFoundError as e:
            message = missing_extra_message(command, e)
            if message is None:
                raise
            _add_unavailable(sub, command, message)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first non-option word), if it is one."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in command_modules() else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(argv)
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ssld_zoo.cli._console import console_error

    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as e:
        message = missing_extra_message(args.command, e)
        if message is None:
            raise
        console_error(RuntimeError(message))
        return 1
    except (KeyError, ValueError, FileNotFoundError, RuntimeError, OSError) as e:
        console_error(e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
