"""proc.stream: a program's run ends with the program, as a container's does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import running_processes
from toolkit import proc


def stream(tmp_path: Path, script: str) -> tuple[int | None, str, float]:
    out: list[bytes] = []
    started = time.monotonic()
    code, interrupted = proc.stream(
        ["bash", "-c", script],
        env=os.environ,
        cwd=tmp_path,
        on_stdout=out.append,
        on_stderr=out.append,
    )
    assert not interrupted
    return code, b"".join(out).decode(), time.monotonic() - started


def test_what_the_program_leaves_running_is_stopped_when_it_ends(tmp_path: Path) -> None:
    # `sleep` holds the output open: the run used to last as long as it did (forever for a
    # server started with `&`)
    code, out, seconds = stream(tmp_path, "sleep 30 & echo $!; exit 3")
    assert code == 3
    assert seconds < proc.LEFTOVER_GRACE + 5
    assert running_processes(pid=int(out.split()[0])) == [], "the leftover outlived the run"


def test_leftovers_that_end_within_the_grace_are_heard_out(tmp_path: Path) -> None:
    code, out, _ = stream(tmp_path, "(sleep 0.5; echo late) & echo early")
    assert code == 0 and out.split() == ["early", "late"]


def test_a_leftover_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    stubborn = "bash -c 'trap \"\" TERM; echo $$; while :; do sleep 0.1; done'"
    code, out, seconds = stream(tmp_path, f"{stubborn} & sleep 0.2")
    assert code == 0
    assert seconds < 2 * proc.LEFTOVER_GRACE + 5
    assert running_processes(pid=int(out.split()[0])) == []


MAIN_THREAD_EXITS = """
import ctypes, os, signal, threading, time
def beat():
    for _ in range(600):
        print("beat", flush=True)
        time.sleep(0.1)
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("PID", os.getpid(), flush=True)
threading.Thread(target=beat).start()
ctypes.CDLL(None).pthread_exit(None)  # /proc says zombie; its other thread runs on
"""


def test_a_leftover_whose_main_thread_ended_is_still_stopped(tmp_path: Path) -> None:
    (tmp_path / "leftover.py").write_text(MAIN_THREAD_EXITS)
    code, out, seconds = stream(tmp_path, f"{sys.executable} leftover.py & sleep 0.5")
    (pid,) = [line.split()[1] for line in out.splitlines() if line.startswith("PID")]
    assert code == 0 and "beat" in out
    assert seconds < 2 * proc.LEFTOVER_GRACE + 5
    assert running_processes(pid=int(pid)) == [], "the leftover outlived the run"


def test_output_after_stream_returned_is_dropped_not_sent_to_a_closed_sink(tmp_path: Path) -> None:
    # setsid: out of the group, so nothing stops it; it writes on after the run has ended
    late = "setsid bash -c 'echo PID $$; for i in $(seq 40); do echo late; sleep 0.2; done' &"
    out: list[bytes] = []
    proc.stream(
        ["bash", "-c", f"{late} sleep 0.3"],
        env=os.environ,
        cwd=tmp_path,
        on_stdout=out.append,
        on_stderr=out.append,
    )
    heard = len(out)
    time.sleep(1)
    assert len(out) == heard
    pid = next(line.split()[1] for line in b"".join(out).decode().splitlines() if "PID" in line)
    os.kill(int(pid), signal.SIGKILL)


def test_stopping_a_group_toolkit_may_not_signal_gives_up_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(group: int, sig: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    program = subprocess.Popen(["sleep", "0"], start_new_session=True)
    program.wait()
    monkeypatch.setattr(proc.os, "killpg", refused)  # a member of another user: as sudo
    proc._stop_group(program, (signal.SIGTERM, signal.SIGKILL))


@pytest.fixture
def sigterm_let_go(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A SIGTERM that toolkit does not take is let go (it would end pytest, as it ended
    toolkit)."""
    from toolkit import interrupt

    monkeypatch.setattr(interrupt, "_first", None, raising=False)
    saved = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    yield
    signal.signal(signal.SIGTERM, saved)


def signalled_stream(tmp_path: Path, script: str, sends: int) -> tuple[int | None, str, list[str]]:
    """proc.stream of a Python `script` that prints READY; toolkit is then sent SIGTERM (`sends`
    times, 0.3 s apart)."""
    out: list[bytes] = []
    said: list[str] = []

    def on_stdout(chunk: bytes) -> None:
        out.append(chunk)
        if b"READY" in chunk:
            for n in range(sends):
                threading.Timer(0.3 * n, os.kill, (os.getpid(), signal.SIGTERM)).start()

    code, interrupted = proc.stream(
        [sys.executable, "-c", script],
        env=os.environ,
        cwd=tmp_path,
        on_stdout=on_stdout,
        on_stderr=out.append,
        on_stop=said.append,
    )
    assert interrupted
    return code, b"".join(out).decode(), said


@pytest.mark.usefixtures("sigterm_let_go")
def test_sigterm_to_toolkit_stops_the_program_as_ctrl_c_does(tmp_path: Path) -> None:
    saving = (
        "import signal, sys, time\n"
        "def leave(signum, frame):\n"
        "    print('SAVING', signum, flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGINT, leave)\n"
        "print('READY', flush=True); time.sleep(10)\n"
    )
    code, out, said = signalled_stream(tmp_path, saving, sends=1)
    assert code == 0 and "SAVING 2" in out  # SIGINT first, as Ctrl-C; its way out is heard
    assert said == []  # it ended at once


@pytest.mark.usefixtures("sigterm_let_go")
def test_sigterm_again_moves_on_to_the_next_signal(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('READY', flush=True); time.sleep(10)\n"
    )
    started = time.monotonic()
    code, _, said = signalled_stream(tmp_path, stubborn, sends=3)
    assert code == -signal.SIGKILL
    assert time.monotonic() - started < 8  # not the 20 s one signal gives it
    assert said[0] == (
        "stopping (SIGTERM received): SIGINT sent; SIGTERM in 10 s (SIGTERM again sends it now)"
    )
