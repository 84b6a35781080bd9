"""Where toolkit keeps its own files inside a project."""

from __future__ import annotations

from pathlib import Path

STATE_DIR = ".toolkit"  # logs, wheelhouse, caches: never committed
RUNS_DIR = "runs"  # one folder per run: record, logs, outputs


def logs_dir(root: Path) -> Path:
    """Folder for full logs of pip-tools, debootstrap and image builds."""
    path = root / STATE_DIR / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path
