"""The CLI shell: version, help, exit codes, and no traceback for a user's mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit import __version__


def toolkit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args], capture_output=True, text=True, cwd=cwd
    )


def test_version() -> None:
    result = toolkit("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"toolkit {__version__}"


def test_help_lists_built_commands() -> None:
    result = toolkit("--help")
    assert result.returncode == 0
    for command in ("base", "doctor"):
        assert command in result.stdout


def test_help_whose_reader_has_left_is_no_error() -> None:
    """`toolkit --help | head -1`: the reader asked for no more; click said exit 1."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before the first line: every write meets a broken pipe
    try:
        result = subprocess.run(
            [sys.executable, "-m", "toolkit", "--help"], stdout=write_end, stderr=subprocess.PIPE
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (0, b"")


def test_help_on_a_full_disk_says_so_and_is_no_internal_error() -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "toolkit", "lock", "--help"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert result.returncode == 0
    assert result.stderr == (
        "toolkit: cannot write to stdout (No space left on device): the rest of it is dropped\n"
    )


def test_unknown_command_is_a_usage_error() -> None:
    result = toolkit("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: x\ntargets: {cpu: {lockfle: a}}\n")
    result = toolkit("doctor", cwd=tmp_path)
    assert result.returncode == 2
    assert "targets.cpu.lockfle: unknown key" in result.stderr
    assert "did you mean 'lockfile'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: [\n")
    result = toolkit("--debug", "doctor", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert "not valid YAML" in result.stderr


def test_missing_explicit_config(tmp_path: Path) -> None:
    result = toolkit("--config", str(tmp_path / "nope.yaml"), "doctor")
    assert result.returncode == 2
    assert "file not found" in result.stderr


def test_required_cuda_of_a_lockfile() -> None:
    from toolkit.doctor import required_cuda

    assert required_cuda("torch==2.5.1+cu121 \\\n    --hash=sha256:00\n") == "12.1"
    assert required_cuda("nvidia-cuda-runtime==13.0.96 \\\ntorch==2.13.0 \\\n") == "13.0"
    assert required_cuda("nvidia-cuda-runtime-cu12==12.4.127 \\\n") == "12.4"
    assert required_cuda("torch==2.13.0+cpu \\\n") is None


def test_old_driver_fails_the_gpu_check(tmp_path: Path) -> None:
    from toolkit.config import parse_config
    from toolkit.doctor import _driver_checks
    from toolkit.hardware import GpuReport

    (tmp_path / "lockfiles").mkdir()
    (tmp_path / "lockfiles" / "gpu.txt").write_text("torch==2.13.0+cu130 \\\n")
    cfg = parse_config("name: x\ntargets: {gpu: {gpus: all}}\n", tmp_path / "toolkit.yaml")
    (old,) = _driver_checks(cfg, GpuReport("535.1", "12.2", ()))
    assert old.status == "fail"
    assert "supports CUDA 12.2, the lockfile needs 13.0" in old.detail
    (new,) = _driver_checks(cfg, GpuReport("580.1", "13.0", ()))
    assert new.status == "ok"


def test_an_engine_that_cannot_start_a_container_fails_the_doctor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolkit import base, doctor, engine
    from toolkit.errors import UserError

    ref = f"{base.REPOSITORY}:bookworm-0"
    found = engine.ImageInfo("sha256:1", (ref,), {}, 1, "2026-11-27")
    monkeypatch.setattr(engine, "images", lambda label: [found])
    tried: list[str] = []

    def no_bridge(image: str, command: list[str], **kwargs: str) -> str:
        tried.append(image)
        raise UserError("the container did not start: could not find bridge docker0")

    monkeypatch.setattr(engine, "run_once", no_bridge)
    (check,) = doctor._container_check()
    assert tried == [ref] and check.status == "fail"
    assert check.detail == (
        "the engine cannot start a container: the container did not start: could not find "
        "bridge docker0"
    )
    monkeypatch.setattr(engine, "images", lambda label: [])
    assert doctor._container_check() == []  # no base to start one from: not tried


def test_commands_without_targets_say_so(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: x\nexperiment: {command: python -V}\n")
    for command in (["run"], ["build"], ["repro-check"]):
        result = toolkit(*command, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert "no targets" in result.stderr and "Traceback" not in result.stderr


def test_build_warns_about_a_base_not_pinned_by_digest(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: x\ntargets: {cpu: {base: 'python:3.11-slim'}}\n")
    result = toolkit("build", cwd=tmp_path)
    assert "base python:3.11-slim is not pinned by digest" in result.stderr
    assert result.returncode == 1  # and then: no lockfile yet
    assert "toolkit lock --target cpu" in result.stderr


def test_tables_off_a_terminal_are_plain_aligned_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from toolkit.cli import output

    output.table(["id", "status"], [["run-1", "succeeded"], ["r2", "[red]x"]])
    assert capsys.readouterr().out == "id     status\nrun-1  succeeded\nr2     [red]x\n"


@pytest.mark.parametrize("no_color", [False, True])
def test_lines_on_a_terminal_are_styled_without_loading_rich(no_color: bool) -> None:
    """`toolkit run` on a terminal prints its lines without rich (~30 ms to load)."""
    import os
    import pty
    import subprocess
    import sys

    code = (
        "import sys; from toolkit.cli import output\n"
        "output.success('done [x]'); output.warn('w'); output.error('bad', hint='fix it')\n"
        "output.status_line('fail', 'lock cpu', 'stale', 'relock')\n"
        "print('rich loaded:', 'rich' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    env["TERM"] = "xterm"
    if no_color:
        env["NO_COLOR"] = "1"
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=follower, stderr=follower, env=env
    ) as child:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed its side
                break
            if not chunk:
                break
            chunks.append(chunk)
        child.wait(timeout=30)
    os.close(leader)
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    assert "rich loaded: False" in text
    if no_color:
        assert "\x1b[" not in text
        assert "✓ done [x]\nwarning: w\nerror: bad\n  → fix it\nfail  lock cpu" in text
    else:
        assert "\x1b[32m✓\x1b[0m done [x]" in text  # the message as it is: no markup read
        assert "\x1b[31merror:\x1b[0m bad\n  \x1b[2m→\x1b[0m fix it" in text
        assert "\x1b[31mfail\x1b[0m  lock cpu" in text


@pytest.mark.parametrize("closed", [0, 1, 2])
def test_a_run_with_a_standard_stream_closed_runs_and_keeps_its_record(
    tmp_path: Path, closed: int
) -> None:
    """`toolkit run ... 2>&-`: the first file toolkit opened became its stderr; it printed
    nothing, exited 1, never ran the experiment, and left an empty run folder."""
    import json

    (tmp_path / "toolkit.yaml").write_text(
        "name: t\ntargets: {cpu: {}}\nexperiment: {command: x}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit",
            "run",
            "--native",
            "--",
            sys.executable,
            "-c",
            "print('HELLO')",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        cwd=tmp_path,
        preexec_fn=lambda: os.close(closed),
    )
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert json.loads((folder / "record.json").read_text())["status"] == "succeeded"
    assert (folder / "stdout.log").read_bytes() == b"HELLO\n"
    if closed != 1:
        assert done.stdout == b"HELLO\n"
    if closed != 2:
        assert b"succeeded (record: runs/" in done.stderr
