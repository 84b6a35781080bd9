"""Content hashes of data and output files, kept apart from code."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.wheelhouse import sha256_of

# A file written again this soon after the last change could keep its size, mtime and ctime on a
# coarse clock (some kernels step ctime by milliseconds); such a fresh file is hashed every time.
_SETTLED_NS = 2_000_000_000


@dataclass(frozen=True)
class Fingerprint:
    """sha256 of every file under some paths, and one hash over all of them."""

    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    missing: tuple[str, ...] = ()  # declared paths that did not exist
    # relative path -> size, mtime, ctime and inode, as the file was when it was hashed
    stamps: dict[str, list[int | str]] = field(default_factory=dict, compare=False)

    @property
    def digest(self) -> str:
        combined = hashlib.sha256()
        for name, digest in sorted(self.files.items()):
            combined.update(f"{name}\0{digest}\n".encode())
        return combined.hexdigest()


def fingerprint(
    root: Path,
    paths: tuple[str, ...] | list[str],
    *,
    known: Path | None = None,
    check: Callable[[], None] = lambda: None,
    skip: tuple[str, ...] = (),
    data: bool = False,
) -> Fingerprint:
    """Hash every regular file under each of `paths` (files or folders), relative to `root`.

    With `known` (a JSON file of earlier hashes), a file whose size, mtime, ctime and inode
    are those it had when it was hashed is not read again: a dataset of many gigabytes costs
    its full read once, not on every run. `known` is then rewritten with what was seen.
    `check` is called between blocks of work: an exception from it stops the fingerprint.
    Files under `skip` (paths relative to `root`) are left out; with `data`, Python's bytecode
    too.
    """
    earlier = _load(known) if known else {}
    seen: dict[str, list[int | str]] = {}
    files: dict[str, str] = {}
    stamps: dict[str, list[int | str]] = {}
    found, missing = _files(root, paths, skip, data)
    for path in found:
        rel = path.relative_to(root).as_posix()
        stamps[rel] = _stamp(path)
        files[rel] = _sha256(path, stamps[rel], earlier, seen, check)
    if known and seen != earlier:
        _save(known, seen)
    return Fingerprint(files, tuple(missing), stamps)


def changed(
    root: Path,
    paths: tuple[str, ...] | list[str],
    before: Fingerprint,
    skip: tuple[str, ...] = (),
    check: Callable[[], None] = lambda: None,
) -> list[str]:
    """The files under `paths` (but `skip`) that are not as they were when `before` hashed
    them: changed, new or gone since (a run that writes into its own data). Looked at, and
    read only where nothing but its ctime or inode changed."""
    now: dict[str, list[int | str]] = {}
    for path in _files(root, paths, skip, data=True)[0]:
        with contextlib.suppress(OSError):  # gone while it was looked at
            now[path.relative_to(root).as_posix()] = _stamp(path)

    def differs(rel: str) -> bool:
        was, found = before.stamps.get(rel), now.get(rel)
        if was is None or found is None or was[:2] != found[:2]:  # new, gone, size or mtime
            return True
        if was == found:
            return False
        try:  # a chmod, or a hard link made to it, changes its ctime alone: read, to tell
            return sha256_of(root / rel, check) != before.files.get(rel)
        except OSError:
            return True

    return sorted(rel for rel in now.keys() | before.stamps.keys() if differs(rel))


def _files(
    root: Path, paths: tuple[str, ...] | list[str], skip: tuple[str, ...], data: bool
) -> tuple[list[Path], list[str]]:
    """Every regular file under each of `paths` (files or folders) below `root`, in order, and
    the paths that do not exist; but the files under those `skip` paths that a path does not
    lie in itself (data inside a declared output is data still), and, for `data`, Python's
    bytecode (__pycache__/, *.pyc: what the interpreter writes beside a module it imports)."""
    skipped = tuple(os.path.normpath(rel) for rel in skip)
    found: list[Path] = []
    missing = []
    for declared in paths:
        start = root / declared
        here = os.path.normpath(declared)
        left_out = tuple(out for out in skipped if not _under(here, out))
        if start.is_file():
            found += [start] if _kept(start, root, left_out, bytecode=not data) else []
        elif start.is_dir():
            walked = _followed(start) if data else (p for p in start.rglob("*") if _regular(p))
            found += sorted(p for p in walked if _kept(p, root, left_out, bytecode=not data))
        else:
            missing.append(declared)
    return found, missing


def _under(rel: str, folder: str) -> bool:
    return rel == folder or rel.startswith(folder + os.sep)


def _kept(path: Path, root: Path, left_out: tuple[str, ...], *, bytecode: bool) -> bool:
    rel = os.path.relpath(path, root)
    if not bytecode and (path.suffix in (".pyc", ".pyo") or "__pycache__" in Path(rel).parts):
        return False
    return not any(_under(rel, out) for out in left_out)


def _followed(start: Path) -> list[Path]:
    """Every file under `start`, through links to folders and files elsewhere (a dataset linked
    into data/: what the run reads is its content), each folder once (a link to a folder
    above is not walked again)."""
    found = []
    seen: set[tuple[int, int]] = set()
    for folder, folders, files in os.walk(start, followlinks=True):
        try:
            stat = os.stat(folder)
        except OSError:
            folders[:] = []
            continue
        if (stat.st_dev, stat.st_ino) in seen:
            folders[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        for name in files:
            path = Path(folder, name)
            with contextlib.suppress(OSError):
                if path.is_file():  # a link to nothing is no file
                    found.append(path)
    return found


def _regular(path: Path) -> bool:
    """A regular file, not a link; False for one that cannot be looked at (a folder without
    the x bit), which is said where it is read."""
    try:
        return path.is_file() and not path.is_symlink()
    except OSError:
        return False


def _sha256(
    path: Path,
    stamp: list[int | str],
    earlier: dict[str, list[int | str]],
    seen: dict[str, list[int | str]],
    check: Callable[[], None],
) -> str:
    key = str(path.absolute())
    entry = earlier.get(key)
    if isinstance(entry, list) and len(entry) == 5 and entry[:4] == stamp:
        seen[key] = entry
        return str(entry[4])
    digest = sha256_of(path, check)
    # Kept for next time only if the file stood still while it was read, and had settled
    # before: a write since then is sure to show in its size, mtime or ctime.
    settled = time.time_ns() - max(int(stamp[1]), int(stamp[2])) > _SETTLED_NS
    if settled and _stamp(path) == stamp:
        seen[key] = [*stamp, digest]
    return digest


def _stamp(path: Path) -> list[int | str]:
    found = path.stat()
    return [found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino]


def _load(known: Path) -> dict[str, list[int | str]]:
    try:
        data = json.loads(known.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no cache yet, or a broken one: everything is hashed again
    return data if isinstance(data, dict) else {}


def _save(known: Path, entries: dict[str, list[int | str]]) -> None:
    temp = known.with_name(f".{known.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with contextlib.suppress(OSError):  # a cache that cannot be written costs time, not results
        known.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(json.dumps(entries), encoding="utf-8")
        temp.replace(known)
    with contextlib.suppress(OSError):
        temp.unlink(missing_ok=True)
