"""`toolkit runs` and `toolkit show`, as a user runs them (no Docker: records made here)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support import toolkit
from toolkit.bundle import export_runs
from toolkit.record import write_record

CONFIG = "name: demo\ntargets:\n  cpu: {base: debian, lockfile: lock.txt}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "toolkit.yaml").write_text(CONFIG)
    return tmp_path


def add_run(root: Path, run_id: str, started: str, **changes: Any) -> Path:
    doc: dict[str, Any] = {
        "schema": "toolkit.run/1",
        "id": run_id,
        "project": "demo",
        "target": "cpu",
        "status": "succeeded",
        "exit_code": 0,
        "engine_error": None,
        "command": ["python", "-c", "import sys; print('hi')"],
        "started": started,
        "duration_s": 1.5,
        "native": False,
        "image": {"ref": "demo-cpu:abc"},
        "code": {"commit": "abc123", "dirty": False},
        "data": None,
        "determinism": {"policy": None, "applied": [], "nondeterministic_ops": []},
        "package_drift": [],
        "incomplete": [],
        "metrics": {"primary": "loss", "primary_final": 0.25, "series": {"loss": [[0, 0.25]]}},
        "outputs": {"files": {"model.pt": "f" * 64}, "digest": "d" * 64},
    }
    doc.update(changes)
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    write_record(folder, doc)
    return folder


def rows(stdout: str) -> dict[str, str]:
    """`show`'s table off a terminal: field, two spaces or more, value."""
    found = {}
    for line in stdout.splitlines()[1:]:
        field, _, value = line.partition("  ")
        found[field] = value.strip()
    return found


def test_runs_started_in_one_second_are_listed_oldest_first(project: Path) -> None:
    add_run(project, "20261127-100441-cpu-ffff", "2026-11-27T10:04:41.100Z")
    add_run(project, "20261127-100441-cpu-0aaa", "2026-11-27T10:04:41.900Z")
    result = toolkit("runs", cwd=project)
    assert result.returncode == 0, result.stderr
    ids = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert ids == ["20261127-100441-cpu-ffff", "20261127-100441-cpu-0aaa"]


def test_show_a_failed_run(project: Path) -> None:
    add_run(
        project,
        "20261127-100441-cpu-0aaa",
        "2026-11-27T10:04:41.900Z",
        status="engine_lost",
        exit_code=None,
        engine_error="the container was removed while it ran",
        metrics={"primary": "loss", "primary_final": None, "series": {}},
    )
    result = toolkit("show", "20261127-100441-cpu-0aaa", cwd=project)
    assert result.returncode == 0, result.stderr
    shown = rows(result.stdout)
    assert shown["status"] == "engine_lost"
    assert shown["engine error"] == "the container was removed while it ran"
    assert shown["command"] == "python -c 'import sys; print('\"'\"'hi'\"'\"')'"
    assert shown["primary"] == "loss=-"
    assert shown["outputs"] == "1 file, " + "d" * 16
    assert shown["applied"] == "0 settings"
    assert "package drift" not in shown  # container runs have none


def test_show_a_run_that_exited(project: Path) -> None:
    add_run(project, "r1", "2026-11-27T10:04:41.900Z", status="failed", exit_code=3)
    shown = rows(toolkit("show", "r1", cwd=project).stdout)
    assert shown["status"] == "failed (exit 3)"
    assert "engine error" not in shown


def test_show_lists_a_native_runs_package_drift(project: Path) -> None:
    drift = [
        {"package": "torch", "locked": "2.4.0", "installed": "2.3.1"},
        {"package": "numpy", "locked": "1.26.4", "installed": None},
    ]
    add_run(project, "native", "2026-11-27T10:04:41.900Z", native=True, package_drift=drift)
    add_run(project, "clean", "2026-11-27T10:04:42.900Z", native=True)
    shown = rows(toolkit("show", "native", cwd=project).stdout)
    assert shown["package drift"] == (
        "torch 2.3.1 (locked 2.4.0), numpy not installed (locked 1.26.4)"
    )
    clean = rows(toolkit("show", "clean", cwd=project).stdout)
    assert clean["package drift"] == "none: the installed packages match the lockfile"


def test_show_reads_a_bundle_of_one_run(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = add_run(project, "20261127-100441-cpu-0aaa", "2026-11-27T10:04:41.900Z")
    bundle = tmp_path_factory.mktemp("elsewhere") / "run-cpu.tar.gz"
    export_runs([folder], bundle)
    result = toolkit("show", str(bundle), cwd=bundle.parent)  # no project needed
    assert result.returncode == 0, result.stderr
    assert rows(result.stdout)["id"] == "20261127-100441-cpu-0aaa"


def test_show_of_a_bundle_of_several_runs_names_them(project: Path) -> None:
    folders = [
        add_run(project, "r1", "2026-11-27T10:04:41.900Z"),
        add_run(project, "r2", "2026-11-27T10:04:42.900Z"),
    ]
    export_runs(folders, project / "runs.tar.gz")
    result = toolkit("show", "runs.tar.gz", cwd=project)
    assert result.returncode == 1
    assert "runs.tar.gz holds 2 runs: r1, r2; give one" in result.stderr
    assert "toolkit runs import runs.tar.gz" in result.stderr
    assert "Traceback" not in result.stderr
    diffed = toolkit("diff", "r1", "runs.tar.gz", cwd=project)  # the same way forward
    assert diffed.returncode == 2
    assert "runs.tar.gz holds 2 runs: r1, r2; give one" in diffed.stderr
    assert "`toolkit runs import runs.tar.gz`, then give one of these ids" in diffed.stderr


def test_show_json_is_strict_json_with_nan_metrics(project: Path) -> None:
    nan = float("nan")
    add_run(
        project,
        "r1",
        "2026-11-27T10:04:41.900Z",
        metrics={"primary": "loss", "primary_final": nan, "series": {"loss": [[0, nan]]}},
    )
    result = toolkit("show", "r1", "--json", cwd=project)
    assert result.returncode == 0, result.stderr

    def refuse(token: str) -> None:
        raise AssertionError(f"not strict JSON: {token}")

    doc = json.loads(result.stdout, parse_constant=refuse)
    assert doc["metrics"]["primary_final"] == "NaN"
    assert rows(toolkit("show", "r1", cwd=project).stdout)["primary"] == "loss=nan"


def test_a_run_that_did_not_succeed_lists_its_last_logged_value_as_such(project: Path) -> None:
    add_run(project, "20261127-100441-cpu-0001", "2026-11-27T10:04:41.100Z")
    add_run(project, "20261127-100442-cpu-0002", "2026-11-27T10:04:42.100Z", status="failed")
    lines = toolkit("runs", cwd=project).stdout.splitlines()[1:]
    assert "  loss=0.25  " in lines[0]  # a final value
    assert "  loss=0.25 (last logged)  " in lines[1]


def test_show_says_what_network_a_run_had_and_what_a_native_run_inherited(project: Path) -> None:
    add_run(project, "20261127-100441-cpu-0001", "2026-11-27T10:04:41.100Z", network="none")
    inherited = {"LR": "1e-3", "HF_TOKEN": "(set: not recorded)"}
    add_run(
        project,
        "20261127-100442-cpu-0002",
        "2026-11-27T10:04:42.100Z",
        native=True,
        network="host",
        host_environment=inherited,
    )
    shown = rows(toolkit("show", "20261127-100441-cpu-0001", cwd=project).stdout)
    assert shown["network"] == "none (loopback only)" and "environment" not in shown
    shown = rows(toolkit("show", "latest", cwd=project).stdout)
    assert shown["network"] == "this machine's (native)"
    assert shown["environment"] == "2 variables inherited (1 secret-named, not recorded)"


def test_an_export_never_replaces_a_file_unless_told_and_warns_inside_the_project(
    project: Path,
) -> None:
    """`toolkit runs export latest helpers.py` replaced the source file with a bundle."""
    add_run(project, "20261127-100441-cpu-0001", "2026-11-27T10:04:41.100Z")
    source = project / "helpers.py"
    source.write_text("x = 1\n")
    refused = toolkit("runs", "export", "latest", "helpers.py", cwd=project)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: helpers.py exists: not replaced\n")
    assert "--force" in refused.stderr and source.read_text() == "x = 1\n"
    forced = toolkit("runs", "export", "latest", "helpers.py", "--force", cwd=project)
    assert forced.returncode == 0 and source.read_bytes()[:2] == b"\x1f\x8b"  # a gzip bundle

    import subprocess

    subprocess.run(["git", "init", "-q", str(project)], check=True)
    inside = toolkit("runs", "export", "latest", "b.tar.gz", cwd=project)
    assert "warning: b.tar.gz is in the project, where git sees a new file" in inside.stderr
    (project / ".gitignore").write_text("*.tar.gz\n")
    ignored = toolkit("runs", "export", "latest", "c.tar.gz", cwd=project)
    assert ignored.returncode == 0 and "warning" not in ignored.stderr


def unrecorded(root: Path, run_id: str) -> Path:
    """A run folder as toolkit leaves it when killed (SIGKILL, out of memory) or unable to write
    the record (disk full): logs and outputs, no record.json; or as a run still going has it."""
    folder = root / "runs" / run_id
    (folder / "outputs").mkdir(parents=True)
    (folder / "stdout.log").write_text("epoch 0\n")
    (folder / "stderr.log").write_text("")
    return folder


def test_runs_lists_a_run_folder_without_a_record(project: Path) -> None:
    add_run(project, "20261127-100441-cpu-0001", "2026-11-27T10:04:41.100Z")
    unrecorded(project, "20261127-100500-cpu-0002")
    (project / "runs" / "notes").mkdir()  # a folder that is no run's: not listed
    result = toolkit("runs", cwd=project)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()[1:]
    assert len(lines) == 2
    assert lines[1].split() == [
        "20261127-100500-cpu-0002",
        "cpu",
        "no",
        "record",
        "-",
        "2026-11-27",
        "10:05:00",
    ]
    # not called broken: it may be running
    assert result.stderr.startswith("no record: a run still going, or one stopped before its")
    assert "toolkit killed, out of memory, or the disk full" in result.stderr


def test_show_of_a_run_folder_without_a_record_says_why_and_where_its_logs_are(
    project: Path,
) -> None:
    folder = unrecorded(project, "20261127-100500-cpu-0002")
    for ref in ("20261127-100500-cpu-0002", "20261127-1005", "runs/20261127-100500-cpu-0002"):
        result = toolkit("show", ref, cwd=project)
        assert result.returncode == 1
        assert result.stderr.startswith(
            "error: run 20261127-100500-cpu-0002 has no record: its folder "
        ), ref
        assert "exists, but holds no record.json" in result.stderr
        assert "a run still going, or one stopped before its record was written" in result.stderr
        assert "its logs were last written" in result.stderr
        assert "stdout.log and stderr.log" in result.stderr
        assert "no run '" not in result.stderr and "Traceback" not in result.stderr
    diffed = toolkit("diff", str(folder), "20261127-100500-cpu-0002", cwd=project)
    assert diffed.returncode == 2 and "has no record" in diffed.stderr


def test_runs_tells_a_run_still_going_from_one_whose_toolkit_ended_without_its_record(
    project: Path,
) -> None:
    from toolkit import record

    going = unrecorded(project, "20261127-100500-cpu-0001")
    held = record.claim(going, native=False)  # as the toolkit running it holds it
    ended = unrecorded(project, "20261127-100501-cpu-0002")
    (ended / record.RECORD_SPACE).write_bytes(b"\0" * 4096)
    killed = record.claim(ended, native=True)
    assert held is not None and killed is not None
    killed.close()  # its toolkit ended (SIGKILL) without writing the record
    result = toolkit("runs", cwd=project)
    assert result.returncode == 0, result.stderr
    lines = [line.split()[:5] for line in result.stdout.splitlines()[1:]]
    assert lines == [
        ["20261127-100500-cpu-0001", "cpu", "running", "-", "2026-11-27"],
        ["20261127-100501-cpu-0002", "cpu", "(native)", "no", "record"],
    ]
    assert result.stderr == (
        "no record: toolkit ended before it wrote the record (killed, out of memory, or the disk "
        "full); `toolkit show ID` says where its logs are\n"
    )
    assert not (ended / record.RECORD_SPACE).exists()  # the room it held for the record, given back
    shown = toolkit("show", going.name, cwd=project)
    assert shown.returncode == 1
    assert shown.stderr.startswith(f"error: run {going.name} is still running: it has no record")
    record.release(going, held)  # its record written
    assert not (going / ".running").exists()
    gone = toolkit("show", ended.name, cwd=project)
    assert "→ toolkit ended before it wrote the record (killed, out of memory" in gone.stderr
    assert "what it wrote in its workdir" in gone.stderr  # native: copied at the end only
    assert "docker ps" not in gone.stderr
    container = unrecorded(project, "20261127-100502-cpu-0003")
    mark = record.claim(container, native=False)
    assert mark is not None
    mark.close()
    left = toolkit("show", container.name, cwd=project)
    assert "what it wrote in outputs/. Its container may run on: `docker ps --filter " in (
        left.stderr
    )
    assert "label=io.toolkit.run=20261127-100502-cpu-0003` (docker stop it)" in left.stderr


def test_latest_is_the_newest_run_with_a_record_while_another_is_running(project: Path) -> None:
    add_run(project, "20261127-100441-cpu-0001", "2026-11-27T10:04:41.100Z")
    add_run(project, "20261127-100442-cpu-0002", "2026-11-27T10:04:42.100Z")
    unrecorded(project, "20261127-100500-cpu-0003")  # started last, still going
    shown = rows(toolkit("show", "latest", cwd=project).stdout)
    assert shown["id"] == "20261127-100442-cpu-0002"
    result = toolkit("diff", "20261127-100441-cpu-0001", "latest", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("identical: 20261127-100441-cpu-0001")


def test_runs_says_how_a_failed_run_exited(project: Path) -> None:
    """Every failed run looked the same in the list: which one crashed, which one was killed."""
    add_run(project, "20261127-100441-cpu-0001", "2026-11-27T10:04:41.100Z")
    add_run(
        project,
        "20261127-100442-cpu-0002",
        "2026-11-27T10:04:42.100Z",
        status="failed",
        exit_code=3,
    )
    add_run(
        project,
        "20261127-100443-cpu-0003",
        "2026-11-27T10:04:43.100Z",
        status="failed",
        exit_code=137,
    )
    result = toolkit("runs", cwd=project)
    assert result.returncode == 0, result.stderr
    statuses = [re.split(r"\s{2,}", line)[2] for line in result.stdout.splitlines()[1:]]
    assert statuses == ["succeeded", "failed (exit 3)", "failed (exit 137)"]


def test_runs_import_of_another_projects_runs_says_so(project: Path, tmp_path: Path) -> None:
    ours = add_run(project, "20261127-100441-cpu-0001", "2026-11-27T10:04:41.100Z")
    theirs = add_run(
        tmp_path / "other", "20261127-100442-cpu-0002", "2026-11-27T10:04:42.100Z", project="x"
    )
    export_runs([theirs], tmp_path / "theirs.tar.gz")
    result = toolkit("runs", "import", str(tmp_path / "theirs.tar.gz"), cwd=project)
    assert result.returncode == 0, result.stderr
    assert "theirs.tar.gz holds runs of x, not of demo: they are listed" in result.stderr
    export_runs([ours], tmp_path / "ours.tar.gz")
    shutil.rmtree(ours)
    again = toolkit("runs", "import", str(tmp_path / "ours.tar.gz"), cwd=project)
    assert again.returncode == 0 and "warning" not in again.stderr
