"""A run's outputs at the paths the experiment declares: which files a native run wrote (its
workdir is shared with earlier runs), copied into its run folder; a metrics file it appends to."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any


def present(workdir: Path, declared: list[str]) -> dict[str, tuple[int, int, int]]:
    """The files now at the declared output paths, each with its (mtime, size, inode)."""
    found = {}
    for rel in declared:
        top = workdir / rel
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            with contextlib.suppress(OSError):
                if path.is_file():
                    stat = path.stat()
                    found[path.relative_to(workdir).as_posix()] = (
                        stat.st_mtime_ns,
                        stat.st_size,
                        stat.st_ino,
                    )
    return found


def copy_new(
    workdir: Path,
    outputs_dir: Path,
    declared: list[str],
    earlier: dict[str, tuple[int, int, int]],
    check: Callable[[], None],
) -> None:
    """Copy what the run wrote at the declared paths: files new or changed since it started.

    A native run shares its workdir with earlier runs: an output left there by one of them (a
    metrics file, a checkpoint) is not this run's, even when this run failed before writing it.
    """
    import shutil

    for rel, stat in present(workdir, declared).items():
        check()
        if earlier.get(rel) != stat:
            dest = outputs_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(workdir / rel, dest)


def appended(before: dict[str, bytes], outputs_dir: Path) -> list[str]:
    """A metrics file that still starts with what it held before this native run, and goes on
    with a new run's lines: the program appends to it, so the record has earlier runs' lines
    too (a container's starts empty). A reproducible program that rewrites the file writes the
    same first lines again, then goes on from there: no news."""
    found = []
    for rel, old in before.items():
        with contextlib.suppress(OSError):
            now = (outputs_dir / rel).read_bytes()
            if old and len(now) > len(old) and now.startswith(old) and _starts_over(old, now):
                lines = old.count(b"\n")
                found.append(
                    f"{rel} held {lines} line{'' if lines == 1 else 's'} before this run and "
                    "still starts with them, and the lines after them start over as a new run's "
                    "do: the program appends to it, so this record has earlier runs' metrics too; "
                    "open it with 'w', or remove it between native runs"
                )
    return found


def _starts_over(old: bytes, now: bytes) -> bool:
    """Whether what follows `old` in `now` begins as a run begins: a step before the last step
    of `old` (a JSON line's "step", a CSV file's step column), or, where either side has no
    step, the first line of `old` again (a CSV header too)."""
    from toolkit import metrics

    end = len(old)
    if not old.endswith(b"\n"):  # a torn last line: the rest of it is not a new line
        cut = now.find(b"\n", end)
        end = len(now) if cut < 0 else cut + 1
    earlier = [line for line in _lines(now[:end]) if line.strip()]
    added = [line for line in _lines(now[end:]) if line.strip()]
    if not earlier or not added:
        return False
    header = earlier[0]

    def step(lines: Iterable[str]) -> int | None:  # the first one found: a few lines read
        return next((s for x in lines if (s := metrics.line_step(x, header)) is not None), None)

    last, first = step(reversed(earlier)), step(added)
    if last is not None and first is not None:
        if first != last:
            return first < last
        # The step of the last lines again goes on (an evaluation logged at the step the next
        # epoch starts at), unless a metric logged there is logged again (a run of one step).
        at_last = []
        for line in reversed(earlier):
            if metrics.line_step(line, header) != last:
                break
            at_last.append(_names(line, header))
        again = _names(added[0], header)
        return any(again & names for names in at_last)
    return added[0] == earlier[0]


def _names(line: str, header: str) -> set[str]:
    """The metrics a line of a metrics file logs: a JSON line's keys, a CSV file's columns."""
    import json

    if line.lstrip().startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return set()
        return set(entry) - {"step"} if isinstance(entry, dict) else set()
    return {name.strip() for name in header.split(",")} - {"step"}


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="replace").splitlines()


def contents(workdir: Path, metrics_file: str | None) -> dict[str, bytes]:
    """The metrics file as it is before a native run (up to 64 MB), by its path as declared."""
    path = workdir / metrics_file if metrics_file else None
    with contextlib.suppress(OSError):
        if path is not None and path.is_file() and path.stat().st_size <= 64 * 1024 * 1024:
            return {path.relative_to(workdir).as_posix(): path.read_bytes()}
    return {}


def hashed(
    outputs_dir: Path,
    declared: list[str],
    copied_from: tuple[Path, dict[str, tuple[int, int, int]]] | None,
    check: Callable[[], None],
) -> dict[str, Any]:
    """The run's outputs hashed, a native run's first copied from its workdir (`copy_new`);
    `check` is called between files, and may raise to stop."""
    from toolkit import fingerprint

    if copied_from is not None:
        copy_new(copied_from[0], outputs_dir, declared, copied_from[1], check)
    found = fingerprint.fingerprint(outputs_dir, tuple(declared), check=check)
    return {"digest": found.digest, "files": found.files}


def drop_unwritten(placeholders: Mapping[Path, int]) -> None:
    """Remove each empty file made for a container's mount of a declared output (by its mtime
    then) that the run never wrote: it is no output of the run's, and two runs that wrote
    nothing would otherwise match on it (`diff` said identical)."""
    for path, made in placeholders.items():
        with contextlib.suppress(OSError):
            found = path.stat()
            if found.st_size == 0 and found.st_mtime_ns == made:
                path.unlink()


def is_folder(rel: str, workdir: Path) -> bool:
    """Whether a declared output is a folder, as its container mount takes it: written with a
    trailing slash, a folder in the workdir already, or a name without a suffix."""
    return rel.endswith("/") or (workdir / rel).is_dir() or not Path(rel).suffix


def missing_above(path: Path, root: Path) -> list[Path]:
    """The outermost of `path` and its folders below `root` that does not exist (as a list:
    none when `path` exists)."""
    if path.exists() or path.is_symlink():
        return []
    while path.parent != root and not path.parent.exists() and root in path.parents:
        path = path.parent
    return [path]


def remove_empty(paths: list[Path], files: set[Path]) -> None:
    """Take away what toolkit made in the project as mount targets: each of `paths` (a file
    or folder it made), with the empty `files` it made in them and the folders left empty.
    Anything else, an empty file the run wrote there too, is kept."""
    import os

    def mine(file: Path) -> bool:
        return file in files and not file.is_symlink() and file.stat().st_size == 0

    for path in paths:
        with contextlib.suppress(OSError):
            if not path.is_dir() or path.is_symlink():
                if mine(path):
                    path.unlink()
                continue
            for folder, _, names in sorted(os.walk(path), reverse=True):  # the deepest first
                for name in names:
                    if mine(Path(folder, name)):
                        Path(folder, name).unlink()
                os.rmdir(folder)  # not empty: stops here, the rest kept


def unwritten(outputs_dir: Path, declared: Iterable[str]) -> list[str]:
    """The declared outputs under which the run's outputs hold no file: the run wrote none."""
    found = []
    for rel in declared:
        path = outputs_dir / rel
        if not (path.is_file() or any(p.is_file() for p in path.rglob("*"))):
            found.append(rel)
    return found
