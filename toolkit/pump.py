"""An experiment's output passed on live by a thread, from a pipe (native) or the engine."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable, Iterable

Sink = Callable[[bytes], None]


class Pump(threading.Thread):
    """Hands each (sink, chunk) of `chunks` to its sink until they end; an error of the stream
    ends it and is kept in `error`. Once `returned` is true, chunks are read and dropped: the
    sinks may be closed by then. `close()` when done with it.

    The main thread waits for it with `wait()`, a select() on a pipe the thread closes as it
    ends: no lock that Ctrl-C could break. In CPython 3.11 a KeyboardInterrupt inside
    Thread.join() marks the thread as ended while it still runs, and one inside Event.wait()
    can leave the event's lock taken or released twice.
    """

    def __init__(self, chunks: Iterable[tuple[Sink, bytes]], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.chunks = chunks
        self.error: OSError | ValueError | None = None
        self.returned = False
        self._ended_read, self._ended_write = os.pipe()

    def run(self) -> None:
        try:
            for sink, chunk in self.chunks:
                if not self.returned:
                    sink(chunk)
        except (OSError, ValueError) as exc:  # e.g. the stream closed under it
            self.error = exc
        finally:
            os.close(self._ended_write)  # the read end turns readable: ended
            self._ended_write = -1

    def wait(self, timeout: float | None) -> bool:
        """Whether the thread has ended, waiting up to `timeout` seconds (None: until then)."""
        if self._ended_read < 0:
            return True
        ready, _, _ = select.select([self._ended_read], [], [], timeout)
        return bool(ready)

    def close(self) -> None:
        """Let go of the pipe (both ends when the thread never started)."""
        if self.ident is None and self._ended_write >= 0:
            os.close(self._ended_write)
            self._ended_write = -1
        if self._ended_read >= 0:
            os.close(self._ended_read)
            self._ended_read = -1
