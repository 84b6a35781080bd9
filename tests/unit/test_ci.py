"""`toolkit ci github|gitlab`: pipelines that validate, and scripts that keep the exit code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import toolkit
from toolkit.ci import CiOptions, control_target, render_github, render_gitlab
from toolkit.config import Config, load_config, parse_config
from toolkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

CPU_ONLY = """\
name: small
python: "3.11"
targets:
  cpu: {base: "python:3.11-slim@sha256:%s"}
experiment: {command: python train.py}
""" % ("0" * 64)


@pytest.fixture
def example() -> Config:
    """The bundled example: cpu and gpu, both on the Debian base."""
    return load_config(ROOT / "toolkit.yaml")


@pytest.fixture
def cpu_only() -> Config:
    return parse_config(CPU_ONLY, Path("/project/toolkit.yaml"))


def github(cfg: Config, **options: Any) -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load(render_github(cfg, CiOptions(**options)))
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return doc


def gitlab(cfg: Config, **options: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(render_gitlab(cfg, CiOptions(**options)))
    return doc


def step(job: dict[str, Any], name_start: str) -> dict[str, Any]:
    return next(s for s in job["steps"] if s.get("name", "").startswith(name_start))


# GitHub runs steps with bash; GitLab with bash or, in images without it, a POSIX sh (dash).
SHELLS = {
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"],
    "dash": ["dash", "-e"],
}
shells = pytest.mark.parametrize(
    "shell",
    [
        pytest.param(name, marks=pytest.mark.skipif(not shutil.which(name), reason=f"no {name}"))
        for name in SHELLS
    ],
)
NO_BUNDLE = "no run bundle (its job failed before a run was recorded, or did not run)"
INCOMPLETE = "❌ repro-check incomplete: no run bundle from"


# --- GitHub -----------------------------------------------------------------------------------


def test_github_matrix_runs_cpu_hosted_and_gpu_self_hosted(example: Config) -> None:
    doc = github(example)
    run = doc["jobs"]["run"]
    assert run["strategy"]["matrix"]["include"] == [
        {"target": "cpu", "runner": ["ubuntu-latest"], "debian_base": True},
        {"target": "gpu", "runner": ["self-hosted", "gpu"], "debian_base": True},
    ]
    assert run["runs-on"] == "${{ matrix.runner }}"
    assert run["strategy"]["fail-fast"] is False
    assert run["needs"] == "lock-check"
    commands = [s.get("run", "").strip() for s in run["steps"]]
    assert commands.index("toolkit doctor") < commands.index(
        "toolkit build --target ${{ matrix.target }}"
    )
    assert commands.index("toolkit build --target ${{ matrix.target }}") < commands.index(
        "toolkit run --target ${{ matrix.target }}"
    )
    assert step(run, "Base image")["if"] == "matrix.debian_base"
    upload = next(s for s in run["steps"] if s.get("uses", "").startswith("actions/upload"))
    assert upload["with"]["path"] == "run-${{ matrix.target }}.tar.gz"
    assert upload["with"]["if-no-files-found"] == "error"


def test_github_gpu_runner_label_is_configurable(example: Config) -> None:
    doc = github(example, gpu_runner=("self-hosted", "linux", "a100"))
    include = doc["jobs"]["run"]["strategy"]["matrix"]["include"]
    assert include[1]["runner"] == ["self-hosted", "linux", "a100"]
    assert include[0]["runner"] == ["ubuntu-latest"]


def test_github_cpu_only_project(cpu_only: Config) -> None:
    doc = github(cpu_only)
    include = doc["jobs"]["run"]["strategy"]["matrix"]["include"]
    assert include == [{"target": "cpu", "runner": ["ubuntu-latest"], "debian_base": False}]
    check = doc["jobs"]["repro-check"]
    assert check["runs-on"] == ["ubuntu-latest"]
    assert not any(s.get("name", "").startswith("Base image") for s in check["steps"])


def test_github_gate_permissions_and_pinned_actions(example: Config) -> None:
    doc = github(example, install="pip install -e .")
    assert doc["permissions"] == {"contents": "read"}
    assert set(doc["on"]) == {"push", "workflow_dispatch"}
    lock = doc["jobs"]["lock-check"]
    assert [s.get("run", "").strip() for s in lock["steps"][-2:]] == [
        "pip install -e .",
        "toolkit lock --check",
    ]
    python = next(s for s in lock["steps"] if s.get("uses", "").startswith("actions/setup-py"))
    assert python["with"]["python-version"] == "3.11"
    uses = [s["uses"] for job in doc["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses and all(re.fullmatch(r"actions/[a-z-]+@v\d+", u) for u in uses)
    assert {u.split("@")[0] for u in uses} >= {
        "actions/checkout",
        "actions/upload-artifact",
        "actions/download-artifact",
    }


def test_github_repro_check_job_compares_every_bundle(example: Config) -> None:
    check = github(example, rtol=1e-3)["jobs"]["repro-check"]
    assert check["needs"] == "run"
    download = next(s for s in check["steps"] if s.get("uses", "").startswith("actions/download"))
    assert download["with"] == {
        "pattern": "run-*",
        "path": "${{ runner.temp }}/bundles",
        "merge-multiple": True,
    }
    script = step(check, "Compare")["run"]
    assert "toolkit repro-check --target cpu --runs 2 " in script
    assert "--rtol 0.001 --markdown" in script
    assert '>> "$GITHUB_STEP_SUMMARY"' in script
    assert script.rstrip().endswith('exit "$status"')


@pytest.mark.parametrize("verdict", [0, 1, 2])
def test_github_compare_step_publishes_the_report_and_keeps_the_exit_code(
    example: Config, tmp_path: Path, verdict: int
) -> None:
    script = step(github(example)["jobs"]["repro-check"], "Compare")["run"]
    bundles = tmp_path / "temp" / "bundles"
    bundles.mkdir(parents=True)
    for target in ("cpu", "gpu"):
        (bundles / f"run-{target}.tar.gz").write_bytes(b"")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    env = fake_toolkit(tmp_path, verdict)
    env.update(RUNNER_TEMP=str(tmp_path / "temp"), GITHUB_STEP_SUMMARY=str(summary))
    done = run_script(["bash", "--noprofile", "--norc", "-eo", "pipefail"], script, tmp_path, env)
    assert done.returncode == verdict
    assert summary.read_text() == "earlier step\n| verdict | diverged |\n"
    assert (tmp_path / "args").read_text().split() == [
        "repro-check",
        "--target",
        "cpu",
        "--runs",
        "2",
        "--against",
        f"{bundles}/run-cpu.tar.gz",
        "--against",
        f"{bundles}/run-gpu.tar.gz",
        "--markdown",
    ]


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_what_repro_check_said_on_stderr_reaches_the_summary(
    example: Config, tmp_path: Path, kind: str
) -> None:
    """Why nothing was compared (exit 2, no report), and the runs from elsewhere left out."""
    if kind == "github":
        script = step(github(example)["jobs"]["repro-check"], "Compare")["run"]
        report, shell = tmp_path / "repro-check.md", ["bash", "--noprofile", "--norc", "-e"]
    else:
        lines = gitlab(example)["repro-check"]["script"]
        script = "\n".join(lines[next(i for i, x in enumerate(lines) if "mktemp" in x) :])
        report, shell = tmp_path / "repro-check.md", ["sh", "-e"]
    # where the job finds them: GitHub downloads to $RUNNER_TEMP/bundles, GitLab to the checkout
    arrived = tmp_path / "bundles" if kind == "github" else tmp_path
    arrived.mkdir(exist_ok=True)
    for target in ("cpu", "gpu"):
        (arrived / f"run-{target}.tar.gz").write_bytes(b"")
    summary = tmp_path / "summary.md"
    refused = "run-cpu left out: its command differs from this check's\nerror: nothing to compare"
    env = fake_toolkit(tmp_path, 2, report="", said=f"run cpu #1\n{refused}")
    env.update(RUNNER_TEMP=str(tmp_path), GITHUB_STEP_SUMMARY=str(summary))
    done = run_script(shell, script, tmp_path, env)
    assert done.returncode == 2
    assert report.read_text() == (
        f"### repro-check could not compare (exit 2)\n\n~~~\nrun cpu #1\n{refused}\n~~~\n"
    )
    for target in ("cpu", "gpu"):
        (arrived / f"run-{target}.tar.gz").write_bytes(b"")
    left = "run-gpu left out: its determinism policy differs from this check's"
    env = fake_toolkit(tmp_path, 0, report="| verdict | identical |", said=f"run cpu #1\n{left}")
    env.update(RUNNER_TEMP=str(tmp_path), GITHUB_STEP_SUMMARY=str(summary))
    done = run_script(shell, script, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert report.read_text() == f"| verdict | identical |\n- {left}\n"


def test_export_step_bundles_the_latest_run(example: Config, tmp_path: Path) -> None:
    # which run is the latest is toolkit's to say (by start time: tests/unit/test_record.py)
    script = step(github(example)["jobs"]["run"], "Bundle")["run"]
    script = script.replace("${{ matrix.target }}", "cpu")
    env = fake_toolkit(tmp_path, 0)
    done = run_script(["bash", "-e"], script, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "args").read_text().split() == ["runs", "export", "latest", "run-cpu.tar.gz"]


def test_github_a_failed_run_is_bundled_and_its_failure_still_counts(example: Config) -> None:
    run = github(example)["jobs"]["run"]
    # no continue-on-error: a failed experiment fails the job
    assert step(run, "Run the experiment") == {
        "name": "Run the experiment",
        "id": "run",
        "run": "toolkit run --target ${{ matrix.target }}",
    }
    export = step(run, "Bundle")["if"]
    assert github_if(export, **{"steps.run.outcome": "failure"})  # the failed run's record
    assert github_if(export, **{"steps.run.outcome": "success"})
    assert not github_if(export, **{"steps.run.outcome": "skipped"})  # the build failed: no run
    assert not github_if(export, cancelled=True, **{"steps.run.outcome": "failure"})
    upload = next(s for s in run["steps"] if s.get("uses", "").startswith("actions/upload"))
    assert github_if(upload["if"], **{"steps.export.outcome": "success"})
    for outcome in ("failure", "skipped"):  # no bundle: no second error about a missing file
        assert not github_if(upload["if"], **{"steps.export.outcome": outcome})


def test_github_compare_job_runs_when_a_target_failed(example: Config) -> None:
    check = github(example)["jobs"]["repro-check"]
    assert check["needs"] == "run"
    assert github_if(check["if"], **{"needs.run.result": "failure"})  # one target or more failed
    assert github_if(check["if"], **{"needs.run.result": "success"})
    assert not github_if(check["if"], **{"needs.run.result": "skipped"})  # the lock check failed
    assert not github_if(check["if"], cancelled=True, **{"needs.run.result": "failure"})


# --- GitLab -----------------------------------------------------------------------------------


def test_gitlab_stages_matrix_and_gpu_tags(example: Config) -> None:
    doc = gitlab(example, gpu_runner=("cuda", "h100"))
    assert doc["stages"] == ["lock", "run", "compare"]
    assert doc["lock-check"]["script"] == ["toolkit lock --check"]
    assert doc["run"]["parallel"]["matrix"] == [{"TARGET": ["cpu"]}]
    assert doc["run"]["extends"] == ".toolkit-engine"
    assert doc["run-gpu"]["parallel"]["matrix"] == [{"TARGET": ["gpu"]}]
    assert doc["run-gpu"]["extends"] == ".toolkit-gpu"
    assert doc[".toolkit-gpu"]["tags"] == ["cuda", "h100"]
    assert "tags" not in doc["run"]
    for job in ("run", "run-gpu"):
        assert doc[job]["stage"] == "run"
        assert doc[job]["artifacts"]["paths"] == ["run-$TARGET.tar.gz"]
    compare = doc["repro-check"]
    assert compare["stage"] == "compare"
    assert compare["needs"] == ["run", "run-gpu"]
    assert compare["artifacts"]["when"] == "always"
    assert compare["artifacts"]["paths"] == ["repro-check.md"]


def test_gitlab_cpu_only_project(cpu_only: Config) -> None:
    doc = gitlab(cpu_only, install="pip install -e .")
    assert "run-gpu" not in doc and ".toolkit-gpu" not in doc
    assert doc["repro-check"]["needs"] == ["run"]
    assert doc[".toolkit"]["before_script"][-1] == "pip install -e ."
    assert "debootstrap" not in "\n".join(doc["run"]["script"] + doc["repro-check"]["script"])


@pytest.mark.parametrize("verdict", [0, 1])
def test_gitlab_compare_script_writes_the_report_and_keeps_the_exit_code(
    example: Config, tmp_path: Path, verdict: int
) -> None:
    doc = gitlab(example)
    script = "\n".join(line for line in doc["repro-check"]["script"] if "repro-check" in line)
    for target in ("cpu", "gpu"):
        (tmp_path / f"run-{target}.tar.gz").write_bytes(b"")
    env = fake_toolkit(tmp_path, verdict)
    done = run_script(["sh", "-e"], script, tmp_path, env)
    assert done.returncode == verdict
    assert (tmp_path / "repro-check.md").read_text() == "| verdict | diverged |\n"
    assert not list(tmp_path.glob("run-*.tar.gz"))  # moved out of the checkout first
    args = (tmp_path / "args").read_text().split()
    assert args[:5] == ["repro-check", "--target", "cpu", "--runs", "2"]
    assert args[5::2][:2] == ["--against", "--against"]
    assert [Path(a).name for a in args[6:10:2]] == ["run-cpu.tar.gz", "run-gpu.tar.gz"]
    assert args[-1] == "--markdown"


@shells
@pytest.mark.parametrize(
    ("ran", "exported", "expected"), [(0, 0, 0), (3, 0, 3), (0, 1, 1), (3, 1, 3)]
)
def test_gitlab_a_failed_run_is_bundled_and_its_exit_code_counts(
    example: Config, tmp_path: Path, shell: str, ran: int, exported: int, expected: int
) -> None:
    doc = gitlab(example)
    for job in ("run", "run-gpu"):
        assert doc[job]["artifacts"]["when"] == "always"  # uploaded from a failed job too
    lines = doc["run"]["script"]
    script = "\n".join(lines[lines.index('toolkit build --target "$TARGET"') + 1 :])
    env = command_fakes(tmp_path, {"run": ran, "runs": exported})
    env["TARGET"] = "cpu"
    done = run_script(SHELLS[shell], script, tmp_path, env)
    assert done.returncode == expected, done.stderr
    assert (tmp_path / "calls").read_text().splitlines() == [
        "run --target cpu",
        "runs export latest run-cpu.tar.gz",
    ]


def test_gitlab_compare_job_runs_when_a_target_failed(example: Config) -> None:
    compare = gitlab(example)["repro-check"]
    assert compare["needs"] == ["run", "run-gpu"]
    assert compare["when"] == "always"  # `needs` alone skips it when a run job failed


@shells
def test_gitlab_compare_job_without_any_bundle_says_so_before_building(
    example: Config, tmp_path: Path, shell: str
) -> None:
    """GitLab runs it after a failed lock check too: no bundle, no image built for nothing."""
    lines = gitlab(example)["repro-check"]["script"]
    guard = lines[0]
    assert lines.index("toolkit build --target cpu") > 0
    env = fake_toolkit(tmp_path, 0)
    done = run_script(SHELLS[shell], guard, tmp_path, env)
    assert done.returncode == 2
    assert (tmp_path / "repro-check.md").read_text() == (
        "### repro-check could not compare: no target has a run bundle\n\n"
        f"- cpu: {NO_BUNDLE}\n- gpu: {NO_BUNDLE}\n"
    )
    assert not (tmp_path / "args").exists()
    (tmp_path / "repro-check.md").unlink()
    (tmp_path / "run-gpu.tar.gz").write_bytes(b"")  # one is enough to go on
    done = run_script(SHELLS[shell], guard, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "repro-check.md").exists()


@shells
def test_github_compare_job_without_any_bundle_says_so_before_building(
    example: Config, tmp_path: Path, shell: str
) -> None:
    """No target ran a run: no image is built for nothing, and the summary says why."""
    job = github(example)["jobs"]["repro-check"]
    names = [s.get("name", s.get("uses", "")) for s in job["steps"]]
    guard = names.index(next(n for n in names if n.startswith("Any run to compare?")))
    assert names.index("Build the cpu image") > guard
    assert any(n.startswith("actions/download-artifact") for n in names[:guard])
    script = job["steps"][guard]["run"]
    env = {**fake_toolkit(tmp_path, 0), "RUNNER_TEMP": str(tmp_path)}
    env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "summary.md")
    (tmp_path / "bundles").mkdir()
    done = run_script(SHELLS[shell], script, tmp_path, env)
    assert done.returncode == 2
    assert (tmp_path / "summary.md").read_text() == (
        "### repro-check could not compare: no target has a run bundle\n\n"
        f"- cpu: {NO_BUNDLE}\n- gpu: {NO_BUNDLE}\n"
    )
    (tmp_path / "summary.md").unlink()
    (tmp_path / "bundles" / "run-cpu.tar.gz").write_bytes(b"")
    done = run_script(SHELLS[shell], script, tmp_path, env)
    assert done.returncode == 0 and not (tmp_path / "summary.md").exists()


def test_gitlab_job_venv_is_removed_after_the_job(example: Config, tmp_path: Path) -> None:
    """A shell executor keeps /tmp between jobs: the venv the job made goes with it."""
    template = gitlab(example)[".toolkit"]
    job_id = f"pytest-{os.getpid()}-{tmp_path.name}"
    venv = Path(f"/tmp/toolkit-venv-{job_id}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text('#!/bin/sh\nmkdir -p "$3"\n')  # python3 -m venv DIR
    (bin_dir / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CI_JOB_ID": job_id}
    try:
        made = run_script(["sh", "-e"], template["before_script"][0], tmp_path, env)
        assert made.returncode == 0 and venv.is_dir(), made.stderr
        gone = run_script(["sh", "-e"], "\n".join(template["after_script"]), tmp_path, env)
        assert gone.returncode == 0 and not venv.exists(), gone.stderr
    finally:
        shutil.rmtree(venv, ignore_errors=True)


# --- both -------------------------------------------------------------------------------------


@shells
@pytest.mark.parametrize("kind", ["github", "gitlab"])
@pytest.mark.parametrize("verdict", [0, 1, 2])
def test_compare_names_the_target_without_a_bundle_and_fails(
    example: Config, tmp_path: Path, kind: str, shell: str, verdict: int
) -> None:
    """gpu's job failed before a run was recorded: cpu is still compared, and gpu is named."""
    script, arrived, env = compare_step(example, kind, tmp_path, fake_toolkit(tmp_path, verdict))
    (arrived / "run-cpu.tar.gz").write_bytes(b"")
    done = run_script(SHELLS[shell], script, tmp_path, env)
    assert done.returncode == 2  # not a pass: a target could not be checked
    # the job fails for the missing target: the report says so first, not repro-check's ✅
    expected = f"### {INCOMPLETE} gpu\n\n| verdict | diverged |\n- gpu: {NO_BUNDLE}\n"
    assert (tmp_path / "repro-check.md").read_text() == expected
    if kind == "github":
        assert (tmp_path / "summary.md").read_text() == expected
    *args, bundle, last = (tmp_path / "args").read_text().split()
    assert args == ["repro-check", "--target", "cpu", "--runs", "2", "--against"]
    assert Path(bundle).name == "run-cpu.tar.gz" and last == "--markdown"
    if kind == "github":
        assert bundle == f"{tmp_path}/bundles/run-cpu.tar.gz"


@shells
@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_compare_without_any_bundle_says_so_and_fails(
    example: Config, tmp_path: Path, kind: str, shell: str
) -> None:
    script, _, env = compare_step(example, kind, tmp_path, fake_toolkit(tmp_path, 0))
    done = run_script(SHELLS[shell], script, tmp_path, env)
    assert done.returncode == 2, done.stderr
    expected = (
        "### repro-check could not compare: no target has a run bundle\n\n"
        f"- cpu: {NO_BUNDLE}\n- gpu: {NO_BUNDLE}\n"
    )
    assert (tmp_path / "repro-check.md").read_text() == expected
    if kind == "github":
        assert (tmp_path / "summary.md").read_text() == expected
    assert not (tmp_path / "args").exists()  # repro-check was not asked to compare nothing
    assert "No such file" not in done.stderr and "*.tar.gz" not in done.stderr


@shells
@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_compare_with_every_bundle_names_no_target(
    example: Config, tmp_path: Path, kind: str, shell: str
) -> None:
    script, arrived, env = compare_step(example, kind, tmp_path, fake_toolkit(tmp_path, 1))
    for target in ("cpu", "gpu"):
        (arrived / f"run-{target}.tar.gz").write_bytes(b"")
    done = run_script(SHELLS[shell], script, tmp_path, env)
    assert done.returncode == 1
    assert (tmp_path / "repro-check.md").read_text() == "| verdict | diverged |\n"
    args = (tmp_path / "args").read_text().split()
    assert [Path(a).name for a in args[6:10:2]] == ["run-cpu.tar.gz", "run-gpu.tar.gz"]


def test_target_names_that_yaml_would_retype_stay_strings() -> None:
    cfg = parse_config(
        "name: p\ntargets: {'true': {}, '1.0': {gpus: 1}}\nexperiment: {command: x}\n",
        Path("/p/toolkit.yaml"),
    )
    include = github(cfg)["jobs"]["run"]["strategy"]["matrix"]["include"]
    assert [entry["target"] for entry in include] == ["true", "1.0"]
    doc = gitlab(cfg)
    assert doc["run"]["parallel"]["matrix"] == [{"TARGET": ["true"]}]
    assert doc["run-gpu"]["parallel"]["matrix"] == [{"TARGET": ["1.0"]}]


def test_control_is_the_first_target_without_gpus() -> None:
    cfg = parse_config(
        "name: p\ntargets: {big: {gpus: all}, small: {}}\nexperiment: {command: x}\n",
        Path("/p/toolkit.yaml"),
    )
    assert control_target(cfg).name == "small"
    doc = github(cfg)
    assert doc["jobs"]["repro-check"]["runs-on"] == ["ubuntu-latest"]
    assert "--target small --runs 2" in step(doc["jobs"]["repro-check"], "Compare")["run"]


def test_a_project_without_experiment_is_refused() -> None:
    cfg = parse_config("name: p\ntargets: {cpu: {}}\n", Path("/p/toolkit.yaml"))
    with pytest.raises(ConfigError, match="experiment"):
        render_github(cfg)


# --- validation with real tools ---------------------------------------------------------------

RENDERINGS = [
    ("github", "example", "vendor.github-workflows"),
    ("github", "cpu_only", "vendor.github-workflows"),
    ("gitlab", "example", "vendor.gitlab-ci"),
    ("gitlab", "cpu_only", "vendor.gitlab-ci"),
]


def rendered(kind: str, fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    cfg: Config = request.getfixturevalue(fixture)
    render = render_github if kind == "github" else render_gitlab
    path = tmp_path / ("toolkit.yml" if kind == "github" else ".gitlab-ci.yml")
    path.write_text(render(cfg, CiOptions(rtol=1e-4, atol=1e-6)))
    return path


@pytest.mark.parametrize(("kind", "fixture", "schema"), RENDERINGS)
def test_pipeline_passes_its_published_schema(
    kind: str, fixture: str, schema: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    pytest.importorskip("check_jsonschema")
    path = rendered(kind, fixture, request, tmp_path)
    # The vendored schemas ship inside the package: no network needed.
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    pytest.importorskip("check_jsonschema")
    path = tmp_path / "bad.yml"
    path.write_text("on: push\njobs:\n  a:\n    runs-onn: ubuntu-latest\n    steps: []\n")
    schema = "vendor.github-workflows"
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1


@pytest.mark.parametrize("fixture", ["example", "cpu_only"])
def test_github_workflow_passes_actionlint(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed")
    path = rendered("github", fixture, request, tmp_path)
    done = subprocess.run([actionlint, "-no-color", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("kind", "fixture", "schema"), RENDERINGS)
def test_every_script_passes_shellcheck(
    kind: str, fixture: str, schema: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    doc = yaml.safe_load(rendered(kind, fixture, request, tmp_path).read_text())
    if kind == "github":
        scripts = [
            ("bash", s["run"]) for job in doc["jobs"].values() for s in job["steps"] if "run" in s
        ]
    else:
        scripts = [
            ("sh", "\n".join(job.get("before_script", []) + job.get("script", [])))
            for job in doc.values()
            if isinstance(job, dict)
        ] + [
            ("sh", "\n".join(job["after_script"]))
            for job in doc.values()
            if isinstance(job, dict) and "after_script" in job
        ]
    for shell, script in scripts:
        # As actionlint does: an expression stands for one word.
        text = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", script)
        # SC1090/SC1091: sourcing the CI venv's activate script, which is not there to follow.
        done = subprocess.run(
            [shellcheck, "--shell", shell, "--exclude", "SC1090,SC1091", "-"],
            input=text,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{done.stdout}\n--- script ---\n{script}"


# --- the commands -----------------------------------------------------------------------------


def test_ci_github_writes_the_workflow_and_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text(CPU_ONLY)
    done = toolkit("ci", "github", "--gpu-runner", "gpu-box", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "wrote .github/workflows/toolkit.yml" in done.stdout
    assert "cpu: runs on ubuntu-latest" in done.stdout
    workflow = tmp_path / ".github" / "workflows" / "toolkit.yml"
    first = workflow.read_text()
    assert first == render_github(load_config(tmp_path / "toolkit.yaml"))

    again = toolkit("ci", "github", "--install", "pip install -e .", cwd=tmp_path, timeout=60)
    assert again.returncode == 1
    assert "exists" in again.stderr and "--force" in again.stderr
    assert workflow.read_text() == first

    forced = toolkit(
        "ci", "github", "--install", "pip install -e .", "--force", cwd=tmp_path, timeout=60
    )
    assert forced.returncode == 0, forced.stderr
    assert "pip install -e ." in workflow.read_text()


def test_ci_gitlab_writes_the_pipeline(tmp_path: Path) -> None:
    shutil.copy(ROOT / "toolkit.yaml", tmp_path / "toolkit.yaml")
    done = toolkit("ci", "gitlab", cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "gpu: runs on runners tagged gpu" in done.stdout
    assert yaml.safe_load((tmp_path / ".gitlab-ci.yml").read_text())["stages"] == [
        "lock",
        "run",
        "compare",
    ]
    # cpu and gpu, no tolerances: the compare job would fail on every push, and is said to
    assert "warning: gpu and cpu compute in different orders" in done.stderr
    tolerant = toolkit("ci", "gitlab", "--rtol", "1e-2", "--force", cwd=tmp_path, timeout=60)
    assert tolerant.returncode == 0 and "warning" not in tolerant.stderr


def test_ci_without_experiment_exits_2(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: p\ntargets: {cpu: {}}\n")
    done = toolkit("ci", "github", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "no experiment: a pipeline runs experiment.command" in " ".join(done.stderr.split())
    assert not (tmp_path / ".github").exists()


# --- helpers ----------------------------------------------------------------------------------


def fake_toolkit(
    folder: Path, exit_code: int, report: str = "| verdict | diverged |", said: str = ""
) -> dict[str, str]:
    """A `toolkit` on PATH that records its arguments, prints a report (and `said` on stderr)
    and exits."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "toolkit"
    printed = f'echo "{report}"\n' if report else ""
    told = "".join(f'echo "{line}" >&2\n' for line in said.splitlines())
    fake.write_text(f'#!/bin/sh\necho "$@" > "{folder}/args"\n{printed}{told}exit {exit_code}\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def command_fakes(folder: Path, exits: dict[str, int]) -> dict[str, str]:
    """A `toolkit` on PATH that appends its arguments to `calls` and exits with the code given
    for its subcommand (0 for others)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "toolkit"
    cases = "".join(f"  {name}) exit {code} ;;\n" for name, code in exits.items())
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{folder}/calls"\ncase "$1" in\n{cases}esac\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def compare_step(
    cfg: Config, kind: str, tmp_path: Path, env: dict[str, str]
) -> tuple[str, Path, dict[str, str]]:
    """The compare script, the folder where the job finds the bundles, and its environment;
    the report lands in tmp_path/repro-check.md on both (GitHub: $RUNNER_TEMP is tmp_path)."""
    if kind == "github":
        script = step(github(cfg)["jobs"]["repro-check"], "Compare")["run"]
        arrived = tmp_path / "bundles"  # downloaded to $RUNNER_TEMP/bundles
        arrived.mkdir()
    else:
        lines = gitlab(cfg)["repro-check"]["script"]
        script = "\n".join(lines[next(i for i, x in enumerate(lines) if "mktemp" in x) :])
        arrived = tmp_path  # artifacts arrive in the checkout
    env = {**env, "RUNNER_TEMP": str(tmp_path), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    return script, arrived, env


def github_if(expression: str, cancelled: bool = False, **context: str) -> bool:
    """A step's or job's `if:` evaluated as GitHub does, for the forms the generator writes:
    `!cancelled()`, `steps.<id>.outcome` / `needs.<job>.result` compared with a string, `&&`.
    A name the expression reads that the test did not give is a KeyError."""
    body = expression.removeprefix("${{").removesuffix("}}").strip()
    python = body.replace("!cancelled()", "(not cancelled)").replace("&&", "and")
    python = re.sub(
        r"\b(?:steps|needs)\.[\w-]+\.(?:outcome|result)\b",
        lambda m: repr(context[m.group(0)]),
        python,
    )
    return bool(eval(python, {"__builtins__": {}}, {"cancelled": cancelled}))


def run_script(
    shell: list[str], script: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    path = cwd / "step.sh"
    path.write_text(script)
    return subprocess.run(
        [*shell, str(path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_ci_refuses_what_would_write_a_pipeline_that_cannot_work(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    project = repo / "ml project"
    project.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (project / "toolkit.yaml").write_text(CPU_ONLY)
    nested = toolkit("ci", "github", cwd=project, timeout=60)
    assert nested.returncode == 2 and "not at the repository's root" in nested.stderr
    (project / "toolkit.yaml").rename(project / "exp.yaml")
    renamed = toolkit("-c", "exp.yaml", "ci", "gitlab", cwd=project, timeout=60)
    assert renamed.returncode == 2 and "rename exp.yaml to toolkit.yaml" in renamed.stderr
    for option in (["--rtol", "nan"], ["--atol", "inf"], ["--gpu-runner", " "]):
        refused = toolkit("ci", "github", *option, cwd=project, timeout=60)
        assert refused.returncode == 2, (option, refused.stderr)
    assert not list(repo.rglob("*.yml"))


def test_tolerances_are_written_as_given(example: Config) -> None:
    text = render_github(example, CiOptions(rtol=0.00012345678, atol=1234567.5))
    assert "--rtol 0.00012345678 --atol 1234567.5 --markdown" in text


def test_a_multi_line_install_is_one_gitlab_command(example: Config, tmp_path: Path) -> None:
    """GitLab runs each script entry apart: a line continuation must stay in one entry."""
    install = 'printf "%s\\n" one \\\n  two > installed'  # printf ... one \<newline> two
    before = gitlab(example, install=install)[".toolkit"]["before_script"]
    assert before[-1] == install
    subprocess.run(["sh", "-ec", before[-1]], cwd=tmp_path, check=True)
    assert (tmp_path / "installed").read_text() == "one\ntwo\n"
