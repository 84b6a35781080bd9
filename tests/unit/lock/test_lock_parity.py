"""Parity: every package outside the torch family and CUDA wheels pinned alike in every target."""

from __future__ import annotations

import pytest

from toolkit import lock

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
