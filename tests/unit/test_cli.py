"""The CLI shell: version, help, exit codes, and no traceback for a user's mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
