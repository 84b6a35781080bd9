"""SIGTERM (timeout, scancel, a cancelled CI job) and SIGHUP (a closed ssh session) stop toolkit
as Ctrl-C does: held where Ctrl-C is held, counted as presses, and named in what it says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tests.unit import test_wire
from tests.unit.test_wire import (
    FakeEngine,
    Routes,
    RunsUntilSignalled,
    spec,
)
from toolkit import engine, interrupt
from toolkit.engine import ContainerExit

serve, short_dir = test_wire.serve, test_wire.short_dir  # the fake engine's fixtures


@pytest.fixture(autouse=True)
def guarded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """SIGTERM and SIGHUP that toolkit does not take are let go (they would end pytest, as
    they ended toolkit); toolkit's memory of the signals it received is each test's own."""
    monkeypatch.setattr(interrupt, "_first", None, raising=False)
    saved = {
        sig: signal.signal(sig, lambda signum, frame: None)
        for sig in (signal.SIGTERM, signal.SIGHUP)
    }
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def settle(until: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not until() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_while_held_is_counted_not_raised(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    with interrupt.held() as pressed:
        os.kill(os.getpid(), sig)
        settle(pressed.is_set)
        assert (pressed.count, pressed.first) == (1, sig)
    assert signal.getsignal(sig) == before  # what was there before is back
    assert interrupt._first == sig  # the first stop signal toolkit received
    assert interrupt.exit_code() == 128 + sig


def test_a_sighup_ignored_from_the_start_stays_ignored() -> None:
    """`nohup toolkit run ...` goes on when the terminal goes away."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with interrupt.held() as pressed:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.1)
        assert not pressed.is_set()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


def test_the_first_signal_is_the_one_toolkit_exits_by() -> None:
    with interrupt.held() as pressed:
        os.kill(os.getpid(), signal.SIGTERM)
        settle(pressed.is_set)
        os.kill(os.getpid(), signal.SIGINT)
        settle(lambda: pressed.count == 2)
    assert pressed.first == signal.SIGTERM
    assert (interrupt.exit_code(), interrupt.said()) == (143, "interrupted by SIGTERM")


def test_ctrl_c_is_said_as_before() -> None:
    assert (interrupt.exit_code(), interrupt.said()) == (130, "interrupted")
    signals = engine.STOP_SIGNALS
    assert interrupt.stopping(signals, 0, signal.SIGINT) == (
        "stopping: SIGINT sent; SIGTERM in 10 s (Ctrl-C again sends it now)"
    )


def test_the_stopping_line_names_the_signal_received() -> None:
    signals = engine.STOP_SIGNALS
    assert interrupt.stopping(signals, 0, signal.SIGTERM) == (
        "stopping (SIGTERM received): SIGINT sent; SIGTERM in 10 s (SIGTERM again sends it now)"
    )
    assert interrupt.stopping(signals, 2, signal.SIGHUP) == (
        "stopping (SIGHUP received): SIGKILL sent"
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_while_toolkit_loads_is_a_message_and_its_exit_code(
    sig: signal.Signals, code: int
) -> None:
    """Outside what is held, SIGTERM and SIGHUP take Ctrl-C's way out: `error: ...`, 128+sig
    (SIGTERM ended toolkit on the spot, whatever it was doing)."""
    program = (
        "import os, sys\n"
        "class Signalled:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'toolkit.cli.launch':\n"
        f"            os.kill(os.getpid(), {int(sig)})\n"
        "from toolkit.cli import main\n"
        "sys.meta_path.insert(0, Signalled())\n"
        "sys.argv = ['toolkit', 'run']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (code, f"error: interrupted by {sig.name}\n")


def run_signalled(
    container: RunsUntilSignalled, serve: Callable[[Routes], FakeEngine]
) -> tuple[ContainerExit, bytes, list[str]]:
    serve(container.routes())
    output: list[bytes] = []
    said: list[str] = []
    ended = engine.run_container(
        spec(), {}, on_stdout=output.append, on_stderr=output.append, on_stop=said.append
    )
    return ended, b"".join(output), said


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_toolkit_stops_the_container_as_ctrl_c_does(
    sig: signal.Signals, serve: Callable[[Routes], FakeEngine]
) -> None:
    container = RunsUntilSignalled(ends_on="SIGINT", sig=sig)
    ended, output, _ = run_signalled(container, serve)
    assert ended == ContainerExit(130, interrupted=True)
    assert [name for name, _ in container.signals] == ["SIGINT"]  # as Ctrl-C: Python unwinds
    assert output == b"step 1\nsaved\n"  # what it printed on its way out is shown


def test_sigterm_again_sends_the_container_the_next_signal_at_once(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    container = RunsUntilSignalled(ends_on="SIGKILL", presses_again=True, sig=signal.SIGTERM)
    ended, _, said = run_signalled(container, serve)
    assert ended == ContainerExit(130, interrupted=True)
    assert [name for name, _ in container.signals] == ["SIGINT", "SIGTERM", "SIGKILL"]
    sent = [at for _, at in container.signals]
    assert sent[-1] - sent[0] < 5  # not the 10 s apart of STOP_SIGNALS
    assert said[0] == (
        "stopping (SIGTERM received): SIGINT sent; SIGTERM in 10 s (SIGTERM again sends it now)"
    )


def test_once_settled_the_stop_signals_are_ignored_even_where_a_hold_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A finished, recorded run: a signal while it is summed up changes neither what is said
    nor the exit code (it turned a succeeded run into "interrupted by SIGTERM", exit 143)."""
    saved = {sig: signal.getsignal(sig) for sig in interrupt.STOPS}
    monkeypatch.setattr(interrupt, "_settled", False)
    monkeypatch.setattr(interrupt, "_first", None)
    try:
        with interrupt.held():
            interrupt.settle()
            os.kill(os.getpid(), signal.SIGTERM)
        assert all(signal.getsignal(sig) == signal.SIG_IGN for sig in interrupt.STOPS)
        os.kill(os.getpid(), signal.SIGINT)  # nothing raised
        os.kill(os.getpid(), signal.SIGTERM)  # nothing ends
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
