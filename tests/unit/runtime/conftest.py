"""Run real Python processes with the runtime bundle on PYTHONPATH, as the launcher does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from toolkit.runtime.bundle import write_bundle
from toolkit.runtime.policy import UNSET, Policy, environment


@dataclass(frozen=True)
class Run:
    """One finished process of a test: its output and what it left in the run directory."""

    pid: int
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path

    def reports(self) -> list[dict[str, Any]]:
        """Every per-process runtime report, main process first."""
        folder = self.run_dir / "runtime"
        found = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
        return sorted(found, key=lambda report: report["forked_from"] is not None)

    def main_report(self) -> dict[str, Any]:
        """The report of the process the test started."""
        (report,) = [report for report in self.reports() if report["pid"] == self.pid]
        return report

    def setting(self, name: str) -> dict[str, Any]:
        """One entry of the main report's settings list."""
        settings = self.main_report()["settings"]
        (entry,) = [setting for setting in settings if setting["name"] == name]
        return dict(entry)

    def json_line(self) -> Any:
        """The last stdout line, parsed: scripts print their findings as JSON."""
        return json.loads(self.stdout.strip().splitlines()[-1])


RunPython = Callable[..., Run]
DEFAULT_POLICY = Policy(seed=7, threads=2)


def launch_env(
    policy: Policy | None, run_dir: Path, bundle: Path, launcher: bool = True
) -> dict[str, str]:
    """The environment the launcher gives a run: bundle first on PYTHONPATH, policy, its env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_") and k not in UNSET}
    env["PYTHONPATH"] = str(bundle)
    env["TOOLKIT_RUN_DIR"] = str(run_dir)
    if policy is not None:
        env["TOOLKIT_POLICY"] = policy.to_json()
        if launcher:
            env.update(environment(policy, env))
    return env


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime directory the launcher mounts, written once for the session."""
    dest = tmp_path_factory.mktemp("bundle")
    write_bundle(dest)
    return dest


@pytest.fixture
def run_python(bundle: Path, tmp_path: Path) -> RunPython:
    """Run a script under the runtime; returns a Run."""

    def run(
        script: str,
        policy: Policy | None = DEFAULT_POLICY,
        *args: str,
        env: dict[str, str] | None = None,
        launcher: bool = True,
        timeout: float = 120,
    ) -> Run:
        number = len(list(tmp_path.glob("run*")))
        run_dir = tmp_path / f"run{number}"
        run_dir.mkdir()
        path = tmp_path / f"script{number}.py"
        path.write_text(textwrap.dedent(script))
        full_env = launch_env(policy, run_dir, bundle, launcher)
        full_env.update(env or {})
        with subprocess.Popen(
            [sys.executable, str(path), *args],
            cwd=tmp_path,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            stdout, stderr = process.communicate(timeout=timeout)
        return Run(process.pid, process.returncode, stdout, stderr, run_dir)

    return run
