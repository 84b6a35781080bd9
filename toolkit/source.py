"""What code a build or run used: the git commit and a hash of uncommitted changes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from toolkit import proc
from toolkit.paths import RUNS_DIR, STATE_DIR


@dataclass(frozen=True)
class SourceState:
    """The project's code as git sees it; `commit` is None outside a git repository."""

    commit: str | None
    dirty: bool
    diff_sha256: str | None  # hash of `git diff HEAD` plus untracked files, when dirty


def repository_root(root: Path) -> Path | None:
    """The top folder of the git repository holding `root` (commits or not), or None."""
    found = proc.output(["git", "-C", str(root), "rev-parse", "--show-toplevel"])
    return Path(found.strip()).resolve() if found else None


def source_state(root: Path, not_code: Iterable[str] = ()) -> SourceState:
    """Commit and dirty-diff hash of the git repository holding the project at `root`.

    The whole repository counts, except what toolkit writes in the project (runs/, .toolkit/)
    and the `not_code` paths under `root` (data and outputs, fingerprinted on their own):
    without a .gitignore, one run's outputs would otherwise change the next run's code.
    """
    found = proc.output(["git", "-C", str(root), "rev-parse", "HEAD", "--show-toplevel"])
    if found is None or len(found.splitlines()) != 2:
        return SourceState(None, False, None)
    commit, top = found.splitlines()
    # Pathspecs, read relative to `root`: the whole tree (`:/`) but the paths left out (git
    # refuses a pathspec outside the repository; such a path holds no code anyway). A symlink
    # to data elsewhere is itself in the repository: it is checked as written, not followed.
    inside = Path(top).resolve()
    skipped = {
        p.strip("/")
        for p in (RUNS_DIR, STATE_DIR, *not_code)
        if Path(os.path.normpath(root.resolve() / p)).is_relative_to(inside)
        and p.strip("/") not in ("", ".")
    }
    pathspecs = ["--", ":/", *(f":(exclude,literal){p}" for p in sorted(skipped))]
    git = ["git", "-C", str(root)]
    # diff.relative (a user's setting) would limit the diff to `root`, whatever `:/` says.
    diff = proc.output([*git, "-c", "diff.relative=false", "diff", "HEAD", "--binary", *pathspecs])
    diff = diff or ""
    untracked = (
        proc.output(
            [*git, "ls-files", "--others", "--exclude-standard", "--full-name", "-z", *pathspecs]
        )
        or ""
    )
    digest = hashlib.sha256(diff.encode())
    for name in sorted(filter(None, untracked.split("\0"))):
        digest.update(name.encode() + b"\0")
        path = inside / name
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    dirty = bool(diff or untracked)
    return SourceState(commit.strip(), dirty, digest.hexdigest() if dirty else None)
