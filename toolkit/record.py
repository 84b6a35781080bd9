"""Run records: runs/<run-id>/record.json, versioned, written atomically, never overwritten."""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import UserError
from toolkit.paths import RUNS_DIR

SCHEMA = "toolkit.run/1"
# What a record says about a run's inputs, gathered while the run goes on; a record that had to
# be written without some of them (Ctrl-C while waiting) lists those under `incomplete`.
FACTS = ("lockfile", "code", "host", "packages", "package_drift", "data")
RECORD_FILE = "record.json"


@dataclass(frozen=True)
class RunSummary:
    """One line of `toolkit runs`."""

    id: str
    path: Path
    target: str
    status: str
    primary: str | None
    primary_value: float | None
    started: str
    native: bool


def runs_dir(root: Path) -> Path:
    return root / RUNS_DIR


def new_run_dir(root: Path, target: str) -> tuple[str, Path]:
    """A fresh, uniquely named run folder: two runs started together never share one."""
    base = runs_dir(root)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    try:
        base.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            run_id = f"{stamp}-{target}-{os.urandom(2).hex()}"
            path = base / run_id
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return run_id, path
    except OSError as exc:
        raise UserError(
            f"cannot create a run folder in {base}: {exc.strerror}",
            hint="make runs/ writable for this user, or run from a copy of the project",
        ) from None
    raise UserError(f"could not create a new run folder in {base}")


def write_record(run_dir: Path, record: dict[str, Any]) -> Path:
    """Write record.json atomically; refuses to replace an existing record."""
    final = run_dir / RECORD_FILE
    temp = run_dir / f".{RECORD_FILE}.{os.getpid()}.tmp"
    temp.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    try:
        os.link(temp, final)  # fails if a record exists: records are never overwritten
    except FileExistsError:
        raise UserError(f"{final} exists; run records are never overwritten") from None
    finally:
        temp.unlink(missing_ok=True)
    return final


def read_record(path: Path) -> dict[str, Any]:
    """A record from a run folder or a record.json, checked for the schema."""
    file = path / RECORD_FILE if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{file}: no run record here") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{file}: unreadable run record ({exc})") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("toolkit.run/"):
        raise UserError(f"{file}: not a toolkit run record (no 'schema': '{SCHEMA}')")
    return data


def find_run(root: Path, ref: str) -> Path:
    """A run folder from an id, a unique id prefix, or a path."""
    as_path = Path(ref)
    if (as_path / RECORD_FILE).is_file() or (as_path.is_file() and as_path.suffix == ".json"):
        return as_path
    if "/" in ref or as_path.exists():
        what = "no record.json in" if as_path.is_dir() else "no such run folder or record:"
        raise UserError(f"{what} {ref}", hint="`toolkit runs` lists this project's runs")
    base = runs_dir(root)
    if (base / ref / RECORD_FILE).is_file():
        return base / ref
    matches = sorted(p for p in base.glob(f"{glob.escape(ref)}*") if (p / RECORD_FILE).is_file())
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(f"no run {ref!r} in {base}", hint="`toolkit runs` lists them")
    raise UserError(f"{ref!r} matches {len(matches)} runs; give more of the id")


def list_runs(root: Path) -> list[RunSummary]:
    """Every readable record under runs/, oldest first."""
    found = []
    base = runs_dir(root)
    for folder in sorted(base.iterdir() if base.is_dir() else []):
        if not (folder / RECORD_FILE).is_file():
            continue
        try:
            data = read_record(folder)
        except UserError:
            continue
        metrics = data.get("metrics", {})
        found.append(
            RunSummary(
                id=data.get("id", folder.name),
                path=folder,
                target=data.get("target", "?"),
                status=data.get("status", "?"),
                primary=metrics.get("primary"),
                primary_value=metrics.get("primary_final"),
                started=data.get("started", ""),
                native=bool(data.get("native")),
            )
        )
    return found
