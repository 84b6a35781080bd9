"""Run bundles: export run folders to one file, import them safely on another machine."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from toolkit import record
from toolkit.diff import Run
from toolkit.errors import UserError
from toolkit.paths import RUN_BUNDLE_TOP, check_destination, written_whole

SCHEMA = "toolkit.bundle/1"
TOP = RUN_BUNDLE_TOP
MANIFEST = f"{TOP}/manifest.json"
_MAX_BYTES = 8 * 1024**3  # refuse absurd archives rather than fill the disk
_IMAGE_ARCHIVE = {"manifest.json", "repositories", "oci-layout", "index.json"}  # docker save


@dataclass(frozen=True)
class Imported:
    """What an import did: runs added, runs already present (never overwritten)."""

    added: tuple[str, ...]
    skipped: tuple[str, ...]
    projects: tuple[str, ...] = ()  # of the runs added, each project but `import_runs`'s


def export_runs(folders: list[Path], dest: Path, *, replace: bool = False) -> int:
    """Write run folders (record, logs, outputs) into one .tar.gz bundle, atomically; a run
    named twice goes in once; an existing file only if `replace`. Returns how many runs it
    holds."""
    check_destination(dest, "runs.tar.gz", replace=replace)
    ids: list[str] = []
    with written_whole(dest) as partial, tarfile.open(partial, "w:gz") as archive:
        for folder in folders:
            run_id = str(record.read_record(folder)["id"])
            if run_id not in ids:
                ids.append(run_id)
                archive.add(folder, arcname=f"{TOP}/{run_id}", filter=_no_links)
        manifest = json.dumps({"schema": SCHEMA, "runs": ids}, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
    return len(ids)


def import_runs(source: Path, runs_dir: Path, project: str | None = None) -> Imported:
    """Unpack a bundle's runs into runs_dir after checking every path and record; with the
    project they join (toolkit.yaml's name), the other projects the runs added are of."""
    with tempfile.TemporaryDirectory(prefix="toolkit-import-") as scratch:
        runs = _unpack(source, Path(scratch))
        runs_dir.mkdir(parents=True, exist_ok=True)
        added, skipped = [], []
        for run in runs:
            dest = runs_dir / run.id
            if (dest / record.RECORD_FILE).is_file():
                skipped.append(run.id)
                continue
            # copied under a hidden name, then renamed: Ctrl-C or a full disk leaves no
            # half-copied run, and a folder with no record (left by such a copy) is replaced
            partial = runs_dir / f".{run.id}.importing"
            shutil.rmtree(partial, ignore_errors=True)  # what a killed import left
            try:
                shutil.copytree(run.folder, partial)
                if dest.exists():
                    shutil.rmtree(dest)
                partial.rename(dest)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            added.append(run.id)
        projects = {str(r.record.get("project")) for r in runs if r.id in added}
    return Imported(tuple(added), tuple(skipped), tuple(sorted(projects - {str(project)})))


def open_bundle(source: Path, scratch: Path) -> list[Run]:
    """The runs of a bundle, unpacked into `scratch` (for comparing without importing)."""
    return _unpack(source, scratch)


def _unpack(source: Path, scratch: Path) -> list[Run]:
    if source.is_dir():
        raise UserError(f"{source} is a folder, not a run bundle")
    try:
        archive = tarfile.open(source, "r:*")  # noqa: SIM115  (closed by the `with` below)
    except tarfile.ReadError:
        raise UserError(f"{source}: not a run bundle (not a tar archive)") from None
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise UserError(f"{source}: not a run bundle ({_reason(exc)})") from None
    with archive:
        try:
            members = archive.getmembers()
        except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
            raise UserError(f"{source}: damaged bundle ({_reason(exc)})") from None
        names = {PurePosixPath(m.name).parts[0] for m in members if m.name}
        if TOP not in names:
            if names & _IMAGE_ARCHIVE:
                raise UserError(
                    f"{source} is an image archive (toolkit image export), not a run bundle",
                    hint=f"load it with `toolkit image import {source}`",
                )
            raise UserError(f"{source}: not a run bundle (no {TOP}/ in it)")
        total = 0
        for member in members:
            path = PurePosixPath(member.name)
            if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0] != TOP):
                raise UserError(f"{source}: unsafe path {member.name!r} in bundle; refused")
            if not (member.isfile() or member.isdir()):
                raise UserError(f"{source}: {member.name!r} is a link or device; refused")
            total += member.size
        if total > _MAX_BYTES:
            raise UserError(f"{source}: unpacks to {total / 1e9:.1f} GB; refused")
        try:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(scratch, filter="data")
            else:  # Python before 3.11.4: every member was checked above
                archive.extractall(scratch)
        except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
            raise UserError(f"{source}: damaged bundle ({_reason(exc)})") from None
    top = scratch / TOP
    try:
        manifest = json.loads((top / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{source}: no manifest; not made by `toolkit runs export`") from None
    if manifest.get("schema") != SCHEMA:
        raise UserError(f"{source}: unknown bundle schema {manifest.get('schema')!r}")
    runs = []
    for run_id in manifest.get("runs", []):
        folder = top / str(run_id)
        runs.append(Run(record.read_record(folder), folder))
    return runs


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "it ends early: truncated in transfer?"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _no_links(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return info if info.isfile() or info.isdir() else None
