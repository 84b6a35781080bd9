"""How a run went, from its processes' reports and its logs."""

from __future__ import annotations

import json
from pathlib import Path

from toolkit import outcome


def test_the_record_keeps_what_a_child_process_did_differently() -> None:
    """A launcher script's child applied torch; another child's PYTHONHASHSEED failed."""

    def setting(name: str, status: str, detail: str = "") -> dict[str, object]:
        return {"name": name, "value": None, "status": status, "detail": detail}

    main = {
        "pid": 10,
        "argv": ["launch.py"],
        "settings": [
            setting("env PYTHONHASHSEED", "applied"),
            setting("torch", "not_applicable", "torch was not imported by this process"),
        ],
        "forced": [],
    }
    trainer = {
        "pid": 11,
        "argv": ["train.py", "--fast"],
        "settings": [
            setting("env PYTHONHASHSEED", "applied"),
            setting("torch.manual_seed", "applied"),
        ],
        "forced": ["DataLoader num_workers 2 -> 0"],
    }
    child = {
        "pid": 12,
        "argv": ["-c", "x"],
        "settings": [setting("env PYTHONHASHSEED", "failed", "was 'random' at startup")],
        "forced": ["DataLoader num_workers 2 -> 0"],
    }
    applied = outcome.merged_settings([main, trainer, child])
    assert applied == [
        setting("env PYTHONHASHSEED", "failed", "in process 12 (-c x): was 'random' at startup"),
        setting("torch.manual_seed", "applied"),
    ]
    assert outcome.merged_forced([main, trainer, child]) == ["DataLoader num_workers 2 -> 0"]


def test_the_main_process_report_comes_first_whatever_the_pids(tmp_path: Path) -> None:
    """Pids wrap: a DataLoader worker may get a lower pid than the process that forked it."""

    folder = tmp_path / "runtime"
    folder.mkdir()
    for report in (
        {"pid": 387, "ppid": 14612, "forked_from": 14612},
        {"pid": 14612, "ppid": 900},
        {"pid": 389, "ppid": 387},  # a grandchild
        {"pid": 12, "ppid": 1},  # re-parented (a resource tracker): top level, like main
    ):
        (folder / f"{report['pid']}.json").write_text(json.dumps(report))
    assert [r["pid"] for r in outcome.runtime_reports(tmp_path)] == [14612, 12, 387, 389]


def test_a_failed_runs_output_is_searched_for_the_ops_it_names(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_text(
        "[2026-11-27 13:54:25,992][train][ERROR] - step failed: put_ does not have a "
        "deterministic implementation, but you set 'torch.use_deterministic_algorithms(True)'\n"
        "/x/train.py:12: UserWarning: index_add_ does not have a deterministic implementation\n"
        "RuntimeError: put_ does not have a deterministic implementation\n"
    )
    assert outcome.ops_in_log(log) == [
        {"op": "put_", "mode": "in_output"},  # the op alone, whatever the log put before it
        {"op": "index_add_", "mode": "in_output"},
    ]
    assert outcome.ops_in_log(tmp_path / "missing.log") == []


def test_a_failed_runs_output_says_when_it_tried_to_reach_the_network(tmp_path: Path) -> None:
    for said in (
        "curl: (6) Could not resolve host: example.com",
        "fatal: unable to access 'https://github.com/x/y/': Could not resolve host: github.com",
        "Resolving example.com (example.com)... failed: unable to resolve host address",
        "urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>",
    ):
        (tmp_path / "stderr.log").write_text(f"downloading\n{said}\n")
        assert outcome.offline_failure(tmp_path) is not None, said
    (tmp_path / "stderr.log").write_text("ValueError: bad shape\n")
    assert outcome.offline_failure(tmp_path) is None


def test_a_script_the_containers_init_could_not_exec_names_its_interpreter(
    tmp_path: Path,
) -> None:
    script = tmp_path / "train.sh"
    script.write_text("#!/usr/bin/env bash5\necho hi\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log = run_dir / "stderr.log"
    log.write_text("[FATAL tini (7)] exec ./train.sh failed: No such file or directory\n")
    assert outcome.shebang_failure(run_dir, "./train.sh", tmp_path) == (
        "./train.sh is there, but its interpreter is not in the image (#!/usr/bin/env bash5): "
        "fix the script's #! line, or run it with an interpreter (sh ./train.sh)"
    )
    assert outcome.shebang_failure(run_dir, "train.sh", tmp_path) is None  # a name: PATH's
    log.write_text("train.sh: line 2: nosuch: command not found\n")  # it ran: its own 127
    assert outcome.shebang_failure(run_dir, "./train.sh", tmp_path) is None
    log.write_text("/usr/bin/env: \u2018bash5\u2019: No such file or directory\n")  # env's own
    assert "its interpreter is not in the image (#!/usr/bin/env bash5)" in str(
        outcome.shebang_failure(run_dir, "./train.sh", tmp_path)
    )
    script.write_bytes(b"#!/usr/bin/env python3\r\nprint(1)\r\n")  # env runs: its own 127
    log.write_text("/usr/bin/env: \u2018python3\\r\u2019: No such file or directory\n")
    assert "Windows line endings" in str(outcome.shebang_failure(run_dir, "./train.sh", tmp_path))
    script.write_bytes(b"#!/bin/bash\r\necho hi\r\n")  # written on Windows
    log.write_text("[FATAL tini (7)] exec ./train.sh failed: No such file or directory\n")
    assert outcome.shebang_failure(run_dir, "./train.sh", tmp_path) == (
        "its #! line ends in a carriage return (Windows line endings): #!/bin/bash: convert it "
        "to Unix line endings (dos2unix ./train.sh, or your editor's setting)"
    )
