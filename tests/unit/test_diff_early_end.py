"""`toolkit diff` of a run that failed or was stopped against one that went on: the steps it never
reached are said to be missing, not taken for a numeric divergence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support import toolkit
from tests.unit.test_diff_records import folder, record
from toolkit.diff import EarlyEnd, Run, diff_runs
from toolkit.report import diff_html, diff_json, diff_markdown, diff_text, headline


def training(
    run_id: str, epochs: int, *, stop_at: int | None = None, **extra: Any
) -> dict[str, Any]:
    """The example's series: train_loss at each of 32 steps an epoch, val_loss after each epoch,
    as a run that stopped (raised, or Ctrl-C) before step `stop_at` logged them."""
    train, val = [], []
    for step in range(epochs * 32):
        train.append([step, 1.0 / (step + 1)])
        if step % 32 == 31:
            val.append([step + 1, 0.5 / (step + 1)])
    if stop_at is not None:
        train = [p for p in train if p[0] < stop_at]
        val = [p for p in val if p[0] <= stop_at]
    doc = record(run_id, [], **extra)
    doc["metrics"] = {"primary": "val_loss", "series": {"train_loss": train, "val_loss": val}}
    return doc


def failed(run_id: str, epochs: int, stop_at: int, **extra: Any) -> dict[str, Any]:
    return training(run_id, epochs, stop_at=stop_at, status="failed", exit_code=1, **extra)


def test_a_failed_run_identical_up_to_its_stop_is_said_to_have_stopped(tmp_path: Path) -> None:
    """A: 4 epochs; B raised after epoch 1 (steps 0..63 and val_loss at 32 and 64)."""
    a = folder(tmp_path, training("a", 4))
    b = folder(tmp_path, failed("b", 4, stop_at=64))
    result = toolkit("diff", str(a), str(b), cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # B is incomplete: they still differ
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "diverged: a (cpu native) vs b (cpu native); B stopped early (failed, exit 1): "
        "identical to A over the 64 steps both logged, A goes on to step 127 (train_loss)"
    )
    assert "warning: b did not succeed (status 'failed', exit 1)" in lines
    assert (
        "  train_loss       identical over 64 shared steps; 64 steps only in A "
        "(B stopped at step 63)"
    ) in lines
    assert (
        "  val_loss         identical over 2 shared steps; 2 steps only in A (B stopped at step 64)"
    ) in lines
    assert "differs by" not in result.stdout and "max abs 0" not in result.stdout


def test_the_same_is_said_in_json_markdown_and_html(tmp_path: Path) -> None:
    a = Run(training("a", 4), tmp_path / "a")
    b = Run(failed("b", 4, stop_at=64), tmp_path / "b")
    d = diff_runs(a, b)
    assert d.verdict == "diverged"
    assert d.headline is None  # no % taken between A's step 128 and B's step 64
    assert d.first_divergence is None  # no step where the values differ
    assert d.early_end == EarlyEnd("B", "b", "failed", 1, ("train_loss", "val_loss"), "train_loss")
    doc = json.loads(json.dumps(diff_json(d), allow_nan=False))
    assert doc["headline"] is None and doc["first_divergence"] is None
    assert doc["early_end"]["side"] == "B" and doc["early_end"]["exit_code"] == 1
    assert doc["headline_text"] == headline(d) == diff_text(d)[0]
    train = doc["metrics"][0]
    assert (train["shared_verdict"], train["last_step_a"], train["last_step_b"]) == (
        "identical",
        127,
        63,
    )
    markdown = diff_markdown(d)
    assert headline(d) in markdown
    assert (
        "| train_loss | identical over 64 shared steps; 64 steps only in A (B stopped at step 63)"
        " | - | 0 | 0% |"
    ) in markdown
    page = diff_html(d, a, b)
    assert "B stopped early (failed, exit 1): identical to A over the 64 steps" in page
    assert "<h2>train_loss: identical over 64 shared steps; 64 steps only in A" in page
    assert "first divergence" not in page  # no marker where nothing diverged


def test_shared_steps_that_differ_are_measured_at_the_last_step_both_logged(
    tmp_path: Path,
) -> None:
    a = training("a", 4)
    b = failed("b", 4, stop_at=64)
    b["metrics"]["series"]["train_loss"][10][1] += 0.01  # a real change at step 10
    b["metrics"]["series"]["val_loss"][1][1] *= 1.02  # and 2% at step 64, the last both logged
    d = diff_runs(Run(a, tmp_path / "a"), Run(b, tmp_path / "b"))
    assert d.first_divergence == ("train_loss", 10)  # not 64, where B stopped
    assert d.headline is not None and abs(d.headline - 0.02 / 1.02) < 1e-12
    text = "\n".join(diff_text(d))
    assert text.startswith(
        "diverged: a (cpu native) vs b (cpu native); val_loss differs by 1.96% at step 64, the "
        "last step both logged, first at step 10 (train_loss); B stopped early (failed, exit 1) "
        "at step 63, A goes on to step 127 (train_loss)"
    )
    train = next(line for line in text.splitlines() if line.startswith("  train_loss"))
    assert train.startswith(
        "  train_loss       diverged over 64 shared steps: first differs at step 10, max abs 0.01"
    )
    assert train.endswith("; 64 steps only in A (B stopped at step 63)")


def test_an_interrupted_run_that_logged_nothing_did_not_differ_at_step_0(tmp_path: Path) -> None:
    a = folder(tmp_path, training("a", 3))
    b = folder(tmp_path, training("b", 0, status="interrupted", exit_code=None))
    result = toolkit("diff", str(a), str(b), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == (
        "diverged: a (cpu native) vs b (cpu native); B stopped early (interrupted) before "
        "logging any step; A logged up to step 95 (train_loss)"
    )
    assert "first at step 0" not in result.stdout
    assert "warning: b did not succeed (status 'interrupted')" in result.stdout
    assert (
        "  train_loss       no shared steps; 96 steps only in A (B stopped before logging any)"
        in result.stdout.splitlines()
    )


def test_the_run_that_stopped_may_be_a(tmp_path: Path) -> None:
    a = Run(training("a", 4, stop_at=48, status="interrupted", exit_code=130), tmp_path / "a")
    b = Run(training("b", 4), tmp_path / "b")
    d = diff_runs(a, b)
    assert d.early_end is not None and (d.early_end.side, d.early_end.run) == ("A", "a")
    assert headline(d).endswith(
        "A stopped early (interrupted, exit 130): identical to B over the 48 steps both logged, "
        "B goes on to step 127 (train_loss)"
    )
    assert (
        "  train_loss       identical over 48 shared steps; 80 steps only in B "
        "(A stopped at step 47)" in diff_text(d)
    )


def test_two_complete_runs_of_different_lengths_still_differ_in_their_final_values(
    tmp_path: Path,
) -> None:
    """4 epochs against 3, both succeeded: a real difference, measured by each one's final value."""
    d = diff_runs(Run(training("a", 4), tmp_path / "a"), Run(training("b", 3), tmp_path / "b"))
    assert d.early_end is None
    assert d.first_divergence == ("train_loss", 96)
    assert d.headline is not None and abs(d.headline - 0.25) < 1e-12  # 0.5/128 against 0.5/96
    assert "stopped early" not in headline(d)


def test_a_failed_run_that_logged_every_step_is_no_early_stop(tmp_path: Path) -> None:
    """It failed after its last step (saving the model): its metrics are the other's."""
    d = diff_runs(
        Run(training("a", 2), tmp_path / "a"),
        Run(training("b", 2, status="failed", exit_code=1), tmp_path / "b"),
    )
    assert d.early_end is None
    assert d.verdict == "identical"
    assert d.warnings == ("b did not succeed (status 'failed', exit 1)",)


def test_runs_stopped_at_different_points_are_not_blamed_on_randomness(tmp_path: Path) -> None:
    """Both `--epochs 50`, one stopped by SIGINT, one by SIGTERM later: the same wherever both
    logged; where one stopped is the difference, not randomness the policy missed."""
    a = Run(training("a", 50, stop_at=288, status="interrupted", exit_code=130), tmp_path / "a")
    b = Run(training("b", 50, stop_at=600, status="interrupted", exit_code=130), tmp_path / "b")
    d = diff_runs(a, b)
    assert d.verdict == "diverged" and d.inputs == ()
    assert d.early_end is not None and d.early_end.side == "A"
    text = diff_text(d)
    at = text.index("inputs:")
    assert text[at + 1 : at + 3] == ["  all recorded inputs are the same", ""]
    assert "another result" not in diff_markdown(d) + diff_html(d, a, b)
    # values that part where both logged, with the same inputs, still point to randomness
    b.record["metrics"]["series"]["train_loss"][10][1] += 0.01
    said = "\n".join(diff_text(diff_runs(a, b)))
    assert "  (the same inputs, another result: randomness the policy" in said


def test_a_run_that_failed_after_its_last_step_is_not_blamed_on_randomness(
    tmp_path: Path,
) -> None:
    """B logged every step, then failed before writing its checkpoint."""
    a = training("a", 1, outputs={"files": {"model.pt": "a" * 64}})
    b = training("b", 1, status="failed", exit_code=1)
    d = diff_runs(Run(a, tmp_path / "a"), Run(b, tmp_path / "b"))
    assert d.verdict == "diverged" and d.unfinished == ("B failed, exit 1",)
    assert "another result" not in "\n".join(diff_text(d))
