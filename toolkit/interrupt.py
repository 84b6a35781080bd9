"""Ctrl-C held back while a step must not be cut short: the press is noted, not raised."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def held() -> Iterator[threading.Event]:
    """Within the block, Ctrl-C sets the yielded event instead of raising KeyboardInterrupt.

    Only the main thread receives Ctrl-C and may change its handler; elsewhere the event is
    never set and nothing changes.
    """
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.set())
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous or signal.default_int_handler)
