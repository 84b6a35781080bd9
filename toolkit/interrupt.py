"""Ctrl-C held back while a step must not be cut short: the press is counted, not raised."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence


class Presses:
    """Ctrl-C presses counted by a signal handler. A plain counter, not a threading.Event: a
    second press handled in the middle of the first one's Event.set() would wait forever on
    the event's own lock."""

    def __init__(self) -> None:
        self.count = 0

    def is_set(self) -> bool:
        """Whether Ctrl-C was pressed at least once."""
        return self.count > 0


@contextlib.contextmanager
def held() -> Iterator[Presses]:
    """Within the block, Ctrl-C is counted in the yielded Presses instead of raising
    KeyboardInterrupt.

    Only the main thread receives Ctrl-C and may change its handler; elsewhere nothing is
    ever counted and nothing changes.
    """
    presses = Presses()
    if threading.current_thread() is not threading.main_thread():
        yield presses
        return

    def count(signum: int, frame: object) -> None:
        presses.count += 1

    previous = signal.signal(signal.SIGINT, count)
    try:
        yield presses
    finally:
        signal.signal(signal.SIGINT, previous or signal.default_int_handler)


def stopping(signals: Sequence[tuple[str, float]], index: int) -> str:
    """What a stop has done and will do next: "stopping: SIGINT sent; SIGTERM in 10 s (Ctrl-C
    again sends it now)"."""
    name, grace = signals[index]
    said = f"stopping: {name} sent"
    if index + 1 < len(signals):
        after = signals[index + 1][0]
        said += f"; {after} in {grace:.0f} s (Ctrl-C again sends it now)"
    return said
