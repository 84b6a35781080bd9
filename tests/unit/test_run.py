"""`toolkit run`'s own bookkeeping, without an engine: what is left when a run never starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from toolkit import run
from toolkit.config import load_config


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
