"""Everything toolkit prints goes through here: styled on a terminal, plain lines otherwise.

Off a terminal (logs, CI, pipes) nothing is styled, wrapped or cut, so lines stay greppable. A
line is styled with the terminal's own color codes (none under NO_COLOR or TERM=dumb); rich is
imported only for tables and live progress on a terminal: it takes ~30 ms to load, a tenth of a
short `toolkit run`.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}
_ANSI = {"green": "32", "yellow": "33", "red": "31", "dim": "2"}


@functools.cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(
        stderr=stderr, highlight=False, soft_wrap=True, width=None if stream.isatty() else 250
    )


def _print(stderr: bool, plain: str, styled: Callable[[], str] | None = None) -> None:
    """One line: `styled` on a terminal that takes colors, else `plain`."""
    stream = sys.stderr if stderr else sys.stdout
    with _unless_gone(stream):
        stream.write((styled() if styled and _colors(stream) else plain) + "\n")
        stream.flush()


def _colors(stream: TextIO) -> bool:
    # NO_COLOR set to anything but "" turns colors off (no-color.org), as rich reads it too
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _paint(text: str, style: str) -> str:
    return f"\x1b[{_ANSI[style]}m{text}\x1b[0m" if style in _ANSI else text


@contextmanager
def _unless_gone(stream: TextIO) -> Iterator[None]:
    """Writes to a stream that cannot take them any more go nowhere from then on: its reader
    has left (`toolkit run | head`), or its file is full. The command itself goes on (a run to
    its end, with its logs and record)."""
    try:
        yield
    except OSError as exc:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # what is still buffered is flushed there, at exit too
        os.close(devnull)
        if stream is not sys.stderr and not isinstance(exc, BrokenPipeError):
            # A reader that left asked for no more output; a full disk is news.
            with suppress(OSError):
                sys.stderr.write(
                    f"toolkit: cannot write to stdout ({exc.strerror}): the rest of it is dropped\n"
                )


class _Kept:
    """A standard stream whose writes follow `_unless_gone`, for what others print through it:
    Typer's help and usage (`toolkit --help | head` exited 1, `> /dev/full` was an internal
    error)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        with _unless_gone(self._stream):
            return self._stream.write(text)
        return len(text)  # dropped, as the reader asked or the disk forced

    def flush(self) -> None:
        with _unless_gone(self._stream):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def kept_streams() -> Iterator[None]:
    """stdout and stderr written as toolkit's own lines are, by whatever writes to them."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Kept(saved[0]), _Kept(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def info(message: str) -> None:
    _print(False, message)


def note(message: str) -> None:
    """Progress and side remarks: stderr, never mixed into a command's result."""
    _print(True, message)


def success(message: str, *, stderr: bool = False) -> None:
    """A command's result line; `stderr` where stdout carries something else (a run's output)."""
    _print(stderr, f"✓ {message}", lambda: f"{_paint('✓', 'green')} {message}")


def warn(message: str) -> None:
    _print(True, f"warning: {message}", lambda: f"{_paint('warning:', 'yellow')} {message}")


def error(message: str, hint: str | None = None) -> None:
    _print(True, f"error: {message}", lambda: f"{_paint('error:', 'red')} {message}")
    if hint:
        _print(True, f"  → {hint}", lambda: f"  {_paint('→', 'dim')} {hint}")


def status_line(status: str, name: str, detail: str, fix: str | None = None) -> None:
    style = _STYLE.get(status, "")
    _print(
        False,
        f"{status:>4}  {name:<16} {detail}",
        lambda: f"{_paint(f'{status:>4}', style)}  {name:<16} {detail}",
    )
    if fix and status != "ok":
        pad = f"{'':>6}{'':<16}"
        _print(False, f"{pad} fix: {fix}", lambda: f"{pad} {_paint(f'fix: {fix}', 'dim')}")


def passthrough(stream: TextIO) -> Callable[[bytes], None]:
    """A sink that writes an experiment's raw output bytes to our stdout or stderr, live."""

    def sink(chunk: bytes) -> None:
        with _unless_gone(stream):
            stream.buffer.write(chunk)
            stream.flush()

    return sink


def as_json(document: Any) -> None:
    with _unless_gone(sys.stdout):
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
        sys.stdout.flush()


@contextmanager
def progress(title: str) -> Iterator[Any]:
    """A live status line on a terminal, plain lines in CI; yields an update(text) function."""
    # stderr, so that --json and --markdown output on stdout stays clean
    if sys.stderr.isatty():
        with _console(True).status(_escape(title)) as live:
            yield lambda text: live.update(f"{_escape(title)} [dim]{_escape(text)}[/dim]")
    else:
        note(title)
        yield lambda text: note(f"  {text}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def table(headers: list[str], rows: list[list[str]]) -> None:
    """A table on a terminal; tab-free aligned columns otherwise."""
    if not sys.stdout.isatty():
        widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
        with _unless_gone(sys.stdout):
            for row in (headers, *rows):
                cells = zip(row, widths, strict=True)
                sys.stdout.write(
                    "  ".join(cell.ljust(width) for cell, width in cells).rstrip() + "\n"
                )
            sys.stdout.flush()
        return
    from rich.table import Table

    grid = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        grid.add_row(*(_escape(cell) for cell in row))
    _console(False).print(grid)
