"""`toolkit repro-check --native` when the experiment fails: named, never reproducible, exit 2."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.support import toolkit

# Exits with EXIT_WITH; FAIL_ONCE names a file: the first run creates it and fails, later ones pass.
SCRIPT = """
import os, sys
from toolkit.runtime import log
log(step=0, loss=0.5)
flag = os.environ.get("FAIL_ONCE")
if flag and not os.path.exists(flag):
    open(flag, "w").close()
    sys.exit(4)
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "job.py").write_text(SCRIPT)
    (tmp_path / "toolkit.yaml").write_text(
        "name: tk-repro\ntargets: {cpu: {}, other: {}}\n"
        f"experiment:\n  command: {sys.executable} job.py\n  workdir: exp\n"
        "  metrics: {primary: loss}\n"
    )
    return tmp_path


def check(project: Path, *args: str, **env: str) -> tuple[int, str, str]:
    result = toolkit("repro-check", "--native", *args, cwd=project, env={**os.environ, **env})
    return result.returncode, result.stdout, result.stderr


def test_an_experiment_that_always_fails_is_not_reproducible(project: Path) -> None:
    code, out, err = check(project, "--runs", "2", EXIT_WITH="3")
    assert code == 2, out + err
    assert "reproducible on" not in out and "identical" not in out
    assert out.startswith(
        "could not check reproducibility: 2 of 2 runs did not succeed: cpu (native) #1 "
    )
    assert out.count("failed with exit code 3") == 2
    assert "cpu (native) #1 failed: its output is in runs/" in err


def test_failed_runs_on_every_target_are_not_a_bitwise_match(project: Path) -> None:
    code, out, err = check(
        project, "-t", "cpu", "-t", "other", "--runs", "1", "--json", EXIT_WITH="3"
    )
    assert code == 2, err
    doc = json.loads(out)  # nothing else on stdout
    assert doc["verdict"] == "failed"
    assert doc["pairs"] == []
    assert [(f["label"], f["status"], f["exit_code"]) for f in doc["failed"]] == [
        ("cpu (native)", "failed", 3),
        ("other (native)", "failed", 3),
    ]
    assert "matches" not in doc["summary"]


def test_one_failed_run_among_good_ones_is_named(project: Path, tmp_path: Path) -> None:
    flag = tmp_path / "failed-once"
    code, out, err = check(project, "--runs", "3", FAIL_ONCE=str(flag))
    assert code == 2, out + err
    assert "run-to-run" in out  # the two good runs are still compared
    assert "NOT reproducible" not in out
    assert (
        "1 of 3 runs did not succeed: cpu (native) #1 " in out and "failed with exit code 4" in out
    )


def test_a_failed_run_brought_in_with_against_is_named(project: Path) -> None:
    env = {**os.environ, "EXIT_WITH": "5"}
    assert toolkit("run", "--native", cwd=project, env=env).returncode == 5
    (failed,) = (project / "runs").iterdir()
    code, out, err = check(
        project, "--runs", "1", "--against", str(failed), "--json", "--html", "report.html"
    )
    assert code == 2, err
    doc = json.loads(out)
    assert doc["verdict"] == "failed"
    assert doc["failed"][0]["run"] == failed.name
    assert doc["failed"][0]["exit_code"] == 5
    assert "HTML report: report.html" in err
    assert (project / "report.html").is_file()


def test_identical_runs_still_pass(project: Path) -> None:
    code, out, err = check(project, "--runs", "2", "--json", "--html", "report.html")
    assert code == 0, out + err
    doc = json.loads(out)
    assert doc["verdict"] == "identical"
    assert doc["summary"] == "reproducible on cpu (native) (2 runs, all identical)"
    assert doc["failed"] == []
