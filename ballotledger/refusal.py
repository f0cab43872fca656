"""How every command stops on bad input: one line saying why, no traceback, and the exit
code (2 for input refused) for the caller to raise."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape


def refusal(console: Console, title: str | None, reason: BaseException | str, code: int = 2) -> typer.Exit:
    """Print ``title: reason`` (or the reason alone) on ``console``, its stdout or stderr
    as the command's other output goes; the text is printed as given, never as markup."""
    text = escape(str(reason))
    line = f"[red]{text}[/]" if title is None else f"[red]{escape(title)}[/]: {text}"
    console.print(line, soft_wrap=True, highlight=False)
    return typer.Exit(code)
