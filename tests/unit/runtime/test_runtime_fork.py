"""Forked children: their own random sequence, the same in every run, and their own report."""

from __future__ import annotations

import random

import pytest

from toolkit.runtime.policy import Policy
from toolkit.runtime.report import Report

from .conftest import RunPython

FORKS = """
    import json, os, sys

    if sys.argv[1] == "parent":
        import random

    def fork():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            import random
            os.write(write, json.dumps(random.random()).encode())
            os._exit(0)  # as every multiprocessing fork worker ends: no atexit
        os.close(write)
        value = json.loads(os.read(read, 100))
        os.waitpid(pid, 0)
        return value

    children = [fork(), fork()]
    import random
    print(json.dumps({"parent": random.random(), "children": children}))
"""


@pytest.mark.parametrize("imported", ["parent", "child"])
def test_forked_children_get_their_own_random_sequence_the_same_every_run(
    run_python: RunPython, imported: str
) -> None:
    """Python reseeds random from os.urandom in a forked child (so a fork Pool using random
    differed on every run); the runtime reseeds it from the policy seed and the fork index,
    after Python's own reseed, whether the parent imported random or only the child did."""
    runs = [run_python(FORKS, Policy(seed=7), imported) for _ in range(2)]
    assert runs[0].json_line() == runs[1].json_line()
    assert runs[0].json_line() == {
        "parent": random.Random(7).random(),
        "children": [random.Random("7/1").random(), random.Random("7/2").random()],
    }
    children = [report for report in runs[0].reports() if report["forked_from"] is not None]
    seeds = sorted(
        (report["fork_index"], setting["value"], setting["status"])
        for report in children
        for setting in report["settings"]
        if setting["name"] == "random.seed"
    )
    assert seeds == [(1, "7/1", "applied"), (2, "7/2", "applied")]
    assert runs[0].setting("random.seed")["value"] == 7


SUBPROCESSES = """
    import multiprocessing, os, subprocess, sys

    # subprocess forks to run a preexec_fn, then execs: that child is not a Python process.
    subprocess.run(["true"], preexec_fn=lambda: None, check=True)
    process = multiprocessing.get_context("fork").Process(target=print, args=("worker",))
    process.start()
    process.join()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    print(process.pid, pid)
"""


def test_every_forked_child_leaves_a_report(run_python: RunPython) -> None:
    """Even one that imports nothing new and ends with os._exit, as fork workers do."""
    run = run_python(SUBPROCESSES, Policy(seed=3))
    assert run.returncode == 0, run.stderr
    worker, raw = (int(pid) for pid in run.stdout.split()[-2:])
    children = {r["pid"]: r for r in run.reports() if r["pid"] != run.pid}
    assert set(children) == {worker, raw}  # none for the exec'd `true`
    assert [children[worker]["fork_index"], children[raw]["fork_index"]] == [1, 2]
    for report in children.values():
        assert report["forked_from"] == report["ppid"] == run.pid
        assert report["final"] is False  # written after the fork, not at exit
        statuses = {s["name"]: s["status"] for s in report["settings"]}
        assert statuses["env PYTHONHASHSEED"] == "applied"


def test_fork_seeds_follow_the_line_of_forks() -> None:
    report = Report(Policy(seed=7), None)
    report.forks = 2  # the parent's before-fork hook counted this child
    report.after_fork()
    assert (report.fork_index, report.forks, report.random_seed) == (2, 0, "7/2")
    report.forks = 1
    report.after_fork()
    assert (report.fork_index, report.random_seed) == (1, "7/2/1")
    assert Report(None, None).random_seed is None


def test_a_fork_while_python_shuts_down_is_not_an_error(run_python: RunPython) -> None:
    """Python's builtins are gone by then: the child leaves no report, and says nothing."""
    script = """
        import os

        class Late:
            def __del__(self):
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                os.waitpid(pid, 0)

        late = Late()
    """
    run = run_python(script)
    assert run.returncode == 0, run.stderr
    assert "toolkit runtime: warning" not in run.stderr
    assert len(run.reports()) == 1
