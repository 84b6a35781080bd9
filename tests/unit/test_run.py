"""`toolkit run`'s own bookkeeping, without an engine: what is left when a run never starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from toolkit import run
from toolkit.config import load_config
from toolkit.errors import ConfigError


def test_ctrl_c_before_the_experiment_starts_leaves_no_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "toolkit.yaml").write_text(
        f"name: t\ntargets: {{cpu: {{}}}}\nexperiment: {{command: {sys.executable} -V}}\n"
    )
    cfg = load_config(tmp_path / "toolkit.yaml")
    req = run.request(cfg, "cpu", None, native=True)

    def ctrl_c(*args: object) -> Path:
        raise KeyboardInterrupt  # pressed while the run is being set up

    monkeypatch.setattr(run, "runtime_bundle", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run.execute(cfg, req, on_stdout=lambda chunk: None, on_stderr=lambda chunk: None)
    assert list((tmp_path / "runs").iterdir()) == []


@pytest.mark.parametrize("seed", [-5, 2**32])
def test_a_seed_toolkit_yaml_would_refuse_is_refused_on_the_command_line_too(
    tmp_path: Path, seed: int
) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: t\ntargets: {cpu: {}}\n")
    cfg = load_config(tmp_path / "toolkit.yaml")
    with pytest.raises(ConfigError, match="--seed must be an integer from 0 to 4294967295"):
        run.request(cfg, "cpu", ["python"], seed=seed)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [({"seed": 5}, "--seed"), ({"threads": 1, "cpu": "portable"}, "--threads, --cpu"),
     ({"strict": False}, "--no-strict")],
)  # fmt: skip
def test_no_policy_with_a_policy_option_says_the_option_would_do_nothing(
    tmp_path: Path, overrides: dict[str, object], named: str
) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: t\ntargets: {cpu: {}}\n")
    cfg = load_config(tmp_path / "toolkit.yaml")
    with pytest.raises(ConfigError, match=f"libraries' defaults: {named} would have no effect"):
        run.request(cfg, "cpu", ["python"], apply_policy=False, **overrides)  # type: ignore[arg-type]


def test_a_native_runs_packages_come_from_the_python_its_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found as the run's shell finds it, not toolkit's own interpreter (a false drift)."""

    def program(name: str, first_line: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(first_line + b"\n")
        path.chmod(0o755)
        return path

    python, python3 = program("python", b"#!/bin/sh"), program("python3", b"#!/bin/sh")
    versioned = program("python3.11", b"#!/bin/sh")
    program("torchrun", b"#!/opt/venv/bin/python3 -s")
    program("accelerate", b"#!/usr/bin/env -S python3")
    program("make", b"\x7fELF\x02\x01")
    program("python3-coverage", b"#!/opt/cov/bin/python3")  # a script, not an interpreter
    monkeypatch.setenv("PATH", str(tmp_path))

    workdir = tmp_path / "exp"
    workdir.mkdir()
    (workdir / "train.py").write_bytes(b"#!/opt/own-venv/bin/python\nprint(1)\n")
    (workdir / "train.py").chmod(0o755)

    def found(*command: str) -> str:
        return run.native_python(command, workdir)

    assert found("python3.11", "train.py") == str(versioned)
    assert found("torchrun", "train.py") == "/opt/venv/bin/python3"
    assert found("accelerate", "launch", "train.py") == str(python3)
    assert found("./train.py") == "/opt/own-venv/bin/python"  # found where the run starts
    assert found("python3-coverage", "run", "train.py") == "/opt/cov/bin/python3"
    for command in (["make", "train"], ["sh", "-c", "exec python t.py"], ["env", "A=1", "python"]):
        assert found(*command) == str(python)


def test_the_record_keeps_what_a_child_process_did_differently() -> None:
    """A launcher script's child applied torch; another child's PYTHONHASHSEED failed."""

    def setting(name: str, status: str, detail: str = "") -> dict[str, object]:
        return {"name": name, "value": None, "status": status, "detail": detail}

    main = {
        "pid": 10,
        "argv": ["launch.py"],
        "settings": [
            setting("env PYTHONHASHSEED", "applied"),
            setting("torch", "not_applicable", "torch was not imported by this process"),
        ],
        "forced": [],
    }
    trainer = {
        "pid": 11,
        "argv": ["train.py", "--fast"],
        "settings": [
            setting("env PYTHONHASHSEED", "applied"),
            setting("torch.manual_seed", "applied"),
        ],
        "forced": ["DataLoader num_workers 2 -> 0"],
    }
    child = {
        "pid": 12,
        "argv": ["-c", "x"],
        "settings": [setting("env PYTHONHASHSEED", "failed", "was 'random' at startup")],
        "forced": ["DataLoader num_workers 2 -> 0"],
    }
    applied = run._merged_settings([main, trainer, child])
    assert applied == [
        setting("env PYTHONHASHSEED", "failed", "in process 12 (-c x): was 'random' at startup"),
        setting("torch.manual_seed", "applied"),
    ]
    assert run._merged_forced([main, trainer, child]) == ["DataLoader num_workers 2 -> 0"]


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["python", "-I", "train.py"], "-I"),
        (["python3.11", "-W", "ignore", "-uS", "train.py"], "-S"),
        (["/venv/bin/python", "-Xdev", "-E", "-m", "pkg"], "-E"),
        (["python", "train.py", "-I"], None),  # the script's own argument
        (["python", "-c", "import x", "-I"], None),
        (["python", "-m", "pkg.train", "-S"], None),
        (["sh", "-c", "python -I train.py"], None),  # not seen through a shell
        (["env", "A=1", "python3", "-I", "t.py"], "-I"),
        (["python-wrapper.sh", "-E"], None),
    ],
)
def test_a_python_option_that_skips_the_runtime_is_found(
    command: list[str], flag: str | None
) -> None:
    assert run._runtime_skipped(command) == flag


def test_the_main_process_report_comes_first_whatever_the_pids(tmp_path: Path) -> None:
    """Pids wrap: a DataLoader worker may get a lower pid than the process that forked it."""
    import json

    folder = tmp_path / "runtime"
    folder.mkdir()
    for report in (
        {"pid": 387, "ppid": 14612, "forked_from": 14612},
        {"pid": 14612, "ppid": 900},
        {"pid": 389, "ppid": 387},  # a grandchild
        {"pid": 12, "ppid": 1},  # re-parented (a resource tracker): top level, like main
    ):
        (folder / f"{report['pid']}.json").write_text(json.dumps(report))
    assert [r["pid"] for r in run._runtime_reports(tmp_path)] == [14612, 12, 387, 389]


def test_a_failed_runs_output_is_searched_for_the_ops_it_names(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_text(
        "[2026-11-27 13:54:25,992][train][ERROR] - step failed: put_ does not have a "
        "deterministic implementation, but you set 'torch.use_deterministic_algorithms(True)'\n"
        "/x/train.py:12: UserWarning: index_add_ does not have a deterministic implementation\n"
        "RuntimeError: put_ does not have a deterministic implementation\n"
    )
    assert run._ops_in_log(log) == [
        {"op": "put_", "mode": "in_output"},  # the op alone, whatever the log put before it
        {"op": "index_add_", "mode": "in_output"},
    ]
    assert run._ops_in_log(tmp_path / "missing.log") == []


def test_a_fact_that_cannot_be_read_costs_the_record_that_one_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code could not be read (git failed): the host, packages and data are still kept,
    and the run says what it lacks and why."""
    from toolkit import source

    (tmp_path / "toolkit.yaml").write_text(
        f"name: t\ntargets: {{cpu: {{}}}}\nexperiment: {{command: {sys.executable} -V}}\n"
    )
    cfg = load_config(tmp_path / "toolkit.yaml")
    req = run.request(cfg, "cpu", None, native=True)

    def broken(*args: object, **kwargs: object) -> object:
        raise source.GitFailed("`git diff` failed in /x")

    monkeypatch.setattr(source, "source_state", broken)
    notes: list[str] = []
    result = run.execute(
        cfg, req, on_stdout=lambda chunk: None, on_stderr=lambda chunk: None, on_note=notes.append
    )
    assert result.incomplete == ("code",)
    assert "the record is incomplete: code: GitFailed: `git diff` failed in /x" in notes
    doc = json.loads((result.path / "record.json").read_text())
    assert doc["code"] is None and doc["host"] and doc["data"] is not None and doc["packages"]


def test_what_a_native_run_inherits_is_recorded_without_its_secrets() -> None:
    """Records are shared (bundles, CI summaries): a secret's value is never in one, nor an
    unsalted hash a weak password could be guessed back from."""
    kept = run.inherited_environment(
        {
            "LR": "1e-3",
            "CUDA_VISIBLE_DEVICES": "0,1",
            "WANDB_MODE": "offline",
            "MYSQL_PWD": "hunter2",
            "GH_PAT": "ghp_" + "a" * 36,
            "SMTP_PW": "x",
            "DATABASE_URL": "postgres://u:hunter2@db/x",
            "DATA_DIR": "/home/alice/data",
            "PYTHONHASHSEED": "7",  # the policy's: recorded with the policy
            "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1",  # taken out of a native run's environment
            "KITTY_WINDOW_ID": "3",  # a terminal's own
            "DB": "postgres://admin:hunter2@db/prod",  # credentials whatever the name
            "HTTPS_PROXY": "http://jdoe:Summer2024@proxy.corp:8080",
            "CONN": "host=db password=hunter2",
            "LANG": "en_US.UTF-8",
        },
        {"PYTHONHASHSEED": "0"},
    )
    assert kept == {
        "CONN": "(set: not recorded)",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "DATABASE_URL": "(set: not recorded)",
        "DB": "(set: not recorded)",
        "DATA_DIR": "sha256:" + kept["DATA_DIR"].removeprefix("sha256:"),
        "GH_PAT": "(set: not recorded)",
        "HTTPS_PROXY": "(set: not recorded)",
        "LANG": "en_US.UTF-8",  # a locale, in clear: it changes what programs do
        "LR": "1e-3",
        "MYSQL_PWD": "(set: not recorded)",
        "SMTP_PW": "(set: not recorded)",
        "WANDB_MODE": "offline",
    }
    assert "alice" not in kept["DATA_DIR"]


def test_a_failed_runs_output_says_when_it_tried_to_reach_the_network(tmp_path: Path) -> None:
    for said in (
        "curl: (6) Could not resolve host: example.com",
        "fatal: unable to access 'https://github.com/x/y/': Could not resolve host: github.com",
        "Resolving example.com (example.com)... failed: unable to resolve host address",
        "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>",
    ):
        (tmp_path / "stderr.log").write_text(f"downloading\n{said}\n")
        assert run._offline_failure(tmp_path) is not None, said
    (tmp_path / "stderr.log").write_text("ValueError: bad shape\n")
    assert run._offline_failure(tmp_path) is None
