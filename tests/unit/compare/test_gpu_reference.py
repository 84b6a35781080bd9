"""The comparison core finds what shared/data/gpu-reference/README.md says is true of real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.compare import SeriesDiff, TensorFileDiff, compare_series, compare_tensor_files

# In CI the repository is cloned beside a copy of shared/: <repo>/../shared.
REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "gpu-reference"

pytestmark = pytest.mark.skipif(
    not (REFERENCE / "README.md").is_file(),
    reason=f"GPU reference runs not found at {REFERENCE} (expected <repo>/../shared)",
)


def losses(run: str) -> list[tuple[int, float]]:
    lines = (REFERENCE / run / "metrics.jsonl").read_text().splitlines()
    return [(record["step"], record["loss"]) for record in map(json.loads, lines)]


def compare_runs(a: str, b: str) -> tuple[SeriesDiff, TensorFileDiff]:
    series = compare_series("loss", losses(a), losses(b))
    weights = compare_tensor_files(REFERENCE / a / "weights.npz", REFERENCE / b / "weights.npz")
    return series, weights


def test_gpu_default_settings_diverge_from_step_4_and_every_tensor_differs() -> None:
    loss, weights = compare_runs("gpu-default-run1", "gpu-default-run2")
    assert loss.steps_compared == 300
    assert loss.first_differing_step == 4  # measured: steps 0-3 are bitwise equal
    assert loss.first_beyond_tolerance_step == 32  # float32 default atol 1e-5 absorbs the start
    assert loss.max_rel == pytest.approx(0.011745, rel=1e-4)  # 1.17 % at worst
    assert loss.verdict == "diverged"
    assert weights.summary.tensors_compared == 7
    assert weights.summary.tensors_differing == 7
    assert all(t.verdict == "diverged" and t.fraction_differing > 0.9 for t in weights.tensors)
    assert weights.verdict == "diverged"


def test_gpu_deterministic_runs_are_bitwise_identical() -> None:
    loss, weights = compare_runs("gpu-deterministic-run1", "gpu-deterministic-run2")
    assert (loss.steps_compared, loss.verdict, loss.first_differing_step) == (
        300,
        "identical",
        None,
    )
    assert weights.summary.tensors_compared == 7
    assert weights.summary.elements_compared == 350_282
    assert weights.summary.elements_differing == 0
    assert weights.verdict == "identical"


def test_cpu_runs_with_equal_thread_counts_are_identical() -> None:
    loss, weights = compare_runs("cpu-threads16-run1", "cpu-threads16-run2")
    assert (loss.steps_compared, loss.verdict) == (60, "identical")
    assert weights.verdict == "identical"


@pytest.mark.parametrize("control", ["cpu-threads16-run1", "cpu-threads16-run2"])
def test_cpu_thread_count_changes_results_from_step_4(control: str) -> None:
    loss, weights = compare_runs("cpu-threads4-run1", control)
    assert loss.first_differing_step == 4  # measured, the same step as on the GPU
    assert loss.max_rel == pytest.approx(0.00050353, rel=1e-4)  # 0.05 %: ~23x below the GPU's
    assert loss.verdict == "diverged"
    assert weights.summary.tensors_differing == 7
    assert weights.verdict == "diverged"
