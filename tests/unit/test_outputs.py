"""A native run's metrics file: appended to by its program (said), or rewritten (no news)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.outputs import appended


def jsonl(steps: range, scale: float = 1.0) -> bytes:
    return "".join(json.dumps({"step": s, "loss": scale / (s + 1)}) + "\n" for s in steps).encode()


def csv(steps: range, header: bool = True) -> bytes:
    rows = "".join(f"{s},{1 / (s + 1)}\n" for s in steps)
    return (("step,loss\n" if header else "") + rows).encode()


ONE_STEP = b'{"step": 0, "loss": 1}\n{"step": 0, "acc": 0.5}\n'


def epochs(count: int) -> bytes:
    """examples/quickstart/train.py's metrics: 4 steps an epoch, then an evaluation logged at
    the step the next epoch starts at."""
    lines, step = [], 0
    for _ in range(count):
        for _ in range(4):
            lines.append({"step": step, "train_loss": 1 / (step + 1)})
            step += 1
        lines.append({"step": step, "val_loss": 0.5})
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def said(before: bytes, now: bytes, tmp_path: Path) -> list[str]:
    """The warnings of a run that found `before` in m.jsonl and left `now` there."""
    (tmp_path / "m.jsonl").write_bytes(now)
    return appended({"m.jsonl": before}, tmp_path)


@pytest.mark.parametrize(
    ("before", "now"),
    [
        (jsonl(range(66)), jsonl(range(100))),  # the same program run longer, opening with "w"
        (csv(range(66)), csv(range(100))),
        (b'{"loss": 1}\n{"loss": 0.5}\n', b'{"loss": 1}\n{"loss": 0.5}\n{"loss": 0.25}\n'),
        (jsonl(range(3))[:-9], jsonl(range(5))),  # an earlier run stopped mid-line
        (jsonl(range(3)), jsonl(range(3)) + jsonl(range(3, 6))),  # resumed where it stopped
        # the bundled example run for another epoch: its evaluation line and the next epoch's
        # first line have one step
        (epochs(2), epochs(3)),
    ],
    ids=["jsonl", "csv", "no-steps", "torn-line", "resumed", "evaluation-at-the-next-step"],
)
def test_a_rewritten_file_that_starts_as_before_is_no_news(
    before: bytes, now: bytes, tmp_path: Path
) -> None:
    assert said(before, now, tmp_path) == []


@pytest.mark.parametrize(
    ("before", "now"),
    [
        (jsonl(range(66)), jsonl(range(66)) + jsonl(range(66))),  # the same run, appended
        (jsonl(range(66)), jsonl(range(66)) + jsonl(range(10, 20), 2.0)),  # other values
        (csv(range(66)), csv(range(66)) + csv(range(66))),  # its header again
        (csv(range(66)), csv(range(66)) + csv(range(3), header=False)),
        (b'{"loss": 1}\n{"loss": 0.5}\n', b'{"loss": 1}\n{"loss": 0.5}\n{"loss": 1}\n'),
        (ONE_STEP, ONE_STEP * 2),  # a run of one step, logged again
        (ONE_STEP, ONE_STEP + b'{"step": 0, "loss": 0.9}\n'),  # ... with another value
        (epochs(2), epochs(2) + epochs(2)),
    ],
    ids=[
        "jsonl",
        "jsonl-other-values",
        "csv",
        "csv-no-header",
        "no-steps",
        "one-step",
        "one-step-other-values",
        "epochs",
    ],
)
def test_a_file_a_new_run_was_appended_to_is_said_to_hold_earlier_runs(
    before: bytes, now: bytes, tmp_path: Path
) -> None:
    lines = before.count(b"\n")
    assert said(before, now, tmp_path) == [
        f"m.jsonl held {lines} lines before this run and still starts with them, and the lines "
        "after them start over as a new run's do: the program appends to it, so this record "
        "has earlier runs' metrics too; open it with 'w', or remove it between native runs"
    ]


def test_a_file_that_is_new_or_the_same_as_before_is_no_news(tmp_path: Path) -> None:
    assert said(b"", jsonl(range(3)), tmp_path) == []
    assert said(jsonl(range(3)), jsonl(range(3)), tmp_path) == []
    assert appended({"gone.jsonl": jsonl(range(3))}, tmp_path) == []


def test_the_mount_targets_toolkit_made_in_the_project_are_taken_away_when_empty(
    tmp_path: Path,
) -> None:
    from toolkit.outputs import missing_above, remove_empty

    (tmp_path / "kept").mkdir()
    assert missing_above(tmp_path / "kept", tmp_path) == []  # there already: not toolkit's
    made = [
        *missing_above(tmp_path / "m.jsonl", tmp_path),
        *missing_above(tmp_path / "ck" / "sub" / "x.bin", tmp_path),
        *missing_above(tmp_path / "out", tmp_path),
        *missing_above(tmp_path / "written" / "a.txt", tmp_path),
    ]
    assert made == [tmp_path / n for n in ("m.jsonl", "ck", "out", "written")]
    (tmp_path / "ck" / "sub").mkdir(parents=True)
    targets = {tmp_path / "m.jsonl", tmp_path / "ck" / "sub" / "x.bin"}
    for target in targets:
        target.touch()
    (tmp_path / "out").mkdir()
    (tmp_path / "written").mkdir()
    (tmp_path / "written" / "a.txt").write_text("the run's")  # not a mount target's emptiness
    (tmp_path / "written" / "_SUCCESS").touch()  # empty, but the run's own
    remove_empty(made, targets)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "written"]
    assert sorted(p.name for p in (tmp_path / "written").iterdir()) == ["_SUCCESS", "a.txt"]


def test_declared_outputs_the_run_wrote_nothing_in_are_named(tmp_path: Path) -> None:
    from toolkit.outputs import unwritten

    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.pt").write_bytes(b"w")
    (tmp_path / "empty").mkdir()
    (tmp_path / "result.txt").write_text("1")
    declared = ["ckpt/", "empty/", "result.txt", "model.pt", "nowhere/"]
    assert unwritten(tmp_path, declared) == ["empty/", "model.pt", "nowhere/"]
