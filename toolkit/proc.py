"""The one place toolkit starts outside programs (debootstrap, tar, pip-tools, pip, git)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from toolkit.errors import UserError

if TYPE_CHECKING:
    from toolkit.interrupt import Presses

# Seconds a program's leftover processes (its group, once the program itself has ended) get
# before they are stopped: to finish their output, not to go on working.
LEFTOVER_GRACE = 2.0


@dataclass(frozen=True)
class Result:
    """How a program ended and the tail of what it printed."""

    argv: tuple[str, ...]
    returncode: int
    tail: tuple[str, ...]  # last lines of stdout+stderr

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def require(program: str, install_hint: str) -> str:
    """The full path of `program`, or a UserError saying how to install it."""
    import shutil  # not at the top: with bz2 and lzma, ~3 ms of every run's record

    found = shutil.which(program)
    if not found:
        raise UserError(f"{program} is not installed", hint=install_hint)
    return found


def run(
    argv: Sequence[str],
    *,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    tail_lines: int = 30,
    die_with_parent: bool = False,
) -> Result:
    """Run a program to completion, appending its output to `log` and passing lines to `on_line`.

    The child runs in its own process group so Ctrl-C reaches toolkit first, which then stops it.
    With `die_with_parent` (Linux) it is also stopped when toolkit itself is killed (SIGKILL).
    """
    tail: list[str] = []
    log_file = log.open("a", encoding="utf-8") if log else None
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=_parent_death_signal(os.getpid()) if die_with_parent else None,
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if log_file:
                    log_file.write(line)
                tail.append(line.rstrip("\n"))
                del tail[:-tail_lines]
                if on_line:
                    on_line(line.rstrip("\n"))
            returncode = proc.wait()
        except BaseException:
            from toolkit import interrupt

            with interrupt.held() as again:  # Ctrl-C again moves on to SIGKILL, never past it
                _stop_group(proc, (signal.SIGTERM, signal.SIGKILL), again=again)
            raise
    finally:
        if log_file:
            log_file.close()
    return Result(tuple(argv), returncode, tuple(tail))


def output(argv: Sequence[str], *, cwd: Path | None = None) -> str | None:
    """Stdout of a quick query program, or None when it is missing or fails."""
    found = output_bytes(argv, cwd=cwd)
    return None if found is None else found.decode(errors="replace")


def output_bytes(
    argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> bytes | None:
    """Stdout of a quick query program as it wrote it, or None when it is missing or fails."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, cwd=cwd, env=env, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _parent_death_signal(parent: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when toolkit dies; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # toolkit died before the signal was armed
            os._exit(1)

    return arm


def stream(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    on_stop: Callable[[str], None] | None = None,
    pass_fds: Sequence[int] = (),
) -> tuple[int | None, bool]:
    """Run a program with its stdout and stderr passed on live; returns (exit code, interrupted).

    Ctrl-C, SIGTERM or SIGHUP stops the program (SIGINT to its process group, then SIGTERM,
    then SIGKILL). `pass_fds`: files the program holds open too (locks it then holds as long
    as it runs, even after toolkit).
    """
    from toolkit import interrupt
    from toolkit.pump import Pump

    def chunks(
        pipe: IO[bytes], sink: Callable[[bytes], None]
    ) -> Iterator[tuple[Callable[[bytes], None], bytes]]:
        for chunk in iter(lambda: pipe.read1(65536), b""):  # type: ignore[attr-defined]
            yield sink, chunk

    # Ctrl-C (SIGTERM, SIGHUP alike) is held for the program's whole life, and acted on
    # between short waits: a KeyboardInterrupt could land anywhere (in the start, a second one
    # inside the handling of the first) and leave the program running after toolkit ended.
    with interrupt.held() as pressed:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            Pump(chunks(proc.stdout, on_stdout), "toolkit-stdout"),
            Pump(chunks(proc.stderr, on_stderr), "toolkit-stderr"),
        ]
        try:
            for pump in pumps:
                pump.start()
            code = _waited(proc, pressed)
            if code is None:  # Ctrl-C; each further press moves on to the next signal
                _stop_group(proc, again=pressed, on_stop=on_stop)
                for pump in pumps:
                    pump.wait(5)  # what it printed on its way out
                return proc.poll(), True  # how it ended: -2 after KeyboardInterrupt
            # The program has ended, and the run with it, as a container ends with its
            # command: what it left running in its process group (a server started with `&`,
            # a worker that outlives it) gets LEFTOVER_GRACE to finish, then is stopped. Such
            # a process held the output open, and the run went on until it ended, if ever.
            if not _group_ends(proc, LEFTOVER_GRACE, skipped=pressed.is_set):
                _stop_group(proc, (signal.SIGTERM, signal.SIGKILL), again=pressed)
            for pump in pumps:  # the output of a process outside the group is not waited for
                pump.wait(LEFTOVER_GRACE)
        finally:
            # Output that comes after stream() has returned (from a process outside the group,
            # which nothing stops) is read and dropped: the sinks may be closed by then.
            for pump in pumps:
                pump.returned = True
                pump.close()
    return code, pressed.is_set()


def _waited(proc: subprocess.Popen[Any], pressed: Presses) -> int | None:
    """proc.wait() in waits of 0.2 s at most, between which Ctrl-C is looked for (None once
    it was pressed). Short waits also let a Ctrl-C that the kernel handed to another thread of
    toolkit reach the main thread. Linux says when the program ends through a pidfd; elsewhere
    Popen.wait(timeout) polls, and sees the end up to 50 ms late."""
    import select

    try:
        ended = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux, or before 5.3
        while not pressed.is_set():
            with contextlib.suppress(subprocess.TimeoutExpired):
                return proc.wait(timeout=0.2)
        return None
    try:
        while not select.select([ended], [], [], 0.2)[0]:
            if pressed.is_set():
                return None
    finally:
        os.close(ended)
    return proc.wait()


def _stop_group(
    proc: subprocess.Popen[Any],
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL),
    again: Presses | None = None,
    on_stop: Callable[[str], None] | None = None,
) -> None:
    """`signals` to the program's process group, until no process of it is left (the
    program's own children included), each 10 s after the last (LEFTOVER_GRACE after the
    program itself ended); Ctrl-C again (counted in `again`) moves on to the next signal.
    `on_stop` hears what was sent and what comes next, unless the program ended at once."""
    from toolkit.interrupt import stopping

    named = [(signal.Signals(sig).name, 10.0) for sig in signals]
    for index, sig in enumerate(signals):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):  # none left; none toolkit may signal
            return
        seen = again.count if again else 0

        def skipped(seen: int = seen) -> bool:
            return again is not None and again.count > seen

        if on_stop is not None and not _group_ends(proc, seconds=0.3, skipped=skipped):
            on_stop(stopping(named, index, again.first if again else None))
        if _group_ends(proc, seconds=10, skipped=skipped):
            return


def _group_ends(
    proc: subprocess.Popen[Any], seconds: float, skipped: Callable[[], bool] = lambda: False
) -> bool:
    """Whether every process of the program's group is gone within `seconds`, and within
    LEFTOVER_GRACE of the program's own end (no once `skipped()`: Ctrl-C)."""
    import time

    deadline = time.monotonic() + seconds
    program_ended = False
    while time.monotonic() < deadline and not skipped():
        if not program_ended and proc.poll() is not None:  # reaped; init reaps orphans
            program_ended = True
            deadline = min(deadline, time.monotonic() + LEFTOVER_GRACE)
        if not _group_runs(proc.pid):
            return True
        time.sleep(0.05)
    return False


def _group_runs(group: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: an init that is slow
    to reap orphans (as in some containers) kept them for seconds, each "still running"."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member that changed its user: it exists
        pass
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc (macOS): every member counts
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
                state, _, pgrp = stat.read().rpartition(b")")[2].split()[:3]
        except (OSError, ValueError):  # gone meanwhile
            continue
        if int(pgrp) != group:
            continue
        if state not in (b"Z", b"X"):
            return True
        # A process whose main thread ended shows as a zombie while its other threads run.
        with contextlib.suppress(OSError):
            if len(os.listdir(f"/proc/{entry}/task")) > 1:
                return True
    return False
