"""`toolkit diff` on real GPU and CPU runs (shared/data/gpu-reference), as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import REFERENCE, reference_run, toolkit

pytestmark = pytest.mark.skipif(
    not (REFERENCE / "README.md").is_file(), reason=f"no reference runs at {REFERENCE}"
)


def diff(tmp_path: Path, a: str, b: str, *extra: str):  # type: ignore[no-untyped-def]
    return toolkit(
        "diff",
        str(reference_run(a, tmp_path)),
        str(reference_run(b, tmp_path)),
        *extra,
        cwd=tmp_path,
    )


def test_deterministic_gpu_runs_are_identical(tmp_path: Path) -> None:
    result = diff(tmp_path, "gpu-deterministic-run1", "gpu-deterministic-run2")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(
        "identical: gpu-deterministic-run1 (gpu native) vs gpu-deterministic-run2"
    )
    assert "loss differs by 0%" in first
    assert "all recorded inputs are the same" in result.stdout


def test_default_gpu_runs_diverge_at_step_4(tmp_path: Path) -> None:
    result = diff(tmp_path, "gpu-default-run1", "gpu-default-run2", "--json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema"] == "toolkit.diff/1"
    assert doc["verdict"] == "diverged"
    assert doc["first_divergence"] == ["loss", 4]
    assert doc["causes"] == []  # same recorded inputs: nondeterminism, not a changed input
    outputs = {o["path"]: o for o in doc["outputs"]}
    assert outputs["metrics.jsonl"]["note"] == "compared as metric series (see metrics)"
    weights = outputs["weights.npz"]
    assert weights["tensors"]["summary"]["tensors_differing"] == 7


def test_thread_count_is_attributed_to_settings(tmp_path: Path) -> None:
    result = diff(tmp_path, "cpu-threads16-run1", "cpu-threads4-run1", "--markdown")
    assert result.returncode == 1
    assert "| settings | threads | `16` | `4` |" in result.stdout
    assert "❌ diverged" in result.stdout


def test_loose_tolerance_turns_divergence_into_within_tolerance(tmp_path: Path) -> None:
    # weights differ by at most 0.0098 absolute between 16 and 4 threads; the loss by 0.05 %
    result = diff(
        tmp_path, "cpu-threads16-run1", "cpu-threads4-run1", "--rtol", "0.01", "--atol", "0.01"
    )
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("within tolerance")
    tight = diff(
        tmp_path, "cpu-threads16-run1", "cpu-threads4-run1", "--rtol", "0.01", "--atol", "0.009"
    )
    assert tight.returncode == 1


def test_html_report_is_self_contained_with_plots(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = diff(tmp_path, "gpu-default-run1", "gpu-default-run2", "--html", str(page))
    assert result.returncode == 1
    text = page.read_text()
    assert text.count("<svg") == 2  # the curves overlaid, and the deviation per step
    assert "first divergence: step 4" in text
    assert "<script" not in text and "http" not in text.replace('xmlns="http://www.w3.org', "")


def test_an_html_path_that_cannot_be_written_is_said_up_front(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "r.html"
    result = diff(tmp_path, "gpu-default-run1", "gpu-default-run2", "--html", str(missing))
    assert result.returncode == 2 and result.stdout == ""
    assert f"{missing}: folder {missing.parent} does not exist" in result.stderr
    assert "mkdir -p" in result.stderr and "Traceback" not in result.stderr
    folder = diff(tmp_path, "gpu-default-run1", "gpu-default-run2", "--html", str(tmp_path))
    assert folder.returncode == 2 and f"{tmp_path} is a folder, not a file" in folder.stderr
    # repro-check says so before its runs (no toolkit.yaml is read before the check either)
    check = toolkit("repro-check", "--html", str(missing), cwd=tmp_path)
    assert check.returncode == 2 and "does not exist" in check.stderr


def test_a_failed_html_write_comes_after_the_comparison_is_shown(tmp_path: Path) -> None:
    result = diff(tmp_path, "gpu-default-run1", "gpu-default-run2", "--html", "/dev/full")
    assert result.returncode == 2 and result.stdout.startswith("diverged")
    assert "cannot write the HTML report /dev/full: No space left on device" in result.stderr


def test_missing_and_corrupt_records_are_errors_not_tracebacks(tmp_path: Path) -> None:
    good = reference_run("cpu-threads16-run1", tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "record.json").write_text("{not json")
    result = toolkit("diff", str(good), str(bad), cwd=tmp_path)
    assert result.returncode in (1, 2)
    assert "unreadable run record" in result.stderr
    assert "Traceback" not in result.stderr
    missing = toolkit("diff", str(good), "nope", cwd=tmp_path)
    assert "no run 'nope'" in missing.stderr


def test_tolerances_from_toolkit_yaml_and_the_command_line_over_them(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text(
        "name: reference\ntargets: {cpu: {}}\ncompare: {rtol: 0.01, atol: 0.01}\n"
    )
    result = diff(tmp_path, "cpu-threads16-run1", "cpu-threads4-run1")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("within tolerance")
    tighter = diff(tmp_path, "cpu-threads16-run1", "cpu-threads4-run1", "--atol", "0.009")
    assert tighter.returncode == 1


def test_repro_check_refuses_a_bad_tolerance_before_any_run(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text(
        "name: t\ntargets: {cpu: {}}\nexperiment: {command: python -c 'raise SystemExit(9)'}\n"
    )
    result = toolkit("repro-check", "--native", "--rtol", "nan", cwd=tmp_path)
    assert result.returncode == 2
    assert "rtol must be a finite number >= 0, got nan" in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before the first run


def test_runs_apart_with_the_same_inputs_are_told_where_to_look(tmp_path: Path) -> None:
    """H100, default settings: nothing recorded differs, the losses part at step 4."""
    result = diff(tmp_path, "gpu-default-run1", "gpu-default-run2")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    at = lines.index("  all recorded inputs are the same")
    assert lines[at + 1].startswith("  (the same inputs, another result: randomness the policy")
    same = diff(tmp_path, "gpu-deterministic-run1", "gpu-deterministic-run2")
    assert "another result" not in same.stdout  # identical: nothing to explain
