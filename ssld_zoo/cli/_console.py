"""Shared rich console for the CLI (rich output lives only under ssld_zoo/cli/)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def console_error(e: BaseException) -> None:
    # KeyError wraps its message in quotes; show the text itself.
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    # A file name that is not UTF-8 holds surrogates no console can encode: show its bytes.
    try:
        msg = str(msg).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        msg = str(msg).encode("utf-8", "backslashreplace").decode("utf-8")
    err_console.print(f"[bold red]error:[/] {escape(str(msg))}", highlight=False, soft_wrap=True)
