"""Turn what a user types (run id, run folder, bundle file, folder of records) into runs."""

from __future__ import annotations

from pathlib import Path

from toolkit import bundle, record
from toolkit.diff import Run
from toolkit.errors import UserError


def load_runs(root: Path, ref: str, scratch: Path, *, single: bool = False) -> list[Run]:
    """The runs `ref` names; bundles unpack into `scratch`. `single`: exactly one run expected."""
    path = Path(ref)
    if path.is_file() and path.suffix != ".json":  # a bundle, whatever its name
        scratch.mkdir(parents=True, exist_ok=True)
        runs = bundle.open_bundle(path, scratch)
    elif record.is_run_folder(path) and not (path / record.RECORD_FILE).is_file():
        raise record.no_record(path)  # a run's own folder, not a folder of runs
    elif path.is_dir() and not (path / record.RECORD_FILE).is_file():
        runs = [
            Run(record.read_record(folder), folder)
            for folder in sorted(path.iterdir())
            if (folder / record.RECORD_FILE).is_file()
        ]
        if not runs:
            raise UserError(f"{path}: no run records in this folder")
    else:
        found = record.find_run(root, ref)  # a run folder, or a record file of any name
        runs = [Run(record.read_record(found), found.parent if found.is_file() else found)]
    if single and len(runs) != 1:
        raise _not_one_run(ref, [r.id for r in runs])
    return runs


def _not_one_run(ref: str, ids: list[str]) -> UserError:
    """Where one run is needed (show, diff), and `ref` holds none or several."""
    if not ids:
        return UserError(f"{ref} holds no runs")
    hint = (
        f"`toolkit runs import {ref}`, then give one of these ids"
        if Path(ref).is_file()
        else "give one run's folder, or its id"
    )
    return UserError(f"{ref} holds {len(ids)} runs: {', '.join(ids)}; give one", hint=hint)
