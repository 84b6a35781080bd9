"""A record.json edited by hand, damaged, or written by a newer toolkit: diff, show and runs say
which field is wrong (exit 2 for diff), never an internal error; older records still read."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from tests.support import toolkit
from tests.unit.test_diff_records import folder, record
from toolkit.errors import UserError
from toolkit.record import read_record

CONFIG = "name: p\ntargets:\n  cpu: {base: debian, lockfile: lock.txt}\n"


def full(run_id: str) -> dict[str, Any]:
    """A record with every field `toolkit run` writes, as it writes them."""
    return record(
        run_id,
        [1.0, 0.5],
        engine_error=None,
        started="2026-11-27T10:04:41.900Z",
        ended="2026-11-27T10:04:43.400Z",
        duration_s=1.5,
        network="host",
        toolkit_version="0.1.0",
        image=None,
        lockfile={"path": "lock.txt", "sha256": "a" * 64, "state": "current", "reason": "ok"},
        code={
            "commit": "c" * 40,
            "dirty": False,
            "diff_sha256": None,
            "content_sha256": "d" * 64,
            "files": {"train.py": "e" * 12},
            "patch": None,
        },
        data={"digest": "f" * 64, "files": {"d/train.csv": "0" * 64}, "missing": []},
        determinism={
            "policy": {"seed": 0, "threads": 1},
            "environment": {"PYTHONHASHSEED": "0"},
            "applied": [{"name": "random", "value": 0, "status": "applied", "detail": ""}],
            "forced": [],
            "overridden": [],
            "nondeterministic_ops": [],
        },
        python="3.11.2",
        processes=[{"pid": 7, "ppid": 1, "argv": ["train.py"], "python": "3.11.2"}],
        host={"machine": "x86_64", "cpu_isa": ["avx2"], "hostname": "vm", "gpus": []},
        accelerator=None,
        libraries={"numpy": "2.4.6"},
        packages={"numpy": "2.4.6"},
        package_drift=[],
        incomplete=[],
        logs={"stdout": "stdout.log", "stderr": "stderr.log"},
    )


def edited(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    holder = doc
    for part in parents:
        holder = holder[part]
    holder[last] = value
    return doc


DAMAGE = [
    ("metrics", None, "metrics is null, expected an object"),
    (
        "metrics.series",
        None,
        "metrics.series is null, expected an object of [step, value] lists",
    ),
    (
        "metrics.series.loss",
        [[0, "abc"]],
        'metrics.series.loss[0] is [0, "abc"], expected [step, value]: an integer and a number, '
        '"NaN", "Infinity" or "-Infinity"',
    ),
    ("metrics.series.loss", [[0.5, 1.0]], "metrics.series.loss[0] is [0.5, 1.0], expected"),
    ("metrics.series.loss", [[0, 1.0, 2.0]], "metrics.series.loss[0] is [0, 1.0, 2.0], expected"),
    ("metrics.series.loss", {"0": 1.0}, "metrics.series.loss is an object, expected a list"),
    ("metrics.primary_final", "low", 'metrics.primary_final is "low", expected null, a number'),
    ("exit_code", "1", 'exit_code is "1", expected an integer or null'),
    ("exit_code", True, "exit_code is true, expected an integer or null"),
    ("status", None, "status is null, expected a string"),
    ("command", "python train.py", 'command is "python train.py", expected a list of strings'),
    ("determinism", None, "determinism is null, expected an object"),
    ("determinism.applied", {}, "determinism.applied is an object, expected a list of objects"),
    ("determinism.policy", [0], "determinism.policy is [0], expected an object or null"),
    ("code.dirty", "no", 'code.dirty is "no", expected true or false'),
    ("code.files", ["train.py"], "code.files is"),
    ("data.files", {"d/train.csv": 5}, "data.files.d/train.csv is 5, expected a string"),
    ("host.gpus", ["H200"], 'host.gpus[0] is "H200", expected an object'),
    ("outputs", [], "outputs is [], expected an object or null"),
    ("incomplete", "code", 'incomplete is "code", expected a list of strings'),
    ("packages", None, "packages is null, expected an object"),
]


@pytest.mark.parametrize(("field", "value", "said"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_field_is_named_and_diff_exits_2(
    tmp_path: Path, field: str, value: Any, said: str
) -> None:
    good = folder(tmp_path, full("good"))
    bad = folder(tmp_path, edited(full("bad"), field, value))
    result = toolkit("diff", str(good), str(bad), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr  # not 70, an internal error
    assert result.stderr.startswith(f"error: {bad / 'record.json'}: damaged run record ({said}")
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "restore this one from a copy" in result.stderr  # what to do
    assert result.stdout == ""


def test_every_field_a_run_writes_reads_back(tmp_path: Path) -> None:
    doc = full("good")
    doc["metrics"]["series"]["loss"].append([2, "NaN"])
    doc["metrics"]["primary_final"] = "-Infinity"
    back = read_record(folder(tmp_path, doc))
    assert math.isnan(back["metrics"]["series"]["loss"][2][1])
    assert back["metrics"]["primary_final"] == -math.inf


def test_records_of_older_toolkits_and_skipped_facts_still_read(tmp_path: Path) -> None:
    """Fields a record lacks were not recorded then; facts skipped with Ctrl-C are null."""
    older = folder(tmp_path, {"schema": "toolkit.run/1", "id": "old", "status": "succeeded"})
    assert read_record(older)["id"] == "old"
    skipped = full("skipped")
    skipped.update(code=None, data=None, host=None, lockfile=None, outputs=None)
    skipped.update(packages={}, package_drift=[], incomplete=["code", "host", "outputs"])
    del skipped["python"], skipped["network"]
    doc = read_record(folder(tmp_path, skipped))
    assert doc["code"] is None and "python" not in doc
    result = toolkit("diff", str(older), str(tmp_path / "skipped"), cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr  # compared, whatever the verdict


def test_a_record_of_a_newer_toolkit_is_refused_with_both_versions(tmp_path: Path) -> None:
    good = folder(tmp_path, full("good"))
    newer = folder(tmp_path, {**full("newer"), "schema": "toolkit.run/2"})
    result = toolkit("diff", str(good), str(newer), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: {newer / 'record.json'}: run record schema toolkit.run/2 is newer than this "
        "toolkit reads (toolkit.run/1)"
    )
    assert "upgrade toolkit to read it" in result.stderr and "Traceback" not in result.stderr
    odd = folder(tmp_path, {**full("odd"), "schema": "toolkit.run/beta"})
    with pytest.raises(UserError, match=r"unknown run record schema 'toolkit.run/beta'"):
        read_record(odd)


def test_show_names_the_damage_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text(CONFIG)
    (tmp_path / "runs").mkdir()
    bad = folder(tmp_path / "runs", edited(full("bad"), "metrics.series", None))
    result = toolkit("show", "bad", cwd=tmp_path)
    assert result.returncode == 1  # as for a run that cannot be found
    assert result.stderr.startswith(f"error: {bad / 'record.json'}: damaged run record (")
    assert "Traceback" not in result.stderr


def test_show_takes_a_record_that_lacks_keys_an_older_toolkit_did_not_write(
    tmp_path: Path,
) -> None:
    doc = full("partial")
    doc["code"] = {"commit": None}  # no `dirty`
    doc["data"] = {"files": {}}  # no `digest`
    doc["outputs"] = {"files": {}}
    doc["determinism"]["nondeterministic_ops"] = [{"mode": "raised"}]  # no `op`
    del doc["status"]
    result = toolkit("show", str(folder(tmp_path, doc)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_runs_lists_the_readable_runs_and_names_each_one_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text(CONFIG)
    runs = tmp_path / "runs"
    runs.mkdir()
    folder(runs, full("r1-good"))
    damaged = folder(runs, edited(full("r2-damaged"), "metrics", None))
    newer = folder(runs, {**full("r3-newer"), "schema": "toolkit.run/2"})
    (runs / "r4-torn").mkdir()
    (runs / "r4-torn" / "record.json").write_text('{"schema": "toolkit.run/1", "id"')
    result = toolkit("runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["r1-good"]
    warnings = result.stderr.splitlines()
    assert (
        f"warning: not listed: {damaged / 'record.json'}: damaged run record "
        "(metrics is null, expected an object)"
    ) in warnings
    assert any(f"not listed: {newer / 'record.json'}: run record schema" in w for w in warnings)
    assert any("r4-torn/record.json: unreadable run record" in w for w in warnings)


def test_latest_is_not_an_older_run_when_the_newest_record_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text(CONFIG)
    runs = tmp_path / "runs"
    runs.mkdir()
    folder(runs, full("20261127-100000-cpu-aaaa"))
    folder(runs, edited(full("20261127-110000-cpu-bbbb"), "metrics", None))
    result = toolkit("show", "latest", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith("error: the latest run cannot be read: ")
    assert "20261127-110000-cpu-bbbb/record.json: damaged run record" in result.stderr
    assert "20261127-100000-cpu-aaaa" not in result.stdout  # not shown in its place
