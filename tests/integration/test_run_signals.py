"""SIGTERM (`timeout`, scancel, a cancelled CI job) and SIGHUP (a closed ssh session) stop a run
as Ctrl-C does: the experiment stopped, its record kept, toolkit's exit 128 + the signal.

They ended toolkit on the spot: the container ran on unattended, the run had no record, and what
the experiment printed on its way out was lost.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_run_native import (
    SAVING,
    STUBBORN,
    Interrupted,
    ctrl_c_when_finishing,
    huge_data,
    interrupt_run,
    project,  # noqa: F401  # fixture
    record_of,
)
from tests.support import make_wheel, run_python_argv, running_processes, toolkit
from toolkit import engine, image

STOPS = [(signal.SIGTERM, 143), (signal.SIGHUP, 129)]


def signal_run(
    cwd: Path, sig: signal.Signals, *args: str, handler: str = "", sends: int = 1
) -> Interrupted:
    """`interrupt_run` with `sig` sent instead of Ctrl-C (`sends` times, 0.3 s apart)."""
    return interrupt_run(cwd, *args, handler=handler, presses=sends, sig=sig)


# --- natively ----------------------------------------------------------------------------------


def test_runs_tells_a_running_run_from_one_whose_toolkit_was_killed(project: Path) -> None:  # noqa: F811
    """SIGKILL (the kernel's out-of-memory killer, `kill -9`) leaves no record; `runs` said "a
    run still going, or one stopped" of both, and the 4 MB held for the record stayed. A
    native program whose toolkit is killed runs on: the run is running until it ends, and
    another native run may not write into its workdir meanwhile."""
    import os
    import subprocess
    import time

    program = "import os, time; print('READY', 6 * 7, os.getpid(), flush=True); time.sleep(120)"
    proc = subprocess.Popen(
        run_python_argv(program, "--native"), cwd=project, stdout=subprocess.PIPE, text=True
    )
    line = ""
    try:
        assert proc.stdout is not None
        line = next(line for line in proc.stdout if line.startswith("READY 42"))
        going = toolkit("runs", cwd=project)
        assert going.stdout.splitlines()[1].split()[1:4] == ["cpu", "(native)", "running"]
        proc.kill()
        proc.wait(timeout=10)
        orphan = toolkit("runs", cwd=project)  # its program runs on, holding the run's locks
        assert orphan.stdout.splitlines()[1].split()[1:4] == ["cpu", "(native)", "running"]
        refused = toolkit("run", "--native", cwd=project)
        assert refused.returncode == 1 and "another native run of this project" in (refused.stderr)
    finally:
        proc.kill()
        if line:  # the experiment, in a session of its own, runs on
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[2]), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while line and running_processes(pid=int(line.split()[2])) and time.monotonic() < deadline:
        time.sleep(0.05)
    ended = toolkit("runs", cwd=project)
    assert ended.stdout.splitlines()[1].split()[1:5] == ["cpu", "(native)", "no", "record"]
    assert "no record: toolkit ended before it wrote the record (killed" in ended.stderr
    assert not list((project / "runs").glob("*/.record-space"))


def test_a_daemon_the_program_left_does_not_hold_the_workdir_after_the_run(
    project: Path,  # noqa: F811
) -> None:
    """The program holds the run's locks too (for when its toolkit is killed): a daemon it left
    outside its process group held them after the run had ended, and every later native run
    was refused, naming a toolkit long gone."""
    import subprocess

    marker = f"{secrets.randbelow(10**6) + 10**6}.5"  # a sleep of its own, to find and stop
    daemon = f"setsid sleep {marker} >/dev/null 2>&1 </dev/null &"
    try:
        first = toolkit("run", "--native", "--", "sh", "-c", daemon, cwd=project)
        assert first.returncode == 0, first.stderr
        second = toolkit("run", "--native", cwd=project)
        assert second.returncode == 0, second.stderr
    finally:
        subprocess.run(["pkill", "-f", f"sleep {marker}"], check=False)


@pytest.mark.parametrize(("sig", "code"), STOPS, ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_a_native_run_as_ctrl_c_does_and_keeps_its_record(
    project: Path,  # noqa: F811
    sig: signal.Signals,
    code: int,
) -> None:
    ended = signal_run(project, sig, "--native", handler=SAVING)
    assert ended.code == code, ended.stderr
    assert ended.record["status"] == "interrupted"
    assert f"interrupted by {sig.name} (record: runs/{ended.record['id']}" in ended.stderr
    # the program was sent SIGINT, as Ctrl-C sends it, and what it printed then was kept
    assert "SAVING 2" in ended.stdout and "SAVED" in ended.stderr
    folder = project / "runs" / ended.record["id"]
    assert "SAVING 2" in (folder / "stdout.log").read_text()
    assert running_processes(pid=ended.pid) == []


def test_sigterm_again_kills_a_native_program_that_will_not_stop(project: Path) -> None:  # noqa: F811
    ended = signal_run(project, signal.SIGTERM, "--native", handler=STUBBORN, sends=3)
    assert ended.code == 143 and ended.record["status"] == "interrupted", ended.stderr
    assert ended.seconds < 8  # each signal at the next SIGTERM, not 10 s apart
    assert (
        "stopping (SIGTERM received): SIGINT sent; SIGTERM in 10 s (SIGTERM again sends it now)"
        in ended.stderr
    )
    assert running_processes(pid=ended.pid) == []


def test_sigterm_while_the_record_is_written_keeps_the_record(project: Path) -> None:  # noqa: F811
    """As Ctrl-C there: what is slow is skipped, and the record is written."""
    huge_data(project)
    ended = ctrl_c_when_finishing(project, "run", "--native", sig=signal.SIGTERM)
    err = ended.stderr
    assert ended.returncode == 0, err  # the experiment itself succeeded
    assert "the record is incomplete, without: data" in err and "Traceback" not in err
    doc = record_of(project, err)
    assert doc["status"] == "succeeded" and doc["incomplete"] == ["data"]


# --- in a container ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose image holds Python and one tiny wheel (built offline); removed after."""
    root = tmp_path_factory.mktemp("signals-project")
    wheels = root / "wheels"
    make_wheel(wheels, "tinyalpha", "1.0")
    name = f"tk-signals-{secrets.token_hex(3)}"
    (root / "toolkit.yaml").write_text(
        f"name: {name}\ntargets: {{cpu: {{}}}}\nexperiment: {{command: python -c pass}}\n"
    )
    (root / ".toolkit").mkdir()
    (root / ".toolkit" / "mirrors.toml").write_text(f'"https://pypi.org/simple" = "{wheels}"\n')
    (root / "requirements.in").write_text("tinyalpha\n")
    locked = toolkit("lock", cwd=root)
    assert locked.returncode == 0, locked.stderr
    built = toolkit("build", cwd=root)
    assert built.returncode == 0, built.stderr
    yield root
    for img in engine.images(f"{image.LABEL}.project={name}"):
        engine.remove_image(img.id)


@pytest.fixture
def fresh(tiny: Path) -> Iterator[Path]:
    """The tiny project without runs: each test's own."""
    yield tiny
    import shutil

    shutil.rmtree(tiny / "runs", ignore_errors=True)


def containers_of(ended: Interrupted) -> list[object]:
    run_label = f"io.toolkit.run={ended.record['id']}"
    return list(engine.client().containers.list(all=True, filters={"label": run_label}))


@pytest.mark.docker
@pytest.mark.parametrize(("sig", "code"), STOPS, ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_the_container_as_ctrl_c_does_and_keeps_its_record(
    fresh: Path, sig: signal.Signals, code: int
) -> None:
    ended = signal_run(fresh, sig, handler=SAVING)
    assert ended.code == code, ended.stderr
    assert ended.record["status"] == "interrupted"
    assert f"interrupted by {sig.name} (record: runs/{ended.record['id']}" in ended.stderr
    assert "SAVING 2" in ended.stdout and "SAVED" in ended.stderr  # SIGINT first, as Ctrl-C
    folder = fresh / "runs" / ended.record["id"]
    assert "SAVING 2" in (folder / "stdout.log").read_text()
    assert containers_of(ended) == []


@pytest.mark.docker
def test_sigterm_again_kills_a_container_that_will_not_stop(fresh: Path) -> None:
    ended = signal_run(fresh, signal.SIGTERM, handler=STUBBORN, sends=3)
    assert ended.code == 143 and ended.record["status"] == "interrupted", ended.stderr
    assert ended.seconds < 8  # not the 20 s one signal gives it before SIGKILL
    assert containers_of(ended) == []
