"""Shared test setup: docker tests skip without an engine on a laptop, and fail in CI."""

from __future__ import annotations

import functools

import pytest

from tests.support import docker_required

_executed_docker_tests: list[str] = []


@functools.cache
def engine_problem() -> str | None:
    from toolkit import engine
    from toolkit.errors import EngineUnavailable

    try:
        engine.client()
    except EngineUnavailable as exc:
        return f"{exc.message}; {exc.hint}"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    problem = engine_problem()
    if problem is None:
        return
    if docker_required():
        pytest.fail(f"Docker Engine required in CI: {problem}", pytrace=False)
    pytest.skip(f"no Docker Engine: {problem}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "docker" in report.keywords:
        _executed_docker_tests.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f"docker tests executed: {len(_executed_docker_tests)}")


@pytest.fixture(autouse=True)
def _fresh_cli_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the CLI's global options unset: a CliRunner call with `--config`
    left it set for the next test, which then read another project's toolkit.yaml."""
    import toolkit.cli

    monkeypatch.setattr(toolkit.cli, "_options", toolkit.cli.Options())
