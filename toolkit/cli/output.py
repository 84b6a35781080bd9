"""Everything toolkit prints goes through here (rich on a terminal, plain text otherwise)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console

# Off a terminal (logs, CI, pipes) nothing is wrapped or cut: lines stay greppable.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 250)
err = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 250
)

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def info(message: str) -> None:
    out.print(message, markup=False)


def note(message: str) -> None:
    """Progress and side remarks: stderr, never mixed into a command's result."""
    err.print(message, markup=False, soft_wrap=True)


def success(message: str) -> None:
    out.print(f"[green]✓[/green] {_escape(message)}")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {_escape(message)}")


def error(message: str, hint: str | None = None) -> None:
    err.print(f"[red]error:[/red] {_escape(message)}")
    if hint:
        err.print(f"  [dim]→[/dim] {_escape(hint)}")


def status_line(status: str, name: str, detail: str, fix: str | None = None) -> None:
    style = _STYLE.get(status, "")
    out.print(f"[{style}]{status:>4}[/{style}]  {_escape(name):<16} {_escape(detail)}")
    if fix and status != "ok":
        out.print(f"{'':>6}{'':<16} [dim]fix: {_escape(fix)}[/dim]")


def passthrough(stream: TextIO) -> Callable[[bytes], None]:
    """A sink that writes an experiment's raw output bytes to our stdout or stderr, live."""

    def sink(chunk: bytes) -> None:
        stream.buffer.write(chunk)
        stream.flush()

    return sink


def as_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")


@contextmanager
def progress(title: str) -> Iterator[Any]:
    """A live status line on a terminal, plain lines in CI; yields an update(text) function."""
    # stderr, so that --json and --markdown output on stdout stays clean
    if err.is_terminal:
        with err.status(_escape(title)) as live:
            yield lambda text: live.update(f"{_escape(title)} [dim]{_escape(text)}[/dim]")
    else:
        note(title)
        yield lambda text: note(f"  {text}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def table(headers: list[str], rows: list[list[str]]) -> None:
    """A table on a terminal; tab-free aligned columns otherwise."""
    from rich.table import Table

    grid = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        grid.add_row(*(_escape(cell) for cell in row))
    out.print(grid)
