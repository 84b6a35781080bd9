"""Ctrl-C, and the signals that stop toolkit as it does, held back while a step must not be cut
short: the signal is counted, not raised."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# What stops toolkit as Ctrl-C does (SIGINT): SIGTERM, which `timeout`, Slurm's scancel, a
# cancelled CI job and `kill` send, and SIGHUP, from a terminal or ssh session that went away.
# Left to their default action, each ended toolkit on the spot: the container ran on, unattended,
# and the run had no record.
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_first: int | None = None  # the first of STOPS that this process received
_settled = False  # a run is over and recorded: the stop signals are ignored from then on


class Presses:
    """Ctrl-C presses (and SIGTERM, SIGHUP) counted by a signal handler. A plain counter, not a
    threading.Event: a second press handled in the middle of the first one's Event.set() would
    wait forever on the event's own lock."""

    def __init__(self) -> None:
        self.count = 0
        self.first: int | None = None  # the signal of the first press

    def is_set(self) -> bool:
        """Whether Ctrl-C was pressed (or SIGTERM, SIGHUP received) at least once."""
        return self.count > 0


def _heard(signum: int) -> None:
    global _first
    if _first is None:
        _first = signum


def exit_code() -> int:
    """What toolkit exits with once stopped: 128 + the signal, as a shell says it (130 for
    Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""
    return 128 + (_first or signal.SIGINT)


def said() -> str:
    """How a stop is named: "interrupted" (Ctrl-C), "interrupted by SIGTERM"."""
    if _first is None or _first == signal.SIGINT:
        return "interrupted"
    return f"interrupted by {signal.Signals(_first).name}"


def install() -> None:
    """SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, so that they take Ctrl-C's
    way out (the container stopped, the record written). One that is ignored stays ignored:
    `nohup toolkit run` goes on when its terminal goes away."""

    def stop(signum: int, frame: object) -> None:
        _heard(signum)
        raise KeyboardInterrupt

    for sig in STOPS[1:]:
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, stop)


def settle() -> None:
    """The run is over and its record written: from now on Ctrl-C, SIGTERM and SIGHUP are
    ignored, as all that is left is saying how it went and exiting. (A signal then turned a
    succeeded run into "interrupted", exit 143.)"""
    global _settled
    _settled = True
    if threading.current_thread() is threading.main_thread():
        for sig in STOPS:
            signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def held() -> Iterator[Presses]:
    """Within the block, Ctrl-C (and SIGTERM, SIGHUP) is counted in the yielded Presses instead
    of raising KeyboardInterrupt or ending toolkit.

    Only the main thread receives signals and may change their handlers; elsewhere nothing is
    ever counted and nothing changes.
    """
    presses = Presses()
    if threading.current_thread() is not threading.main_thread():
        yield presses
        return

    def count(signum: int, frame: object) -> None:
        _heard(signum)
        if presses.first is None:
            presses.first = signum
        presses.count += 1

    previous: dict[signal.Signals, Callable[[int, Any], Any] | int | None] = {}
    try:
        for sig in STOPS:
            # a SIGTERM or SIGHUP ignored from the start (nohup) stays ignored
            if sig == signal.SIGINT or signal.getsignal(sig) != signal.SIG_IGN:
                previous[sig] = signal.signal(sig, count)
        yield presses
    finally:
        for stop, handler in previous.items():
            if _settled:  # see settle()
                signal.signal(stop, signal.SIG_IGN)
            elif stop == signal.SIGINT:
                signal.signal(stop, handler or signal.default_int_handler)
            else:  # None: one set outside Python
                signal.signal(stop, signal.SIG_DFL if handler is None else handler)


def stopping(signals: Sequence[tuple[str, float]], index: int, by: int | None = None) -> str:
    """What a stop has done and will do next: "stopping: SIGINT sent; SIGTERM in 10 s (Ctrl-C
    again sends it now)"; "stopping (SIGTERM received): ..." when a signal other than Ctrl-C's
    began it (`by`)."""
    name, grace = signals[index]
    other = "" if by in (None, signal.SIGINT) else signal.Signals(by).name
    said = f"stopping{f' ({other} received)' if other else ''}: {name} sent"
    if index + 1 < len(signals):
        after = signals[index + 1][0]
        said += f"; {after} in {grace:.0f} s ({other or 'Ctrl-C'} again sends it now)"
    return said
