"""The `toolkit` command. Its entry point stays light: the common form of `toolkit run` is parsed
without Typer (`launch`); every other command line goes to the Typer app (`app`).

This module imports nothing else at its top: all that loads does so inside `main`, where
Ctrl-C is an `error: interrupted` and exit 130, not a traceback (SIGTERM and SIGHUP alike: 143
and 129).
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from toolkit.config import Config


class Options:
    """Global options (--config, --debug), shared with every command (set as they are read)."""

    def __init__(self) -> None:
        self.config: Path | None = None
        self.debug = False

    def load(self) -> Config:
        from toolkit.config import load_config

        return load_config(self.config)

    def load_optional(self) -> Config | None:
        """The project config, or None without a toolkit.yaml (an explicit --config must exist)."""
        from toolkit.config import load_config, locate_config

        path = self.config or locate_config()
        return load_config(path) if path else None


_options = Options()


def options() -> Options:
    return _options


def main() -> None:
    """Entry point: run the command; turn our errors into messages and exit codes."""
    _standard_streams()
    try:
        _main()
    finally:
        # The process ends right after this. Frozen objects are left out of the collections
        # the interpreter runs while it shuts down: exiting takes ~3 ms instead of ~9 ms, a
        # tenth of what `toolkit run` adds to a short container (benchmarks/run.py). Objects
        # in reference cycles are then not finalized; toolkit closes what it opens with `with`.
        gc.freeze()


def _standard_streams() -> None:
    """fds 0, 1 and 2 open (on /dev/null where one was closed: `toolkit run ... 2>&-`), and
    sys.stdin, sys.stdout and sys.stderr usable. With fd 2 closed, the first file toolkit
    opened became fd 2: what it said went into that file, and the run failed silently."""
    import os

    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    # Python leaves a stream it found closed as None
    if sys.stdin is None:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115  # for the process's whole life
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(2, "w", errors="backslashreplace", closefd=False)  # noqa: SIM115


def _main() -> None:
    try:  # what the error handling below needs
        from toolkit import interrupt

        interrupt.install()  # SIGTERM and SIGHUP stop toolkit as Ctrl-C does
        from toolkit.cli import output
        from toolkit.errors import ToolkitError
    except KeyboardInterrupt:
        stopped = sys.modules.get("toolkit.interrupt")  # None: Ctrl-C came before it loaded
        sys.stderr.write(f"error: {stopped.said() if stopped else 'interrupted'}\n")
        sys.exit(stopped.exit_code() if stopped else 130)
    try:
        from toolkit.cli import launch  # in the try: Ctrl-C may come this early

        fast = launch.parse(sys.argv[1:])
        if fast is None:
            from toolkit.cli.app import app

            try:
                with output.kept_streams():
                    app()
            except SystemExit as exc:
                if _from_ctrl_c(exc):  # Typer turns Ctrl-C into a silent exit 130
                    output.error(interrupt.said())
                    sys.exit(interrupt.exit_code())  # 143 after SIGTERM
                raise
        else:
            _options.config, _options.debug = fast.config, fast.debug
            sys.exit(launch.run(fast))
    except ToolkitError as exc:
        _traceback_if_debug()
        output.error(exc.message, exc.hint)
        log = getattr(exc, "log", None)
        if log:
            output.error(f"full log: {log}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        output.error(interrupt.said())
        sys.exit(interrupt.exit_code())
    except Exception as exc:
        _traceback_if_debug()
        output.error(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="this is a toolkit bug; rerun with --debug and report the traceback",
        )
        sys.exit(70)


def _from_ctrl_c(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _traceback_if_debug() -> None:
    if _options.debug:
        import traceback

        traceback.print_exc()
