"""What a run's record says about its inputs: the native interpreter, the inherited environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit import facts


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
        return facts.native_python(command, workdir)

    assert found("python3.11", "train.py") == str(versioned)
    assert found("torchrun", "train.py") == "/opt/venv/bin/python3"
    assert found("accelerate", "launch", "train.py") == str(python3)
    assert found("./train.py") == "/opt/own-venv/bin/python"  # found where the run starts
    assert found("python3-coverage", "run", "train.py") == "/opt/cov/bin/python3"
    for command in (["make", "train"], ["sh", "-c", "exec python t.py"], ["env", "A=1", "python"]):
        assert found(*command) == str(python)


def test_what_a_native_run_inherits_is_recorded_without_its_secrets() -> None:
    """Records are shared (bundles, CI summaries): a secret's value is never in one, nor an
    unsalted hash a weak password could be guessed back from."""
    kept = facts.inherited_environment(
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
