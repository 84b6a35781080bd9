"""A project on the standard library alone: requirements.in lists no package, and still locks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import toolkit
from tests.unit.lock import test_lock_header
from toolkit import lock, piptools, wheelhouse
from toolkit.config import Config

# python: one toolkit does not run on, which a lock of nothing never needs to resolve for
YAML = (
    'name: demo\npython: "3.9"\ntargets:\n  cpu: {}\n  gpu:\n    index: {url: "https://x/simple"}\n'
)
COMMENTS = "# Top-level dependencies of the experiment, one per line\n# For example:\n# torch\n"


def project(root: Path, requirements: str = COMMENTS) -> Config:
    return test_lock_header.project(root, YAML, requirements)


@pytest.fixture
def no_pip_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> piptools.CompileResult:
        raise AssertionError("pip-compile ran for a requirements.in without packages")

    monkeypatch.setattr(piptools, "pip_compile", refuse)


@pytest.mark.usefixtures("no_pip_tools")
def test_nothing_to_lock_writes_a_lockfile_without_pins_and_no_pip_tools(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    progress: list[str] = []
    done = lock.lock_target(cfg, "cpu", on_progress=progress.append)

    assert (done.packages, done.changed) == (0, True)
    assert done.note == (
        "requirements.in lists no packages: the lockfile pins none (pip-tools not run)"
    )
    assert done.note in progress
    text = (tmp_path / "lockfiles" / "cpu.txt").read_text()
    header = lock.parse_header(text)
    assert header is not None
    assert (header.target, header.python) == ("cpu", "3.9")
    assert text.endswith(
        "#\n# requirements.in lists no packages: the image adds none to its base.\n"
    )
    assert wheelhouse.read_pins(text) == []
    assert lock.status(cfg, "cpu").state == "current"

    again = lock.lock_target(cfg, "cpu")
    assert (again.packages, again.changed) == (0, False)
    assert (tmp_path / "lockfiles" / "cpu.txt").read_text() == text


@pytest.mark.usefixtures("no_pip_tools")
def test_an_include_of_an_empty_file_locks_nothing_too(tmp_path: Path) -> None:
    cfg = project(tmp_path, "-r base.in\n-c constraints.txt\n")
    (tmp_path / "base.in").write_text("# nothing here yet\n")
    (tmp_path / "constraints.txt").write_text("numpy<3\n")  # constrains, names no package to add
    assert lock.lock_target(cfg, "gpu").packages == 0
    assert lock.status(cfg, "gpu").state == "current"


@pytest.mark.usefixtures("no_pip_tools")
def test_adding_a_package_later_makes_the_empty_lockfile_stale(tmp_path: Path) -> None:
    cfg = project(tmp_path)
    lock.lock_target(cfg, "cpu")
    (tmp_path / "requirements.in").write_text(COMMENTS + "six\n")
    found = lock.status(cfg, "cpu")
    assert found.state == "stale"
    assert found.reason == "requirements.in changed since the lock was written"


def test_the_cli_locks_and_checks_a_project_without_packages(tmp_path: Path) -> None:
    # --check needs no network; neither does a lock of nothing (pip-tools is not run)
    (tmp_path / "toolkit.yaml").write_text(YAML)
    (tmp_path / "requirements.in").write_text(COMMENTS)
    done = toolkit("lock", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (
        "✓ cpu: lockfiles/cpu.txt written (no packages: requirements.in lists none" in done.stdout
    )
    assert (
        "✓ gpu: lockfiles/gpu.txt written (no packages: requirements.in lists none" in done.stdout
    )
    assert "requirements.in lists no packages: the lockfile pins none" in done.stderr
    assert "no requirements in it" not in done.stderr

    check = toolkit("lock", "--check", cwd=tmp_path, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok  cpu              lockfiles/cpu.txt current" in check.stdout
    assert "ok  gpu              lockfiles/gpu.txt current" in check.stdout
