"""Run records: runs/<run-id>/record.json, versioned, written atomically, never overwritten."""

from __future__ import annotations

import glob
import json
import math
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
        hint = "make runs/ writable for this user, or run from a copy of the project"
        if base.exists() and not base.is_dir():
            hint = f"{base} is a file, where toolkit keeps the project's runs: move it away"
        raise UserError(
            f"cannot create a run folder in {base}: {exc.strerror}", hint=hint
        ) from None
    raise UserError(f"could not create a new run folder in {base}")


def portable(value: Any) -> Any:
    """`value` with NaN and infinities as the strings "NaN", "Infinity", "-Infinity": strict JSON
    has no such numbers, and parsers other than Python's (JavaScript, Go, jq) refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)  # the word Python's json writes bare: metrics.NON_FINITE
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [portable(item) for item in value]
    return value


def write_record(run_dir: Path, record: dict[str, Any]) -> Path:
    """Write record.json atomically; refuses to replace an existing record."""
    final = run_dir / RECORD_FILE
    temp = run_dir / f".{RECORD_FILE}.{os.getpid()}.tmp"
    text = json.dumps(portable(record), indent=2, sort_keys=False, allow_nan=False)
    try:
        temp.write_text(text + "\n", encoding="utf-8")  # a full disk leaves no half of it
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
    _read_non_finite(data.get("metrics"))
    return data


def _read_non_finite(metrics: Any) -> None:
    """Metric values written as "NaN"/"Infinity"/"-Infinity" (see `portable`) back as floats.

    Only metric values: elsewhere such a string may be just a string. Records written before
    hold bare NaN, which Python's json reads as it is.
    """
    from toolkit.metrics import NON_FINITE  # here: `toolkit run` loads this module at its start

    if not isinstance(metrics, dict):
        return
    final = metrics.get("primary_final")
    if isinstance(final, str) and final in NON_FINITE:
        metrics["primary_final"] = NON_FINITE[final]
    series = metrics.get("series")
    for points in series.values() if isinstance(series, dict) else ():
        for point in points if isinstance(points, list) else ():
            if isinstance(point, list) and len(point) == 2 and isinstance(point[1], str):
                point[1] = NON_FINITE.get(point[1], point[1])


LATEST = "latest"  # the run reference for the newest run of the project


def find_run(root: Path, ref: str) -> Path:
    """A run folder from an id, a unique id prefix, a path, or `latest` (the run that started
    last)."""
    if ref == LATEST and not Path(ref).exists():
        runs = list_runs(root)
        if not runs:
            raise UserError(f"no runs yet in {runs_dir(root)}", hint="`toolkit run` makes one")
        return runs[-1].path
    as_path = Path(ref)
    if (as_path / RECORD_FILE).is_file() or (as_path.is_file() and as_path.suffix == ".json"):
        return as_path
    if as_path.is_dir():
        raise UserError(f"no record.json in {ref}", hint="`toolkit runs` lists this project's runs")
    if as_path.exists():
        raise UserError(
            f"{ref} is not a run: give a run id, a run folder or its record.json",
            hint="`toolkit runs` lists this project's runs",
        )
    if "/" in ref:
        raise UserError(
            f"no such run folder or record: {ref}", hint="`toolkit runs` lists this project's runs"
        )
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
    """Every readable record under runs/, oldest first (by start time, to the millisecond)."""
    found = []
    base = runs_dir(root)
    for folder in base.iterdir() if base.is_dir() else []:
        if not (folder / RECORD_FILE).is_file():
            continue
        try:
            data = read_record(folder)
        except UserError:
            continue
        metrics = data.get("metrics") or {}
        value = metrics.get("primary_final")
        found.append(
            RunSummary(
                id=str(data.get("id", folder.name)),
                path=folder,
                target=str(data.get("target", "?")),
                status=str(data.get("status", "?")),
                primary=metrics.get("primary"),
                primary_value=float(value)
                if isinstance(value, int | float) and not isinstance(value, bool)
                else None,
                started=str(data.get("started") or ""),
                native=bool(data.get("native")),
            )
        )
    # Ids start with the second a run started and end in random hex: runs started within one
    # second sort by chance. `started` is ISO 8601 UTC with milliseconds, so it sorts as text.
    return sorted(found, key=lambda r: (r.started, r.id))
