"""proc.stream: a program's run ends with the program, as a container's does."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.support import running_processes
from toolkit import proc


def stream(tmp_path: Path, script: str) -> tuple[int | None, str, float]:
    out: list[bytes] = []
    started = time.monotonic()
    code, interrupted = proc.stream(
        ["bash", "-c", script],
        env=os.environ,
        cwd=tmp_path,
        on_stdout=out.append,
        on_stderr=out.append,
    )
    assert not interrupted
    return code, b"".join(out).decode(), time.monotonic() - started


def test_what_the_program_leaves_running_is_stopped_when_it_ends(tmp_path: Path) -> None:
    # `sleep` holds the output open: the run used to last as long as it did (forever for a
    # server started with `&`)
    code, out, seconds = stream(tmp_path, "sleep 30 & echo $!; exit 3")
    assert code == 3
    assert seconds < proc.LEFTOVER_GRACE + 5
    assert running_processes(pid=int(out.split()[0])) == [], "the leftover outlived the run"


def test_leftovers_that_end_within_the_grace_are_heard_out(tmp_path: Path) -> None:
    code, out, _ = stream(tmp_path, "(sleep 0.5; echo late) & echo early")
    assert code == 0 and out.split() == ["early", "late"]


def test_a_leftover_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    stubborn = "bash -c 'trap \"\" TERM; echo $$; while :; do sleep 0.1; done'"
    code, out, seconds = stream(tmp_path, f"{stubborn} & sleep 0.2")
    assert code == 0
    assert seconds < 2 * proc.LEFTOVER_GRACE + 5
    assert running_processes(pid=int(out.split()[0])) == []
