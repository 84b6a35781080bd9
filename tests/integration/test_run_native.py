"""`toolkit run --native`: the policy, the record and the bad cases, without a container."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import run_python_argv, running_processes, toolkit

SCRIPT = """
import os, random, sys
from toolkit.runtime import log
for step in range(5):
    value = random.random()
    log(step=step, score=value)
    print(f"step {step} loss={value:.6f}", flush=True)
with open("result.txt", "w") as out:
    out.write(os.environ.get("PYTHONHASHSEED", "unset"))
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "job.py").write_text(SCRIPT)
    (tmp_path / "exp" / "data").mkdir()
    (tmp_path / "exp" / "data" / "d.csv").write_text("1,2\n")
    (tmp_path / "toolkit.yaml").write_text(
        "name: tk-native\ntargets: {cpu: {}}\n"
        "experiment:\n"
        f"  command: {sys.executable} job.py\n"
        "  workdir: exp\n  data: [data/]\n  outputs: [result.txt]\n"
        "  metrics: {primary: score, patterns: {loss: 'loss=([0-9.]+)'}}\n"
        "determinism: {seed: 7, threads: 1}\n"
    )
    return tmp_path


def run_script(project: Path, name: str, script: str) -> subprocess.CompletedProcess[str]:
    """`toolkit run --native` of `script`, written as exp/`name`."""
    (project / "exp" / name).write_text(script)
    return toolkit("run", "--native", "--", sys.executable, name, cwd=project)


def record_of(root: Path, stderr: str) -> dict:  # type: ignore[type-arg]
    """The record of the run whose id toolkit's summary line (on stderr) names."""
    run_id = next(w for w in stderr.split() if w.startswith("20") and w.endswith(":"))[:-1]
    return json.loads((root / "runs" / run_id / "record.json").read_text())


def test_native_run_applies_the_policy_and_records_everything(project: Path) -> None:
    result = toolkit("run", "--native", cwd=project)
    assert result.returncode == 0, result.stderr
    doc = record_of(project, result.stderr)
    assert doc["schema"] == "toolkit.run/1"
    assert doc["status"] == "succeeded" and doc["native"] is True and doc["image"] is None
    assert doc["network"] == "host"
    assert doc["determinism"]["policy"]["seed"] == 7
    assert doc["determinism"]["environment"]["PYTHONHASHSEED"] == "7"
    applied = {s["name"]: s for s in doc["determinism"]["applied"]}
    assert applied["random.seed"]["status"] == "applied"
    series = doc["metrics"]["series"]
    assert [s for s, _ in series["score"]] == [0, 1, 2, 3, 4]  # from toolkit.runtime.log
    assert len(series["loss"]) == 5  # from the stdout pattern
    assert doc["metrics"]["primary_final"] == series["score"][-1][1]
    assert list(doc["data"]["files"]) == ["data/d.csv"]
    assert list(doc["outputs"]["files"]) == ["result.txt"]
    assert doc["host"]["cpu_count"] == os.cpu_count()
    assert doc["packages"]  # what the interpreter has installed
    # which Python ran it: the command's (a native run's `python` is the first on PATH)
    assert doc["processes"][0]["executable"] == sys.executable
    shown = toolkit("show", doc["id"], cwd=project).stdout
    assert f"python                {doc['python']} ({sys.executable})" in shown

    again = toolkit("run", "--native", cwd=project)
    assert record_of(project, again.stderr)["metrics"]["series"] == series  # seeded: same values


def test_what_the_record_cannot_see_is_said_when_the_run_ends(project: Path) -> None:
    import platform

    config = project / "toolkit.yaml"
    good = config.read_text()
    config.write_text(
        good.replace("data: [data/]", "data: [data/, dat/]").replace(
            "name: tk-native\n", 'name: tk-native\npython: "3.10"\n'
        )
    )
    result = toolkit("run", "--native", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "warning: experiment.data 'dat/' does not exist" in result.stderr
    assert "warning: the project is not in a git repository with a commit" in result.stderr
    python = platform.python_version()
    assert (
        f"warning: the experiment ran on Python {python}; toolkit.yaml says 3.10" in result.stderr
    )
    assert record_of(project, result.stderr)["python"] == python

    config.write_text(
        good.replace("name: tk-native\n", f'name: tk-native\npython: "{python[:4]}"\n')
    )
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run([*git, *argv], check=True)
    clean = toolkit("run", "--native", cwd=project)
    assert clean.returncode == 0 and "warning" not in clean.stderr, clean.stderr


def test_a_native_run_says_it_cannot_take_the_network_away(project: Path) -> None:
    config = project / "toolkit.yaml"
    config.write_text(
        config.read_text().replace("  workdir: exp\n", "  workdir: exp\n  network: false\n")
    )
    result = toolkit("run", "--native", cwd=project)
    assert result.returncode == 0, result.stderr
    assert (
        "warning: experiment.network is false, but a native run has this machine's network"
        in result.stderr
    )
    assert record_of(project, result.stderr)["network"] == "host"


def test_uncommitted_changes_are_kept_beside_the_record_and_named_by_diff(project: Path) -> None:
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run([*git, *argv], check=True)
    clean = toolkit("run", "--native", cwd=project)
    job = project / "exp" / "job.py"
    job.write_text(job.read_text().replace("range(5)", "range(4)"))
    dirty = toolkit("run", "--native", cwd=project)
    a, b = record_of(project, clean.stderr), record_of(project, dirty.stderr)
    assert a["code"]["patch"] is None and b["code"]["patch"] == "code.diff"
    patch = (project / "runs" / b["id"] / "code.diff").read_text()
    assert "-for step in range(5):\n+for step in range(4):" in patch
    assert "code.diff" in toolkit("show", b["id"], cwd=project).stdout

    said = toolkit("diff", a["id"], b["id"], cwd=project)
    assert "file exp/job.py:" in said.stdout, said.stdout
    assert "git commit" not in said.stdout  # the same commit, another content

    subprocess.run([*git, "commit", "-qam", "4 steps"], check=True)  # exactly that change
    committed = toolkit("run", "--native", cwd=project)
    c = record_of(project, committed.stderr)
    assert c["code"]["content_sha256"] == b["code"]["content_sha256"]
    assert "inputs differ" not in toolkit("diff", b["id"], c["id"], cwd=project).stdout


def test_a_variable_a_native_run_inherits_is_recorded_and_compared(project: Path) -> None:
    """A native program reads this machine's environment (`LR=1e-3 toolkit run --native`);
    a private value is kept as its hash."""
    env = {**os.environ, "LR": "3e-3", "API_TOKEN": "hunter2"}
    a = record_of(project, toolkit("run", "--native", cwd=project, env=env).stderr)
    b = record_of(
        project, toolkit("run", "--native", cwd=project, env={**env, "LR": "1e-3"}).stderr
    )
    assert a["host_environment"]["LR"] == "3e-3"
    assert a["host_environment"]["API_TOKEN"] == "(set: not recorded)"  # not even its hash
    assert "hunter2" not in (project / "runs" / a["id"] / "record.json").read_text()
    said = toolkit("diff", a["id"], b["id"], cwd=project).stdout
    assert "env LR: 3e-3 -> 1e-3" in said, said
    again = record_of(project, toolkit("run", "--native", cwd=project, env=env).stderr)
    assert "env " not in toolkit("diff", a["id"], again["id"], cwd=project).stdout


def test_a_command_that_replaces_pythonpath_is_told_the_policy_never_loaded(
    project: Path,
) -> None:
    """A src layout's `env PYTHONPATH=src python ...` drops toolkit's runtime: said, not silent."""
    result = toolkit(
        "run", "--native", "--", "env", "PYTHONPATH=src", sys.executable, "job.py", cwd=project
    )
    assert result.returncode == 0, result.stderr
    assert record_of(project, result.stderr)["processes"] == []
    assert "warning: no Python process of this run loaded toolkit's runtime" in result.stderr
    assert "PYTHONPATH=src:$PYTHONPATH" in result.stderr


def test_a_native_run_with_requirements_but_no_lockfile_says_drift_is_unknown(
    project: Path,
) -> None:
    (project / "requirements.in").write_text("numpy\n")
    result = toolkit("run", "--native", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "warning: no lockfile lockfiles/cpu.txt, so the record cannot tell" in result.stderr
    assert "run `toolkit lock --target cpu`" in result.stderr
    assert record_of(project, result.stderr)["lockfile"]["state"] == "missing"


def test_a_strict_stop_the_program_caught_is_named_from_its_output(project: Path) -> None:
    """Hydra-style: the program catches the error, prints it and exits 1."""
    script = (
        "import sys, traceback, torch\n"
        "try:\n"
        "    torch.zeros(3).put_(torch.tensor([0]), torch.tensor([1.0]))\n"
        "except Exception:\n"
        "    traceback.print_exc()\n"
        "    sys.exit(1)\n"
    )
    result = run_script(project, "caught.py", script)
    assert result.returncode == 1
    ops = record_of(project, result.stderr)["determinism"]["nondeterministic_ops"]
    assert [(o["op"], o["mode"]) for o in ops] == [("put_", "in_output")]
    assert "its output names an op with no deterministic implementation: put_" in result.stderr
    assert "if that is what stopped it: rerun with --no-strict" in result.stderr


def test_what_the_program_undid_or_lost_of_the_policy_is_said(project: Path) -> None:
    script = (
        "import torch\n"
        "from torch.utils.data import DataLoader\n"
        "def opened(worker_id): pass\n"
        "list(DataLoader(list(range(4)), num_workers=2, worker_init_fn=opened))\n"
        "torch.set_num_threads(3)\n"
    )
    result = run_script(project, "undo.py", script)
    assert result.returncode == 0, result.stderr
    overridden = record_of(project, result.stderr)["determinism"]["overridden"]
    assert [(o["name"], o["policy"], o["found"]) for o in overridden] == [
        ("torch.set_num_threads", 1, 3)
    ]
    assert (
        "warning: the program changed settings after toolkit applied them: "
        "torch.set_num_threads 1 -> 3" in result.stderr
    )
    # PyTorch's own recipe passes a seeding worker_init_fn: recorded, said only if the run fails
    forced = record_of(project, result.stderr)["determinism"]["forced"]
    assert "DataLoader worker_init_fn opened not run (num_workers 2 -> 0)" in forced
    assert "worker_init_fn" not in result.stderr
    failing = script + "raise SystemExit('no such file')\n"
    failed = run_script(project, "undo_fail.py", failing)
    assert "warning: DataLoader worker_init_fn opened not run (num_workers 2 -> 0)" in failed.stderr


def test_stdout_is_the_experiments_alone(project: Path) -> None:
    result = toolkit("run", "--native", "--", "python", "-c", "print('only this')", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "only this\n"  # `toolkit run -- … > file` gets what `… > file` does
    assert "run python -c" in result.stderr and "succeeded" in result.stderr


def test_a_run_that_writes_into_its_data_is_told_and_the_record_names_the_files(
    project: Path,
) -> None:
    """A run that adds a cache to its data, or appends to a data file, had a fingerprint of
    data it did not read, and the next run read other data: silently."""
    writes = (
        # once the data is fingerprinted: the facts of a native run take up to a second or so
        "import time; time.sleep(2); open('data/d.csv', 'a').write('3,4\\n'); "
        "open('data/cache.bin', 'w').write('x')"
    )
    result = toolkit("run", "--native", "--", "python", "-c", writes, cwd=project)
    assert result.returncode == 0, result.stderr
    assert (
        "warning: the run changed its data while it ran (data/cache.bin, data/d.csv: changed, "
        "new or removed)"
    ) in result.stderr
    doc = record_of(project, result.stderr)
    assert doc["data"]["changed"] == ["data/cache.bin", "data/d.csv"]
    assert list(doc["data"]["files"]) == ["data/d.csv"]  # as it was read: before the run wrote
    quiet = toolkit("run", "--native", "--", "python", "-c", "pass", cwd=project)
    assert "changed its data" not in quiet.stderr
    assert "changed" not in record_of(project, quiet.stderr)["data"]


def test_data_that_holds_the_outputs_is_the_same_from_run_to_run(project: Path) -> None:
    config = project / "toolkit.yaml"
    config.write_text(config.read_text().replace("data: [data/]", "data: [.]"))
    first = toolkit("run", "--native", cwd=project)
    second = toolkit("run", "--native", cwd=project)
    assert "changed its data" not in first.stderr + second.stderr
    a, b = (record_of(project, r.stderr)["data"] for r in (first, second))
    assert "result.txt" not in a["files"] and a["digest"] == b["digest"]


def test_a_log_the_run_could_not_write_to_its_end_is_kept_in_the_records_warnings(
    project: Path,
) -> None:
    """A log cut short by a full disk was said once, on the terminal: the record, read later,
    gave no reason why the end of the output (a traceback) is missing."""
    program = (
        "import os, subprocess, time; log = os.path.join(os.environ['TOOLKIT_RUN_DIR'], "
        "'stdout.log'); print('before', flush=True)\n"
        "while not os.path.getsize(log): time.sleep(0.01)  # logged by toolkit's reader\n"
        "subprocess.run(['chattr', '+i', log], check=True); print('after', flush=True)"
    )
    try:
        result = toolkit("run", "--native", "--", "python", "-c", program, cwd=project)
    finally:
        for log in (project / "runs").glob("*/stdout.log"):
            subprocess.run(["chattr", "-i", log], check=False)
    assert result.returncode == 0, result.stderr
    said = "stdout.log: Operation not permitted; the rest is not logged"
    assert result.stderr.count(said) == 1  # as it came, not again at the end
    assert any(said in w for w in record_of(project, result.stderr)["warnings"])


def test_a_primary_metric_the_run_never_logged_is_said(project: Path) -> None:
    config = project / "toolkit.yaml"
    config.write_text(config.read_text().replace("primary: score", "primary: scor"))
    result = toolkit("run", "--native", cwd=project)
    assert result.returncode == 0, result.stderr
    said = (
        "primary metric 'scor' was not found; metrics seen: loss, score; did you mean 'score'? "
        "(experiment.metrics.primary)"
    )
    assert f"warning: {said}" in result.stderr
    # kept in the record, for whoever reads it later
    assert said in record_of(project, result.stderr)["warnings"]
    shown = toolkit("show", "latest", cwd=project)
    assert f"warning               {said}" in shown.stdout


def test_a_command_of_ones_own_that_logs_no_metric_is_not_warned_of_the_primary(
    project: Path,
) -> None:
    quiet = toolkit("run", "--native", "--", "python", "-c", "pass", cwd=project)
    assert quiet.returncode == 0, quiet.stderr
    assert "primary metric" not in quiet.stderr  # `score` is the experiment's, not this one's
    logging = "from toolkit.runtime import log; log(step=0, los=1.0)"
    logged = toolkit("run", "--native", "--", "python", "-c", logging, cwd=project)
    assert logged.returncode == 0, logged.stderr
    assert "warning: primary metric 'score' was not found; metrics seen: los" in logged.stderr


def test_a_runs_outputs_do_not_change_the_next_runs_code(project: Path) -> None:
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "exp"]):  # no .gitignore
        subprocess.run([*git, *argv], capture_output=True, check=True)
    first = record_of(project, toolkit("run", "--native", cwd=project).stderr)
    second = record_of(project, toolkit("run", "--native", cwd=project).stderr)
    # runs/, .toolkit/ and exp/result.txt are untracked now, yet none of them is code
    assert first["code"] == second["code"] and not second["code"]["dirty"]
    same = toolkit("diff", first["id"], second["id"], cwd=project)
    assert same.returncode == 0, same.stdout + same.stderr


def test_a_native_program_a_signal_ends_exits_as_a_shell_says_it(project: Path) -> None:
    result = toolkit(
        "run", "--native", "--", "python", "-c", "import os; os.kill(os.getpid(), 9)", cwd=project
    )
    assert result.returncode == 137  # 128 + SIGKILL, as from a container
    assert record_of(project, result.stderr)["status"] == "failed"
    # no container to `docker kill`
    assert "→ exit 137: killed (SIGKILL): out of memory, or stopped from outside (kill -9)" in (
        result.stderr
    )


def test_failed_experiment_keeps_its_record_and_exit_code(project: Path) -> None:
    env = {**os.environ, "EXIT_WITH": "3"}
    result = toolkit("run", "--native", cwd=project, env=env)
    assert result.returncode == 3
    assert "failed" in result.stderr
    runs = list((project / "runs").iterdir())
    doc = json.loads((runs[0] / "record.json").read_text())
    assert doc["status"] == "failed" and doc["exit_code"] == 3
    assert (runs[0] / "stdout.log").read_text().count("loss=") == 5


def test_outputs_left_by_an_earlier_run_are_not_this_runs(project: Path) -> None:
    first = toolkit("run", "--native", cwd=project)
    assert first.returncode == 0, first.stderr
    assert list(record_of(project, first.stderr)["outputs"]["files"]) == ["result.txt"]
    assert (project / "exp" / "result.txt").is_file()  # still in the shared workdir
    crashed = toolkit(
        "run", "--native", "--", sys.executable, "-c", "raise SystemExit(3)", cwd=project
    )
    assert crashed.returncode == 3
    assert record_of(project, crashed.stderr)["outputs"]["files"] == {}


def test_command_not_found(project: Path) -> None:
    result = toolkit("run", "--native", "--", "no-such-program-xyz", cwd=project)
    assert result.returncode == 127  # as a shell, and as the same command in a container
    assert "command not found: no-such-program-xyz" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((project / "runs").glob("*")), "a run that never started left a folder"


def test_a_command_that_cannot_be_started_says_why(project: Path) -> None:
    """Not executable, a folder, a #! interpreter that is not there: a message that says what
    to do and the shell's exit code 126, not an internal error and a folder without a record."""
    exp = project / "exp"
    (exp / "go.sh").write_text("#!/bin/sh\necho hi\n")  # no exec bit
    (exp / "lost.py").write_text("#!/opt/no-such-venv/bin/python\nprint(1)\n")
    (exp / "lost.py").chmod(0o755)
    (exp / "dos.sh").write_bytes(b"#!/bin/sh\r\necho hi\r\n")  # written on Windows
    (exp / "dos.sh").chmod(0o755)
    for command, said, hint in (
        ("./go.sh", "cannot run ./go.sh: permission denied", "chmod +x ./go.sh"),
        ("./data", "cannot run ./data: it is a folder", "name a program or a script"),
        (
            "./lost.py",
            "cannot run ./lost.py: its interpreter is not found (#!/opt/no-such-venv/bin/python)",
            "fix the script's #! line",
        ),
        (
            "./dos.sh",
            "cannot run ./dos.sh: its #! line ends in a carriage return (Windows line endings)",
            "dos2unix ./dos.sh",
        ),
    ):
        result = toolkit("run", "--native", "--", command, cwd=project)
        assert result.returncode == 126, (command, result.stderr)
        assert said in result.stderr and hint in result.stderr, result.stderr
        assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not list((project / "runs").glob("*")), "a run that never started left a folder"


def test_a_script_whose_env_line_ends_in_a_carriage_return_is_said_so(project: Path) -> None:
    """`#!/usr/bin/env python3\r`: env starts, finds no `python3\r`, and exits 127."""
    (project / "exp" / "win.py").write_bytes(b"#!/usr/bin/env python3\r\nprint(1)\r\n")
    (project / "exp" / "win.py").chmod(0o755)
    result = toolkit("run", "--native", "--", "./win.py", cwd=project)
    assert result.returncode == 127
    assert "→ exit 127: its #! line ends in a carriage return (Windows line endings)" in (
        result.stderr
    )


def test_two_runs_at_once_get_distinct_folders(project: Path) -> None:
    """Runs that write nothing into the shared workdir may run side by side."""
    config = project / "toolkit.yaml"
    config.write_text(config.read_text().replace("  outputs: [result.txt]\n", ""))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "toolkit", "run", "--native"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    folders = sorted((project / "runs").iterdir())
    assert len(folders) == 2
    assert all((f / "record.json").is_file() for f in folders)


def test_a_second_native_run_that_would_write_the_same_outputs_is_refused(project: Path) -> None:
    """Both would write exp/result.txt: each record could hold the other's outputs (a user saw
    one run's record carry the other's metrics, and diff call them identical)."""
    slow = "import time, pathlib; time.sleep(4); pathlib.Path('result.txt').write_text('1')"
    first = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "run", "--native", "--", sys.executable, "-c", slow],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list((project / "runs").glob("*/stdout.log")):  # the first one is under way
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = toolkit("run", "--native", cwd=project)
    assert second.returncode == 1, second.stderr
    assert "another native run of this project is under way (pid " in second.stderr
    assert "both could write result.txt in exp" in second.stderr
    assert "run from a separate checkout" in second.stderr
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert len(list((project / "runs").iterdir())) == 1  # the refused one left no folder
    after = toolkit("run", "--native", cwd=project)  # the lock went with the first run
    assert after.returncode == 0, after.stderr


def test_user_sitecustomize_still_runs(project: Path, tmp_path: Path) -> None:
    user = tmp_path / "usersite"
    user.mkdir()
    (user / "sitecustomize.py").write_text(
        "import pathlib\npathlib.Path('user-site-ran').write_text('yes')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(user)}
    result = toolkit("run", "--native", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    assert (project / "exp" / "user-site-ran").read_text() == "yes"
    doc = record_of(project, result.stderr)
    assert any(s["status"] == "applied" for s in doc["determinism"]["applied"])


def test_runs_path_that_is_a_file_is_a_clear_error(project: Path) -> None:
    (project / "runs").write_text("not a folder")
    result = toolkit("run", "--native", cwd=project)
    assert result.returncode == 1
    assert "cannot create a run folder" in result.stderr
    assert "is a file, where toolkit keeps the project's runs: move it away" in result.stderr
    assert "Traceback" not in result.stderr


def run_into_a_closed_pipe(cwd: Path, *args: str) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    """`toolkit run ARGS -- (a program printing 100,000 lines) | head -1`: (toolkit's exit
    code, its stderr, the record)."""
    program = "for i in range(100_000): print('line', i)"
    proc = subprocess.Popen(
        run_python_argv(program, *args),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:  # as `head -1` does: the first line of the program's, then leave
        if line.startswith("line 0"):
            break
    proc.stdout.close()
    stderr = proc.stderr.read()
    code = proc.wait(timeout=120)
    (folder,) = (cwd / "runs").iterdir()
    record = json.loads((folder / "record.json").read_text())
    assert (folder / "stdout.log").read_text().count("\n") == 100_000  # all of it, logged
    return code, stderr, record


def run_into_a_full_disk(cwd: Path, *args: str) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    """`toolkit run ARGS -- (a program printing 100,000 lines) > /dev/full`: (toolkit's exit
    code, its stderr, the record)."""
    program = "for i in range(100_000): print('line', i)"
    argv = run_python_argv(program, *args)
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            argv, cwd=cwd, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120
        )
    (folder,) = (cwd / "runs").iterdir()
    assert (folder / "stdout.log").read_text().count("\n") == 100_000  # all of it, logged
    return done.returncode, done.stderr, json.loads((folder / "record.json").read_text())


def test_a_native_run_whose_stdout_is_full_goes_on_to_its_end(project: Path) -> None:
    code, stderr, record = run_into_a_full_disk(project, "--native")
    assert (code, record["status"]) == (0, "succeeded"), stderr
    assert "cannot write to stdout (No space left on device)" in stderr
    assert "Traceback" not in stderr


def test_a_native_run_whose_reader_left_goes_on_to_its_end(project: Path) -> None:
    code, stderr, record = run_into_a_closed_pipe(project, "--native")
    assert (code, record["status"]) == (0, "succeeded"), stderr
    assert "Traceback" not in stderr and "error" not in stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("chattr") is None, reason="needs root and chattr"
)
@pytest.mark.parametrize(("exit_code", "toolkit_exit"), [(0, 1), (3, 3)])
def test_a_run_folder_that_turns_read_only_mid_run_is_a_clear_error(
    project: Path, exit_code: int, toolkit_exit: int
) -> None:
    # What a disk that fills up mid-run does to the logs and the record, as root can make it
    # happen: the run folder and its stdout.log become immutable while the program runs.
    program = (
        "import os, subprocess, sys, time; run = os.environ['TOOLKIT_RUN_DIR']; "
        "print('before', flush=True); log = os.path.join(run, 'stdout.log')\n"
        "while not os.path.getsize(log): time.sleep(0.01)  # logged by toolkit's reader\n"
        "subprocess.run(['chattr', '+i', log, run], check=True); "
        f"print('after', flush=True); sys.exit({exit_code})"
    )
    try:
        result = toolkit("run", "--native", "--", "python", "-c", program, cwd=project)
    finally:
        for folder in (project / "runs").iterdir():
            subprocess.run(["chattr", "-i", folder, folder / "stdout.log"], check=False)
    assert result.returncode == toolkit_exit, result.stderr
    assert "after" in result.stdout  # shown, though no longer logged
    assert "stdout.log: Operation not permitted; the rest is not logged" in result.stderr
    assert "but its record could not be written: Operation not permitted" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    (folder,) = (project / "runs").iterdir()
    assert (folder / "stdout.log").read_text() == "before\n"
    # no half of a record (the room held for it stays: nothing leaves an immutable folder)
    assert [p.name for p in folder.iterdir() if p.name.startswith(".record.json")] == []


def test_runs_from_another_machine_join_repro_check(project: Path, tmp_path: Path) -> None:
    first = toolkit("run", "--native", cwd=project)
    run_id = record_of(project, first.stderr)["id"]
    bundle = tmp_path / "laptop.tar.gz"
    exported = toolkit("runs", "export", run_id, str(bundle), cwd=project)
    assert exported.returncode == 0, exported.stderr

    other = tmp_path / "other-checkout"
    shutil.copytree(project, other, ignore=shutil.ignore_patterns("runs"))
    imported = toolkit("runs", "import", str(bundle), cwd=other)
    assert imported.returncode == 0 and run_id in imported.stdout
    assert run_id in toolkit("runs", cwd=other).stdout

    check = toolkit("repro-check", "--native", "--runs", "1", "--against", str(bundle), cwd=other)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "cpu (native) on" in check.stdout, check.stdout
    assert "matches cpu (native) bitwise" in check.stdout, check.stdout

    # the same bundle against another experiment: said before any run, nothing compared
    config = other / "toolkit.yaml"
    config.write_text(config.read_text().replace("seed: 7", "seed: 8"))
    refused = toolkit("repro-check", "--native", "--against", str(bundle), cwd=other)
    assert refused.returncode == 2, refused.stderr
    assert f"{run_id} left out: its determinism policy differs from this check's" in refused.stderr
    assert "nothing to compare from --against" in refused.stderr
    assert "run cpu #1" not in refused.stderr  # no run was made


STUBBORN = (  # a program that ignores SIGINT and SIGTERM: only SIGKILL stops it
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
)
SAVING = (  # a program that says what it does on its way out, on stdout and on stderr
    "import signal, sys, time\n"
    "def leave(signum, frame):\n"
    "    print('SAVING', signum, flush=True); time.sleep(0.5)\n"
    "    print('SAVED', file=sys.stderr, flush=True); sys.exit(0)\n"
    "signal.signal(signal.SIGINT, leave); signal.signal(signal.SIGTERM, leave)\n"
)


@dataclass(frozen=True)
class Interrupted:
    code: int  # toolkit's exit code
    record: dict  # type: ignore[type-arg]
    seconds: float  # from the first Ctrl-C to toolkit's end
    pid: int  # the program's process id, as it saw it
    stdout: str  # toolkit's, after the program said it was ready
    stderr: str


def interrupt_run(
    cwd: Path,
    *args: str,
    handler: str = "",
    presses: int = 1,
    gap: float = 0.3,
    sig: int = 2,  # SIGINT: Ctrl-C
) -> Interrupted:
    """Start `toolkit run ARGS` on a command that sleeps (after `handler`, code that sets its
    signal handlers); press Ctrl-C (or send `sig`) once it runs (`presses` times, `gap` s
    apart)."""
    import time

    program = "import os, time; print('READY', 6 * 7, os.getpid(), flush=True); time.sleep(120)"
    proc = subprocess.Popen(
        run_python_argv(handler + program, *args),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the experiment itself is running
        if line.startswith("READY 42"):
            break
    pressed = time.monotonic()
    for press in range(presses):
        if press and gap:
            time.sleep(gap)
        proc.send_signal(sig)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()  # it went on regardless: stop it before failing
    seconds = time.monotonic() - pressed
    (folder,) = (cwd / "runs").iterdir()
    assert (folder / "record.json").exists(), stderr
    record = json.loads((folder / "record.json").read_text())
    return Interrupted(proc.returncode, record, seconds, int(line.split()[2]), stdout, stderr)


def test_ctrl_c_stops_a_native_run_and_records_it(project: Path) -> None:
    ended = interrupt_run(project, "--native")
    assert ended.code == 130
    # how it ended: by the SIGINT it was sent (Python's KeyboardInterrupt ends it by it)
    assert ended.record["status"] == "interrupted" and ended.record["exit_code"] == -2


def test_two_presses_at_once_stop_a_native_run_cleanly(project: Path) -> None:
    # The second press used to land inside the handling of the first: an internal error, no
    # record, the program left running (1 run in 4).
    for _ in range(6):
        for folder in (project / "runs").glob("*"):
            shutil.rmtree(folder)
        ended = interrupt_run(project, "--native", presses=2, gap=0)
        assert ended.code == 130 and ended.record["status"] == "interrupted", ended.stderr
        assert running_processes(pid=ended.pid) == []


def test_what_a_native_run_prints_on_its_way_out_is_shown_and_logged(project: Path) -> None:
    ended = interrupt_run(project, "--native", handler=SAVING)
    assert ended.code == 130 and ended.record["status"] == "interrupted"
    assert "SAVING 2" in ended.stdout and "SAVED" in ended.stderr  # Ctrl-C: SIGINT
    folder = project / "runs" / ended.record["id"]
    assert "SAVING 2" in (folder / "stdout.log").read_text()
    assert "SAVED" in (folder / "stderr.log").read_text()


def test_ctrl_c_again_kills_a_program_that_will_not_stop_and_keeps_its_record(
    project: Path,
) -> None:
    # Ctrl-C: SIGINT; again: SIGTERM; again: SIGKILL (each without waiting the 10 s between)
    ended = interrupt_run(project, "--native", handler=STUBBORN, presses=3)
    assert ended.code == 130 and ended.record["status"] == "interrupted"
    assert ended.seconds < 8
    assert "stopping: SIGINT sent; SIGTERM in 10 s (Ctrl-C again sends it now)" in ended.stderr
    assert not Path(f"/proc/{ended.pid}").exists(), "the program outlived toolkit"


def test_no_policy_run_is_a_recorded_baseline(project: Path) -> None:
    baseline = toolkit("run", "--native", "--no-policy", cwd=project)
    assert baseline.returncode == 0, baseline.stderr
    assert "no determinism policy" in baseline.stderr
    doc = record_of(project, baseline.stderr)
    assert doc["determinism"]["policy"] is None
    assert doc["determinism"]["environment"] == {"TOOLKIT_POLICY": "null"}  # observe only
    assert doc["determinism"]["applied"] == [] and doc["determinism"]["forced"] == []
    assert doc["processes"]  # the runtime still reported each process
    assert (project / "runs" / doc["id"] / "outputs" / "result.txt").read_text() != "7"
    assert len(doc["metrics"]["series"]["score"]) == 5  # log() works without a policy
    shown = toolkit("show", doc["id"], cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "none (--no-policy" in shown.stdout
    governed = record_of(project, toolkit("run", "--native", cwd=project).stderr)
    diff = toolkit("diff", doc["id"], governed["id"], "--json", cwd=project)
    causes = json.loads(diff.stdout)["causes"]
    assert "seed" in causes and "settings" in causes


def ctrl_c_when_finishing(cwd: Path, *args: str, sig: int = 2) -> subprocess.CompletedProcess[str]:
    """Run `toolkit ARGS`; press Ctrl-C (or send `sig`) once it says it is finishing a record
    (the run is over)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "finishing the record" in line:
            break
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=10)  # not the minutes the rest would take
    finally:
        proc.kill()  # it went on regardless: stop it before failing
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def huge_data(project: Path) -> None:
    with (project / "exp" / "data" / "huge.bin").open("wb") as huge:
        huge.truncate(256 * 2**30)  # sparse: minutes to hash, no disk used


def test_ctrl_c_while_the_record_waits_for_the_data_keeps_the_record(project: Path) -> None:
    huge_data(project)
    finished = ctrl_c_when_finishing(project, "run", "--native")
    err = finished.stderr
    assert finished.returncode == 0, err  # the experiment itself succeeded
    assert "the record is incomplete, without: data" in err and "Traceback" not in err
    doc = record_of(project, err)
    assert doc["status"] == "succeeded" and doc["incomplete"] == ["data"]
    assert doc["data"] is None and doc["code"] is not None and len(doc["metrics"]["series"]) == 2

    (project / "exp" / "data" / "huge.bin").unlink()
    complete = record_of(project, toolkit("run", "--native", cwd=project).stderr)
    assert complete["incomplete"] == []
    compared = toolkit("diff", doc["id"], complete["id"], cwd=project)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "has no data: not compared" in compared.stdout
    shown = toolkit("show", doc["id"], cwd=project)
    assert shown.returncode == 0 and "not recorded" in shown.stdout


def test_ctrl_c_stops_a_repro_check_not_just_its_current_run(tmp_path: Path) -> None:
    import signal
    import time

    (tmp_path / "toolkit.yaml").write_text(
        "name: tk-slow\ntargets: {cpu: {}}\nexperiment:\n"
        f"  command: {sys.executable} -c 'print(1, flush=True); import time; time.sleep(120)'\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "repro-check", "--native", "--runs", "3"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(log.read_text() for log in tmp_path.glob("runs/*/stdout.log")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first run never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()  # the check went on to its next run: stop it before failing
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    (only,) = (tmp_path / "runs").iterdir()
    assert json.loads((only / "record.json").read_text())["status"] == "interrupted"


def ctrl_c_during_start(cwd: Path, marker: str, delay: float, *args: str) -> Path | None:
    """Start `toolkit run ARGS -- sleeper`, press Ctrl-C `delay` s after its run folder
    appears (while the experiment starts); the run folder, if one is left."""
    import signal
    import time

    sleeper = f"import time; time.sleep(120)  # {marker}"
    proc = subprocess.Popen(
        run_python_argv(sleeper, *args),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(cwd.glob("runs/*")) and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "internal error" not in err, err
    folders = list((cwd / "runs").iterdir())
    assert len(folders) <= 1
    return folders[0] if folders else None


@pytest.mark.parametrize("delay", [0, 0.005, 0.01, 0.02, 0.03, 0.05])
def test_ctrl_c_while_the_experiment_starts_leaves_a_record_or_nothing(
    project: Path, delay: float
) -> None:
    marker = f"toolkit-start-probe-{delay}"
    folder = ctrl_c_during_start(project, marker, delay, "--native")
    if folder is not None:
        assert json.loads((folder / "record.json").read_text())["status"] == "interrupted"
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert left.stdout == "", "the program outlived toolkit"


def test_ctrl_c_stops_what_the_program_started_too(project: Path) -> None:
    # The program starts a helper that ignores SIGINT, then ends on Ctrl-C itself.
    helper = "import subprocess; subprocess.Popen(['sh', '-c', \"trap '' INT; sleep 77\"]); "
    proc = subprocess.Popen(
        run_python_argv(
            helper + "import os, time; print('READY', os.getpid(), flush=True); time.sleep(120)",
            "--native",
        ),
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = next(line for line in proc.stdout if line.startswith("READY"))
    proc.send_signal(__import__("signal").SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    (folder,) = (project / "runs").iterdir()
    assert json.loads((folder / "record.json").read_text())["status"] == "interrupted"
    assert running_processes(group=int(line.split()[1])) == []  # its whole process group


def test_a_native_run_ends_with_its_program_as_a_container_does(project: Path) -> None:
    # the helper holds the output open: the run lasted as long as it did
    started = time.monotonic()
    script = "sleep 60 & echo HELPER $!"
    done = toolkit("run", "--native", "--", "bash", "-c", script, cwd=project)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    assert record_of(project, done.stderr)["status"] == "succeeded"
    (helper,) = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("HELPER")]
    assert running_processes(pid=int(helper)) == []


def test_ctrl_c_while_a_repro_check_finishes_a_record_stops_the_check(project: Path) -> None:
    huge_data(project)
    finished = ctrl_c_when_finishing(project, "repro-check", "--native", "--runs", "3")
    assert finished.returncode == 130, finished.stderr
    (only,) = (project / "runs").iterdir()  # no second run, and no verdict from a partial record
    assert json.loads((only / "record.json").read_text())["incomplete"] == ["data"]


def test_repro_check_says_what_toolkit_run_would_warn_of_once(project: Path) -> None:
    """Its runs are toolkit runs: what the record cannot see is said, not once per run."""
    config = project / "toolkit.yaml"
    config.write_text(config.read_text().replace("data: [data/]", "data: [data/, dat/]"))
    check = toolkit("repro-check", "--native", "--runs", "2", cwd=project)
    said = [line for line in check.stderr.splitlines() if "'dat/' does not exist" in line]
    assert len(said) == 1, check.stderr
    assert said[0].startswith("warning: experiment.data 'dat/' does not exist")


def test_a_library_a_native_run_imported_that_the_lockfile_lacks_is_drift(project: Path) -> None:
    """torch from the machine's own environment, while the lockfile pins numpy alone: in the
    image the same command would fail, so the record and the run say so."""
    from importlib.metadata import version

    numpy = version("numpy")
    (project / "lockfiles").mkdir()
    (project / "lockfiles" / "cpu.txt").write_text(
        f"numpy=={numpy} \\\n    --hash=sha256:{'0' * 64}\n"
    )
    result = run_script(project, "uses_torch.py", "import numpy, torch\nprint(1)\n")
    assert result.returncode == 0, result.stderr
    drift = record_of(project, result.stderr)["package_drift"]
    assert drift == [{"package": "torch", "locked": None, "installed": version("torch")}]
    assert f"torch {version('torch')} (not in the lockfile)" in result.stderr


def test_a_metrics_file_the_program_appends_to_is_said_to_hold_earlier_runs(
    project: Path,
) -> None:
    """A container's metrics file starts empty; a native run's is the workdir's, where an
    appending program adds to the last run's lines: said, not silently recorded."""
    config = project / "toolkit.yaml"
    config.write_text(config.read_text().replace("metrics: {", "metrics: {file: m.jsonl, "))
    script = "with open('m.jsonl', 'a') as f:\n    f.write('{\"step\": 0, \"score\": 1.0}\\n')\n"
    first = run_script(project, "appends.py", script)
    assert "held" not in first.stderr, first.stderr
    second = run_script(project, "appends.py", script)
    assert (
        "warning: m.jsonl held 1 line before this run and still starts with them" in second.stderr
    )
    rewrites = "with open('m.jsonl', 'w') as f:\n    f.write('{\"step\": 0, \"score\": 1.0}\\n')\n"
    assert "held" not in run_script(project, "rewrites.py", rewrites).stderr


def test_a_log_the_run_writes_beside_its_code_is_not_code(project: Path) -> None:
    """Two runs of the same code that append to an untracked logs/run.log: the same code."""
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run([*git, *argv], check=True)
    script = (
        "import os\nos.makedirs('logs', exist_ok=True)\nopen('logs/run.log', 'a').write('x\\n')\n"
    )
    first = record_of(project, run_script(project, "logs.py", script).stderr)
    second = record_of(project, run_script(project, "logs.py", script).stderr)
    assert "logs/run.log" not in second["code"]["files"]
    assert first["code"]["content_sha256"] == second["code"]["content_sha256"]


def test_a_gpu_target_run_natively_without_a_gpu_says_it_ran_on_the_cpu(project: Path) -> None:
    pytest.importorskip("torch")
    config = project / "toolkit.yaml"
    config.write_text(
        config.read_text().replace("targets: {cpu: {}}", "targets: {gpu: {gpus: all}}")
    )
    uses_torch = [sys.executable, "-c", "import torch; print(torch.ones(1).sum())"]
    result = toolkit("run", "--native", "--", *uses_torch, cwd=project)
    assert result.returncode == 0, result.stderr
    assert "warning: target gpu is for GPUs, but torch saw no GPU in this run" in result.stderr
    config.write_text(config.read_text().replace("{gpus: all}", "{}"))
    cpu = toolkit("run", "--native", "--", *uses_torch, cwd=project)
    assert cpu.returncode == 0 and "saw no GPU" not in cpu.stderr, cpu.stderr


def test_an_experiment_that_fills_the_disk_still_gets_its_record(
    project: Path, tmp_path: Path
) -> None:
    """Room for the record is held while the experiment runs (a user's run that filled the
    disk with checkpoints ended with "its record could not be written")."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode()[:200]}")
    try:
        shutil.copytree(project, small / "p", ignore=shutil.ignore_patterns("small"))
        fill = (
            "f = open('fill.bin', 'wb')\n"
            "try:\n    while True:\n        f.write(b'x' * 65536); f.flush()\n"
            "except OSError as e:\n    print('full:', e.strerror, flush=True)\n"
        )
        result = run_script(small / "p", "fill.py", fill)
        assert result.returncode == 0, result.stderr
        assert "full: No space left on device" in result.stdout
        doc = record_of(small / "p", result.stderr)
        assert doc["status"] == "succeeded"
        assert not list((small / "p" / "runs").glob("*/.record-space"))  # given back
    finally:
        subprocess.run(["umount", str(small)], check=False)
