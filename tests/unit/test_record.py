"""Run records: order of `list_runs`, strict JSON for NaN metrics, what `find_run` says."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from toolkit.errors import UserError
from toolkit.record import find_run, list_runs, read_record, write_record


def record(run_id: str, started: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "toolkit.run/1",
        "id": run_id,
        "target": "cpu",
        "status": "succeeded",
        "exit_code": 0,
        "started": started,
        "metrics": {"primary": "loss", "primary_final": 0.5, "series": {"loss": [[0, 0.5]]}},
    }
    doc.update(changes)
    return doc


def add_run(root: Path, run_id: str, started: str, **changes: Any) -> Path:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    write_record(folder, record(run_id, started, **changes))
    return folder


def strict_json(text: str) -> Any:
    """json.loads as JavaScript's JSON.parse reads: no NaN, no Infinity."""

    def refuse(token: str) -> None:
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_runs_started_in_one_second_are_listed_by_start_time(tmp_path: Path) -> None:
    # the random hex at the end of the id sorts these two the other way round
    add_run(tmp_path, "20261127-100441-cpu-ffff", "2026-11-27T10:04:41.100Z")
    add_run(tmp_path, "20261127-100441-cpu-0aaa", "2026-11-27T10:04:41.900Z")
    add_run(tmp_path, "20261127-100440-cpu-9999", "2026-11-27T10:04:40.999Z")
    assert [r.id for r in list_runs(tmp_path)] == [
        "20261127-100440-cpu-9999",
        "20261127-100441-cpu-ffff",
        "20261127-100441-cpu-0aaa",
    ]


def test_runs_started_in_one_millisecond_fall_back_to_the_id(tmp_path: Path) -> None:
    add_run(tmp_path, "20261127-100441-cpu-bbbb", "2026-11-27T10:04:41.100Z")
    add_run(tmp_path, "20261127-100441-cpu-aaaa", "2026-11-27T10:04:41.100Z")
    assert [r.id for r in list_runs(tmp_path)] == [
        "20261127-100441-cpu-aaaa",
        "20261127-100441-cpu-bbbb",
    ]


@pytest.mark.parametrize(
    ("value", "written"), [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")]
)
def test_non_finite_metrics_are_written_as_strict_json(
    tmp_path: Path, value: float, written: str
) -> None:
    metrics = {
        "primary": "loss",
        "primary_final": value,
        "series": {"loss": [[0, 1.0], [1, value]]},
    }
    folder = add_run(tmp_path, "r", "2026-11-27T10:04:41.100Z", metrics=metrics)
    on_disk = strict_json((folder / "record.json").read_text())
    assert on_disk["metrics"]["primary_final"] == written
    assert on_disk["metrics"]["series"]["loss"] == [[0, 1.0], [1, written]]
    # every reader in toolkit goes through read_record: it sees the float again
    back = read_record(folder)["metrics"]
    assert back["series"]["loss"][0] == [0, 1.0]
    for found in (back["primary_final"], back["series"]["loss"][1][1]):
        assert isinstance(found, float)
        assert (math.isnan(found) and math.isnan(value)) or found == value
    summary = list_runs(tmp_path)[0]
    assert summary.primary_value is not None
    assert math.isnan(summary.primary_value) or summary.primary_value == value


def test_only_metric_values_are_read_back_as_numbers(tmp_path: Path) -> None:
    folder = add_run(
        tmp_path, "r", "2026-11-27T10:04:41.100Z", environment={"LOSS_SCALE": "Infinity"}
    )
    assert read_record(folder)["environment"] == {"LOSS_SCALE": "Infinity"}


def test_records_written_with_bare_nan_are_still_read(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "record.json").write_text(
        '{"schema": "toolkit.run/1", "id": "old", "metrics": {"primary_final": NaN}}'
    )
    assert math.isnan(read_record(folder)["metrics"]["primary_final"])


def test_a_file_that_is_not_a_run_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match=r"notes\.txt is not a run: give a run id, a run folder"):
        find_run(tmp_path, str(tmp_path / "notes.txt"))


def test_latest_is_the_run_that_started_last(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no runs yet"):
        find_run(tmp_path, "latest")
    add_run(tmp_path, "20261127-100441-cpu-ffff", "2026-11-27T10:04:41.900Z")
    add_run(tmp_path, "20261127-100441-cpu-0aaa", "2026-11-27T10:04:41.100Z")
    assert find_run(tmp_path, "latest").name == "20261127-100441-cpu-ffff"  # not the id's order


def test_a_long_metrics_series_is_written_a_point_a_line(tmp_path: Path) -> None:
    """Two metrics over 50,000 steps made a 5.6 MB record, more than the room held for it
    while a run fills the disk (4 MB)."""
    series = {name: [[step, 1 / (step + 1)] for step in range(50_000)] for name in ("loss", "acc")}
    series["loss"][7][1] = math.nan
    metrics = {"primary": "loss", "primary_final": 2e-05, "series": series}
    folder = add_run(tmp_path, "r", "2026-11-27T10:04:41.100Z", metrics=metrics)
    text = (folder / "record.json").read_text()
    assert "        [1, 0.5],\n        [2, 0.3333333333333333],\n" in text
    assert '        [7, "NaN"],\n' in text
    spread = json.dumps(json.loads(text), indent=2)  # each point over four lines
    assert len(text) < 0.7 * len(spread)
    back = read_record(folder)["metrics"]["series"]
    assert back["acc"] == series["acc"] and back["loss"][:7] == series["loss"][:7]
    assert math.isnan(back["loss"][7][1])
