"""Parity: every package outside the torch family and CUDA wheels pinned alike in every target."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import toolkit
from toolkit import lock
from toolkit.config import Config, parse_config

CPU = """\
# toolkit lock: target=cpu python=3.11 format=1 inputs=sha256:00
filelock==3.16.1 \\
    --hash=sha256:00
    # via torch
Jinja2==3.1.6 \\
    --hash=sha256:00
numpy==2.1.0 \\
    --hash=sha256:00
torch==2.13.0+cpu \\
    --hash=sha256:00
"""

GPU = """\
filelock==3.16.1 \\
    --hash=sha256:00
jinja2==3.1.6 \\
    --hash=sha256:00
numpy==2.2.0 \\
    --hash=sha256:00
nvidia-cublas==13.1.1.3 \\
    --hash=sha256:00
cuda-bindings==13.5.0 \\
    --hash=sha256:00
torch==2.13.0 \\
    --hash=sha256:00
triton==3.7.1 \\
    --hash=sha256:00
pytorch-triton-rocm==3.2.0 \\
    --hash=sha256:00
tqdm==4.67.1 \\
    --hash=sha256:00
"""


def test_read_pins_normalises_names() -> None:
    assert lock.read_pins(CPU) == {
        "filelock": "3.16.1",
        "jinja2": "3.1.6",
        "numpy": "2.1.0",
        "torch": "2.13.0+cpu",
    }


@pytest.mark.parametrize(
    "name",
    [
        "torch",
        "TorchVision",
        "torchaudio",
        "triton",
        "pytorch-triton-rocm",
        "nvidia_cudnn_cu13",
        "cuda-bindings",
    ],
)
def test_platform_packages(name: str) -> None:
    assert lock.is_platform_package(name)


@pytest.mark.parametrize("name", ["numpy", "torchmetrics", "filelock", "nvidiatools"])
def test_shared_packages(name: str) -> None:
    assert not lock.is_platform_package(name)


def test_divergent_pins_are_reported_by_package() -> None:
    parity = lock.compare_pins({"cpu": lock.read_pins(CPU), "gpu": lock.read_pins(GPU)})
    assert not parity.ok
    assert parity.shared == 2  # filelock, jinja2
    assert [m.describe() for m in parity.mismatches] == [
        "numpy: cpu 2.1.0, gpu 2.2.0",
        "tqdm: cpu (absent), gpu 4.67.1",
    ]


def test_identical_pins_and_single_targets_are_in_parity() -> None:
    pins = lock.read_pins(CPU)
    assert lock.compare_pins({"cpu": pins, "gpu": dict(pins, torch="2.13.0")}).ok
    assert lock.compare_pins({"cpu": pins}).ok
    assert lock.compare_pins({}).ok


def test_parity_names_the_targets_whose_lockfile_is_stale(tmp_path: Path) -> None:
    cfg = stale_cpu_project(tmp_path)
    parity = lock.parity(cfg)
    assert [m.describe() for m in parity.mismatches] == ["joblib: cpu (absent), gpu 1.6.0"]
    assert parity.stale == ("cpu",)


def test_stale_lockfile_parity_fix_is_to_relock_it(tmp_path: Path) -> None:
    stale_cpu_project(tmp_path)
    done = toolkit("lock", "--check", cwd=tmp_path, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    parity = lines.index("fail  parity           joblib: cpu (absent), gpu 1.6.0")
    assert lines[parity + 1] == (
        "fix: re-lock the stale target first: `toolkit lock --target cpu` "
        "(if they still differ, pin the package in requirements.in)"
    )


def test_parity_fix_of_current_lockfiles_is_to_pin(tmp_path: Path) -> None:
    cfg = stale_cpu_project(tmp_path)
    write_lock(cfg, "cpu", "six==1.0\njoblib==1.5.0\n")
    assert lock.parity(cfg).stale == ()
    done = toolkit("lock", "--check", cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert "fix: pin the package in requirements.in, then run `toolkit lock`" in done.stdout


def write_lock(cfg: Config, name: str, body: str) -> None:
    inputs = lock.lock_inputs(cfg, cfg.targets[name])
    header = lock.LockHeader(
        name, inputs.python, lock.FORMAT, inputs.digest, inputs.requirements, inputs.index
    )
    path = cfg.targets[name].lockfile
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lock.render_header(header) + body)


def stale_cpu_project(root: Path) -> Config:
    """joblib added to requirements.in, then only the gpu target locked again."""
    yaml = 'name: demo\npython: "3.11"\ntargets:\n  cpu: {}\n  gpu: {}\n'
    (root / "toolkit.yaml").write_text(yaml)
    (root / "requirements.in").write_text("six\n")
    cfg = parse_config(yaml, root / "toolkit.yaml")
    write_lock(cfg, "cpu", "six==1.0\n")
    (root / "requirements.in").write_text("six\njoblib\n")
    write_lock(cfg, "gpu", "six==1.0\njoblib==1.6.0\n")
    return cfg
