"""Where toolkit keeps its own files inside a project."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

STATE_DIR = ".toolkit"  # logs, wheelhouse, caches: never committed
RUNS_DIR = "runs"  # one folder per run: record, logs, outputs
OUTPUTS = "outputs"  # in a run folder: what the experiment wrote (its declared outputs)
RUN_BUNDLE_TOP = "toolkit-runs"  # the folder a run bundle (`toolkit runs export`) holds


def logs_dir(root: Path) -> Path:
    """Folder for full logs of pip-tools, debootstrap and image builds."""
    path = root / STATE_DIR / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_destination(path: Path, example: str, *, replace: bool = True) -> None:
    """A file toolkit was asked to write, checked before any work: not a folder, in a folder
    that exists, and, unless `replace`, not there yet (an export named after a source file
    replaced it). `example` names a file for the hint ("report.html")."""
    from toolkit.errors import UserError

    if not replace and (path.exists() or path.is_symlink()) and not path.is_dir():
        raise UserError(
            f"{path} exists: not replaced",
            hint="name a new file, or add --force to replace it",
        )
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a file", hint=f"name a file: {path / example}")
    if not path.parent.is_dir():
        raise UserError(
            f"{path}: folder {path.parent} does not exist",
            hint=f"create it first (mkdir -p {path.parent}), or name a file in another folder",
        )


@contextmanager
def written_whole(dest: Path) -> Iterator[Path]:
    """A file to write `dest` into: it becomes `dest` once the block ends, and is removed if the
    block fails or Ctrl-C stops it, so no half-written file is left beside the destination."""
    partial = dest.with_name(dest.name + ".partial")
    try:
        yield partial
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)


def hold(lock: IO[str], holder: str) -> None:
    """Lock an open file of toolkit's for this process (flock, which the system lets go of when
    every process holding the file has ended, killed or not), and write in it who holds it.
    BlockingIOError: another holds it; another OSError: the file system has no locks."""
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lock.seek(0)
    lock.truncate()
    lock.write(holder)
    lock.flush()


def let_go(lock: IO[str] | None) -> None:
    """Unlock and close a file `hold` locked, for every process holding it: a program the run
    started that left its process group (a daemon) has it too, and would hold it for good."""
    if lock is not None:
        import fcntl

        with suppress(OSError):
            fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def held_by_another(lock: IO[str]) -> bool | None:
    """Whether another process holds a file `hold` locked; None where the file system has no
    locks. (The shared lock taken to ask goes with the file.)"""
    import fcntl

    try:
        fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    return False
