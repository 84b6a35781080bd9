"""How a run went, as its processes and logs tell: the settings each process applied (the
runtime's reports) merged into the record's, the ops that had no deterministic kernel, and signs
that a run failed for want of a network."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_LOG_TAIL = 256 * 1024  # what a failed run's stderr is searched for a strict-mode stop

# How Python's socket, urllib, requests and httpx, and curl, git, wget and ssh say that there
# is no network to reach
_OFFLINE_SIGNS = (
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "NameResolutionError",
    "Failed to resolve",
    "Could not resolve host",  # curl, git
    "unable to resolve host address",  # wget
    "Could not resolve hostname",  # ssh
)

IN_OUTPUT = "in_output"  # an op a failed run's output names: the runtime never saw it raised
# torch's "<op> does not have a deterministic implementation", after whatever prefix a log adds
_OP_IN_OUTPUT = re.compile(r"(?:^|[\s:'\"])([A-Za-z_][\w.]*) does not have a deterministic impl")


def runtime_reports(run_dir: Path) -> list[dict[str, Any]]:
    """What the runtime reported from each Python process of the run, the main one first."""
    from collections import Counter

    reports = []
    for path in sorted((run_dir / "runtime").glob("*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    # The main process first (its settings stand for the run's), then its children, level by
    # level: a parent is found by pid, as pids may wrap and give a child a lower one. Of the
    # top-level processes, the one with children first (not a re-parented resource tracker).
    parents = {r.get("pid"): r.get("forked_from") or r.get("ppid") for r in reports}
    children = Counter(parents.values())

    def depth(pid: Any) -> int:
        level, seen = 0, {pid}
        while parents.get(pid) in parents and parents[pid] not in seen:
            pid = parents[pid]
            seen.add(pid)
            level += 1
        return level

    reports.sort(key=lambda r: (depth(r.get("pid")), -children[r.get("pid")], r.get("pid", 0)))
    return reports


def merged_settings(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The main process's settings (the first report), which its children repeat, with what a
    child did differently: a setting that failed there, or a library only the child loaded
    (a launcher script that runs `python train.py`)."""
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        for entry in report.get("settings", []):
            name, status = str(entry.get("name")), entry.get("status")
            known = merged.get(name)
            if known is None:
                merged[name] = dict(entry)
            elif (status == "failed" and known.get("status") != "failed") or (
                known.get("status") == "not_applicable" and status not in (None, "not_applicable")
            ):
                where = f"in process {report.get('pid')} ({_program(report)})"
                detail = entry.get("detail")
                merged[name] = {**entry, "detail": f"{where}: {detail}" if detail else where}
    # "torch was not imported by this process": not so of the run when another process applied
    # torch's settings
    return [
        entry
        for name, entry in merged.items()
        if entry.get("status") != "not_applicable"
        or not any(other.startswith(f"{name}.") for other in merged)
    ]


def merged_forced(reports: list[dict[str, Any]]) -> list[str]:
    """Every value the policy overrode, in any process (a child's DataLoader too), once."""
    return list(dict.fromkeys(str(change) for r in reports for change in r.get("forced", [])))


def merged_overridden(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Settings the program changed after the policy applied them: each once, as the first
    process that did (the main one first) found it, with that process's pid."""
    seen: dict[str, dict[str, Any]] = {}
    for report in reports:
        for entry in report.get("overridden") or []:
            seen.setdefault(str(entry.get("name")), {**entry, "pid": report.get("pid")})
    return list(seen.values())


def _program(report: dict[str, Any]) -> str:
    argv = report.get("argv") or []
    return " ".join(str(word) for word in argv[:2])[:80] or "?"


def merged_ops(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each op without a deterministic kernel that any process ran (or stopped at), once."""
    seen: dict[str, dict[str, Any]] = {}
    for report in reports:
        for entry in report.get("nondeterministic_ops", []):
            seen.setdefault(str(entry.get("op")), entry)
    return list(seen.values())


def ops_in_log(log: Path) -> list[dict[str, Any]]:
    """Ops a failed run's last output names, as torch words it: a program that caught the
    error and exited (Hydra logs it and exits 1) never lets the runtime see it raised. Named,
    not proven: the run may have failed for another reason after catching it."""
    found = dict.fromkeys(m.group(1) for m in _OP_IN_OUTPUT.finditer(_log_tail(log)))
    return [{"op": op, "mode": IN_OUTPUT} for op in found]


def _log_tail(log: Path) -> str:
    """The end of a run's log ("" when it cannot be read)."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - _LOG_TAIL))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def replaced_a_mount(run_dir: Path) -> bool:
    """Whether a failed run's output says that a rename onto a mounted file failed (EBUSY):
    a declared output file, bound into a container, can be written but not replaced."""
    return "Device or resource busy" in _log_tail(run_dir / "stderr.log")


def offline_failure(run_dir: Path) -> str | None:
    """What in a failed run's output says that it tried to reach the network, or None."""
    tail = _log_tail(run_dir / "stderr.log") + _log_tail(run_dir / "stdout.log")
    return next((sign for sign in _OFFLINE_SIGNS if sign in tail), None)


def shebang_failure(run_dir: Path, program: str, workdir: Path) -> str | None:
    """Why a run's script that exited 127 did not start, when its `#!` line is the cause: the
    Windows line ending that makes the system (or env) look for another interpreter, or, in a
    container, the interpreter its image lacks (as "/usr/bin/env python4"); None where
    neither the container's init (tini) nor env failed to run a script that is there."""
    from toolkit import facts

    if "/" not in program:
        return None
    script = workdir / program
    interpreter = facts.shebang(script)
    dos = facts.dos_shebang(script, program)
    if dos:  # fatal whatever runs it: env, or the kernel
        return ": ".join(dos)
    tail = _log_tail(run_dir / "stderr.log")
    words = (interpreter or "").split()
    named = [w for w in words[1:] if not w.startswith("-")]  # #!/usr/bin/env python4
    env_failed = bool(words and words[0].endswith("/env") and named) and bool(
        re.search(rf"env: .?{re.escape(named[0])}.?: No such file or directory", tail)
    )
    if f"exec {program} failed: No such file or directory" not in tail and not env_failed:
        return None
    if interpreter:
        other = "sh" if script.suffix in (".sh", ".bash") else "python"
        return (
            f"{program} is there, but its interpreter is not in the image (#!{interpreter}): "
            f"fix the script's #! line, or run it with an interpreter ({other} {program})"
        )
    return None
