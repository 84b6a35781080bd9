"""Log metrics from an experiment: toolkit.runtime.log(step=3, loss=0.25).

This package runs inside the experiment's processes (standard library only). Its
sitecustomize applies the run's determinism policy; see toolkit/runtime/sitecustomize.py.
"""

from __future__ import annotations

import os
import sys
import time

METRICS_FILE = "metrics.jsonl"

_warned = False


def log(step: int | None = None, **values: float) -> None:
    """Append one line of metrics to the run's metrics.jsonl: {"step", "time", "values"}.

    Safe from several threads and processes at once; without a run directory it does nothing
    and says so once.
    """
    run_dir = os.environ.get("TOOLKIT_RUN_DIR")
    if not run_dir:
        _warn_once()
        return
    import json  # here, not at the top: every process of a run imports this package

    numbers = {}
    for name, value in values.items():
        try:
            numbers[name] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"toolkit.runtime.log: {name}={value!r} is not a number") from None
    if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
        raise TypeError(f"toolkit.runtime.log: step={step!r} is not an integer")
    line = json.dumps({"step": step, "time": time.time(), "values": numbers}) + "\n"
    # One write() on an O_APPEND descriptor: lines from concurrent writers never interleave.
    fd = os.open(os.path.join(run_dir, METRICS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        sys.stderr.write("toolkit.runtime.log: TOOLKIT_RUN_DIR is not set; metrics are not saved\n")
