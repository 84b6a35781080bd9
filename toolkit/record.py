"""Run records: runs/<run-id>/record.json, versioned, written atomically, never overwritten."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from toolkit.errors import UserError
from toolkit.paths import OUTPUTS, RUNS_DIR, held_by_another, hold, let_go

SCHEMA = "toolkit.run/1"
_PREFIX = "toolkit.run/"  # a record of another version of the schema starts so too
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
    exit_code: int | None = None
    why: str | None = None  # why a run folder has no record (status NO_RECORD)


RUNNING = "running"  # the status of a run folder whose toolkit is running it now
NO_RECORD = "no record"  # the status of one whose toolkit ended before it wrote the record
# why a run folder has no record: said by `runs`, and by `show` and `diff` when one is named
ENDED_WHY = "toolkit ended before it wrote the record (killed, out of memory, or the disk full)"
# a folder toolkit could not mark as running (a file system without locks; an older toolkit)
NO_RECORD_WHY = (
    "a run still going, or one stopped before its record was written (toolkit killed, out of "
    "memory, or the disk full; the 4 MB .record-space file it holds for the record can go)"
)
RECORD_SPACE = ".record-space"  # disk space held for the record while the experiment runs
# In a run folder, locked (flock) by the toolkit running the run until its record is written;
# the system lets go of the lock when that toolkit ends, killed or not.
_RUNNING_FILE = ".running"
_LOGS = ("stdout.log", "stderr.log")
# A metric's point, [step, value], as json.dumps(indent=2) spreads it over four lines: kept on
# one, a long series takes a third of the room. (A JSON string holds no raw newline: only
# structure matches.)
_NUMBER = r'-?[0-9][0-9.eE+-]*|"NaN"|"-?Infinity"'
_POINT = re.compile(rf"\[\n\s+({_NUMBER}),\n\s+({_NUMBER})\n\s+\]")
_RUN_ID = re.compile(r"(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-(.+)-[0-9a-f]{4}")


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


def claim(run_dir: Path, *, native: bool) -> IO[str] | None:
    """Mark a new run folder as being run by this process until `release`: `toolkit runs`
    then tells a run still going from one whose toolkit ended without writing its record.
    None where the file system has no locks (NFS without lockd): the folder is then unmarked."""
    path = run_dir / _RUNNING_FILE
    try:
        handle = path.open("x", encoding="utf-8")
    except OSError:
        return None
    try:
        hold(handle, json.dumps({"pid": os.getpid(), "native": native}))
    except OSError:  # an unlocked mark would say its run had ended
        handle.close()
        path.unlink(missing_ok=True)
        return None
    return handle


def release(run_dir: Path, claimed: IO[str] | None) -> None:
    """The run's record is written (or the run is gone): its folder is no longer marked."""
    if claimed is not None:
        with contextlib.suppress(OSError):
            (run_dir / _RUNNING_FILE).unlink()
        let_go(claimed)


def others_running(root: Path, this: Path) -> bool:
    """Whether a run of the project other than `this` one is still running (by its `.running`
    lock; a folder that is not marked, or cannot be looked at, may run too, and counts)."""
    base = runs_dir(root)

    def running(folder: Path) -> bool:
        try:
            return (
                not (folder / RECORD_FILE).is_file()
                and is_run_folder(folder)
                and _run_state(folder)[0] != NO_RECORD
            )
        except OSError:
            return True

    return any(folder != this and running(folder) for folder in base.iterdir())


def _run_state(folder: Path) -> tuple[str | None, dict[str, Any]]:
    """Whether the toolkit that ran a recordless folder runs it still (RUNNING), or ended
    (NO_RECORD: the disk space it held for the record is given back); None where the folder
    is not marked (`claim`). With what the mark says (pid, native)."""
    try:
        handle = (folder / _RUNNING_FILE).open(encoding="utf-8")
    except OSError:
        return None, {}
    with handle:
        held = held_by_another(handle)
        if held is None:
            return None, {}
        state = RUNNING if held else NO_RECORD
        if not held:
            with contextlib.suppress(OSError):
                (folder / RECORD_SPACE).unlink(missing_ok=True)
        try:
            said = json.loads(handle.read())
        except (OSError, ValueError):
            said = {}
    return state, said if isinstance(said, dict) else {}


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
    text = _POINT.sub(r"[\1, \2]", json.dumps(portable(record), indent=2, allow_nan=False))
    try:
        temp.write_text(text + "\n", encoding="utf-8")  # a full disk leaves no half of it
        os.link(temp, final)  # fails if a record exists: records are never overwritten
    except FileExistsError:
        raise UserError(f"{final} exists; run records are never overwritten") from None
    finally:
        temp.unlink(missing_ok=True)
    return final


def read_record(path: Path) -> dict[str, Any]:
    """A record from a run folder or a record.json, checked for its schema version and for the
    shape of every field toolkit reads (diff, repro-check, show, runs)."""
    file = path / RECORD_FILE if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{file}: no run record here") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{file}: unreadable run record ({exc})") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(_PREFIX):
        raise UserError(f"{file}: not a toolkit run record (no 'schema': '{SCHEMA}')")
    _check_schema(file, str(data["schema"]))
    problem = _RECORD(data, "")
    if problem:
        raise UserError(
            f"{file}: damaged run record ({problem})",
            hint="toolkit writes a record once and never edits it: restore this one from a copy "
            "(or a bundle from `toolkit runs export`), or run the experiment again",
        )
    return data


def _check_schema(file: Path, schema: str) -> None:
    """A record of a newer toolkit is refused, not read as if it were ours: its fields may
    mean something else, and a diff of it could give a wrong verdict without a word."""
    if schema == SCHEMA:
        return
    version, ours = schema.removeprefix(_PREFIX), SCHEMA.removeprefix(_PREFIX)
    if version.isdigit() and int(version) > int(ours):
        from toolkit import __version__

        raise UserError(
            f"{file}: run record schema {schema} is newer than this toolkit reads ({SCHEMA})",
            hint=f"upgrade toolkit to read it (this is toolkit {__version__}): "
            "pip install --upgrade repro-toolkit",
        )
    raise UserError(f"{file}: unknown run record schema {schema!r} (this toolkit reads {SCHEMA})")


# What a record's fields must be, where present: a record of an older toolkit may lack one (a
# reader takes it as not recorded), and a field may be null only where toolkit writes null.
# Each check takes a value and where it is, and says what is wrong with it, or None.
Check = Callable[[Any, str], str | None]


def _shown(value: Any) -> str:
    """A value as the error message names it: JSON, short."""
    if isinstance(value, dict):
        return "an object"
    text = json.dumps(value)
    if isinstance(value, list) and len(text) > 40:
        return "a list"
    return text if len(text) <= 40 else text[:37] + "..."


def _wrong(where: str, value: Any, expected: str) -> str:
    return f"{where} is {_shown(value)}, expected {expected}"


def _kind(types: tuple[type, ...], what: str, *, null: bool = False) -> Check:
    expected = f"{what} or null" if null else what
    exact = bool not in types  # JSON's true is no number

    def check(value: Any, where: str) -> str | None:
        if (value is None and null) or (
            isinstance(value, types) and not (exact and isinstance(value, bool))
        ):
            return None
        return _wrong(where, value, expected)

    return check


def _object(fields: dict[str, Check] | None = None, *, null: bool = False) -> Check:
    expected = "an object or null" if null else "an object"

    def check(value: Any, where: str) -> str | None:
        if value is None and null:
            return None
        if not isinstance(value, dict):
            return _wrong(where, value, expected)
        for key, field in (fields or {}).items():
            if key in value:
                problem = field(value[key], f"{where}.{key}" if where else key)
                if problem:
                    return problem
        return None

    return check


def _list_of(item: Check, expected: str) -> Check:
    def check(value: Any, where: str) -> str | None:
        if not isinstance(value, list):
            return _wrong(where, value, expected)
        for i, entry in enumerate(value):
            problem = item(entry, f"{where}[{i}]")
            if problem:
                return problem
        return None

    return check


def _map_of(item: Check, expected: str, *, null: bool = False) -> Check:
    expected = f"{expected} or null" if null else expected

    def check(value: Any, where: str) -> str | None:
        if value is None and null:
            return None
        if not isinstance(value, dict):
            return _wrong(where, value, expected)
        for key, entry in value.items():
            problem = item(entry, f"{where}.{key}")
            if problem:
                return problem
        return None

    return check


_TEXT = _kind((str,), "a string")
_TEXT_OR_NULL = _kind((str,), "a string", null=True)
_TEXTS = _list_of(_TEXT, "a list of strings")
_HASHES = _map_of(_TEXT, "an object of path -> hash")
_OBJECTS = _list_of(_object(), "a list of objects")
_NON_FINITE = '"NaN", "Infinity" or "-Infinity"'


def _metrics(value: Any, where: str) -> str | None:
    """`metrics`; metric values written as "NaN"/"Infinity"/"-Infinity" (see `portable`) are
    read back as floats on the way, so the points are gone over once. Only metric values:
    elsewhere such a string may be just a string. Records written before hold bare NaN, which
    Python's json reads as it is."""
    from toolkit.metrics import NON_FINITE  # here: `toolkit run` loads this module at its start

    problem = _METRICS_FIELDS(value, where)
    if problem:
        return problem
    final = value.get("primary_final")
    if isinstance(final, str) and final in NON_FINITE:
        value["primary_final"] = final = NON_FINITE[final]
    if final is not None and (type(final) not in (int, float)):
        return _wrong(f"{where}.primary_final", final, f"null, a number, {_NON_FINITE}")
    series = value.get("series", {})
    if not isinstance(series, dict):
        return _wrong(f"{where}.series", series, "an object of [step, value] lists")
    for name, points in series.items():
        if not isinstance(points, list):
            return _wrong(f"{where}.series.{name}", points, "a list of [step, value] pairs")
        for i, point in enumerate(points):
            if type(point) is list and len(point) == 2 and type(point[0]) is int:
                number = point[1]
                if type(number) is float or type(number) is int:
                    continue
                if type(number) is str and number in NON_FINITE:
                    point[1] = NON_FINITE[number]
                    continue
            return _wrong(
                f"{where}.series.{name}[{i}]",
                point,
                f"[step, value]: an integer and a number, {_NON_FINITE}",
            )
    return None


_METRICS_FIELDS = _object(
    {"primary": _TEXT_OR_NULL, "file": _TEXT_OR_NULL, "patterns": _map_of(_TEXT, "a regex")}
)
_RECORD = _object(
    {
        "id": _TEXT,
        "project": _TEXT,
        "target": _TEXT,
        "status": _TEXT,
        "exit_code": _kind((int,), "an integer", null=True),
        "engine_error": _TEXT_OR_NULL,
        "command": _TEXTS,
        "started": _TEXT,
        "ended": _TEXT,
        "duration_s": _kind((int, float), "a number", null=True),
        "native": _kind((bool,), "true or false"),
        "network": _TEXT_OR_NULL,
        "toolkit_version": _TEXT,
        "image": _object({"ref": _TEXT_OR_NULL, "id": _TEXT_OR_NULL}, null=True),
        "lockfile": _object({"sha256": _TEXT_OR_NULL}, null=True),
        "code": _object(
            {
                "commit": _TEXT_OR_NULL,
                "dirty": _kind((bool,), "true or false"),
                "diff_sha256": _TEXT_OR_NULL,
                "content_sha256": _TEXT_OR_NULL,
                "files": _map_of(_TEXT, "an object of path -> blob id", null=True),
                "patch": _TEXT_OR_NULL,
            },
            null=True,
        ),
        "data": _object(
            {"digest": _TEXT_OR_NULL, "files": _HASHES, "missing": _TEXTS, "changed": _TEXTS},
            null=True,
        ),
        "determinism": _object(
            {
                "policy": _object(null=True),
                "environment": _object(),
                "applied": _OBJECTS,
                "forced": _TEXTS,
                "overridden": _OBJECTS,
                "nondeterministic_ops": _list_of(_object({"op": _TEXT}), "a list of objects"),
            }
        ),
        "python": _TEXT_OR_NULL,
        "processes": _OBJECTS,
        "host": _object({"gpus": _OBJECTS}, null=True),
        "accelerator": _object({"devices": _OBJECTS}, null=True),
        "libraries": _object(),
        "packages": _object(),
        "package_drift": _OBJECTS,
        "incomplete": _TEXTS,
        "warnings": _TEXTS,
        "metrics": _metrics,
        "outputs": _object(
            {"digest": _TEXT_OR_NULL, "files": _HASHES, "declared": _TEXTS}, null=True
        ),
        "logs": _object(),
    }
)


LATEST = "latest"  # the run reference for the newest run of the project


def find_run(root: Path, ref: str) -> Path:
    """A run folder from an id, a unique id prefix, a path, or `latest` (the run that started
    last)."""
    if ref == LATEST and not Path(ref).exists():
        runs = list_runs(root)
        if not runs:
            unrecorded = scan_runs(root, unrecorded=True)[0]
            if unrecorded:
                raise UserError(
                    f"no run records yet in {runs_dir(root)}, only run folders without one: "
                    + ", ".join(f"{r.id} ({r.status})" for r in unrecorded),
                    hint="a run writes its record as it ends; `toolkit runs` says why one has none",
                )
            raise UserError(f"no runs yet in {runs_dir(root)}", hint="`toolkit run` makes one")
        # ids start with their UTC start: a newer run whose record cannot be read is not
        # skipped for an older one without a word
        newer = sorted(
            f.name
            for f in runs_dir(root).iterdir()
            if (f / RECORD_FILE).is_file() and f.name > runs[-1].path.name
        )
        for name in newer:  # readable ones started earlier within their second
            try:
                read_record(runs_dir(root) / name)
            except UserError as exc:
                raise UserError(
                    f"the latest run cannot be read: {exc.message}",
                    hint="name the run you mean; `toolkit runs` lists those it can read",
                ) from None
        return runs[-1].path
    as_path = Path(ref)
    if (as_path / RECORD_FILE).is_file() or (as_path.is_file() and as_path.suffix == ".json"):
        return as_path
    if as_path.is_dir():
        if is_run_folder(as_path):
            raise no_record(as_path)
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
    if is_run_folder(base / ref):
        raise no_record(base / ref)
    matches = sorted(p for p in base.glob(f"{glob.escape(ref)}*") if (p / RECORD_FILE).is_file())
    if len(matches) == 1:
        return matches[0]
    if not matches:
        folders = [p for p in base.glob(f"{glob.escape(ref)}*") if is_run_folder(p)]
        if len(folders) == 1:
            raise no_record(folders[0])
        raise UserError(f"no run {ref!r} in {base}", hint="`toolkit runs` lists them")
    raise UserError(f"{ref!r} matches {len(matches)} runs; give more of the id")


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` is a run's, with or without a record: a run writes its logs and makes
    its outputs folder as it starts."""
    return folder.is_dir() and (
        any((folder / log).is_file() for log in _LOGS) or (folder / OUTPUTS).is_dir()
    )


def no_record(folder: Path) -> UserError:
    """The error for a run folder named where its record is needed (show, diff, export)."""
    written = max(  # the logs', not the folder's: listing the run gives back its held space
        (f.stat().st_mtime for f in (folder / log for log in _LOGS) if f.exists()), default=None
    )
    when = ""
    if written is not None:
        when = f"; its logs were last written {_ago(max(0.0, time.time() - written))} ago"
    row = _unrecorded(folder)
    logs = " and ".join(log for log in _LOGS if (folder / log).is_file()) or "its logs"
    # a native run writes its outputs where it runs; they are copied into the folder at its end
    wrote = "in its workdir" if row.native else "in outputs/"
    shown = f"What it printed is in {logs} in that folder, what it wrote {wrote}"
    if row.status == RUNNING:
        return UserError(
            f"run {folder.name} is still running: it has no record yet",
            hint=f"toolkit writes the record as the run ends{when}. {shown}",
        )
    if row.why == ENDED_WHY and not row.native:  # the engine runs a container on regardless
        shown += (
            ". Its container may run on: `docker ps --filter "
            f"label=io.toolkit.run={folder.name}` (docker stop it)"
        )
    return UserError(
        f"run {folder.name} has no record: its folder {folder} exists, but holds no {RECORD_FILE}",
        hint=f"{row.why}{when}. {shown}"
        if row.why == ENDED_WHY
        else f"toolkit writes the record as a run ends: this is {row.why}{when}. {shown}",
    )


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _unrecorded(folder: Path) -> RunSummary:
    """A run folder without a record, as `toolkit runs` lists it: its start and target from its
    id (made by `new_run_dir`), else the folder's time."""
    found = _RUN_ID.fullmatch(folder.name)
    if found:
        year, month, day, hour, minute, second, target = found.groups()
        started = f"{year}-{month}-{day}T{hour}:{minute}:{second}.000Z"
    else:
        target = "?"
        stamp = time.gmtime(folder.stat().st_mtime)
        started = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", stamp)
    state, said = _run_state(folder)
    why = {RUNNING: None, NO_RECORD: ENDED_WHY}.get(state or "", NO_RECORD_WHY)
    native = bool(said.get("native"))
    return RunSummary(
        folder.name, folder, target, state or NO_RECORD, None, None, started, native, why=why
    )


def list_runs(root: Path) -> list[RunSummary]:
    """Every readable record under runs/, oldest first (by start time, to the millisecond)."""
    return scan_runs(root)[0]


def scan_runs(root: Path, *, unrecorded: bool = False) -> tuple[list[RunSummary], list[UserError]]:
    """Every readable record under runs/, oldest first, and why each other one is unreadable
    (damaged, or of a newer toolkit): one such record does not hide the others. `unrecorded`:
    also each run folder without a record: a run still going (RUNNING), or one whose toolkit
    ended before it wrote the record (NO_RECORD, which gives back the disk space it held)."""
    found, unreadable = [], []
    base = runs_dir(root)
    for folder in base.iterdir() if base.is_dir() else []:
        if not (folder / RECORD_FILE).is_file():
            if not (unrecorded and is_run_folder(folder) and not folder.name.startswith(".")):
                continue
            row = _unrecorded(folder)
            if not (folder / RECORD_FILE).is_file():  # else written while it was looked at
                found.append(row)
                continue
        try:
            data = read_record(folder)
        except UserError as exc:
            unreadable.append(exc)
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
                primary_value=float(value) if value is not None else None,
                started=str(data.get("started") or ""),
                native=bool(data.get("native")),
                exit_code=data.get("exit_code"),
            )
        )
    # Ids start with the second a run started and end in random hex: runs started within one
    # second sort by chance. `started` is ISO 8601 UTC with milliseconds, so it sorts as text.
    return sorted(found, key=lambda r: (r.started, r.id)), sorted(unreadable, key=str)
