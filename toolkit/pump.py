"""An experiment's output passed on live by a thread, from a pipe (native) or the engine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

Sink = Callable[[bytes], None]


class Pump(threading.Thread):
    """Hands each (sink, chunk) of `chunks` to its sink until they end (`finished`). An error
    of the stream ends it and is kept in `error`. Once `returned` is set, chunks are read and
    dropped: the sinks may be closed by then.

    Waited for through `finished`, not join(): in CPython 3.11 a join() that Ctrl-C cuts short
    marks the thread as ended while it still runs, and a later join() returns at once.
    """

    def __init__(self, chunks: Iterable[tuple[Sink, bytes]], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.chunks = chunks
        self.error: OSError | ValueError | None = None
        self.finished = threading.Event()
        self.returned = threading.Event()

    def run(self) -> None:
        try:
            for sink, chunk in self.chunks:
                if not self.returned.is_set():
                    sink(chunk)
        except (OSError, ValueError) as exc:  # e.g. the stream closed under it
            self.error = exc
        finally:
            self.finished.set()
