"""What code a build or run used: the git commit and a hash of uncommitted changes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from toolkit import proc


@dataclass(frozen=True)
class SourceState:
    """The project's code as git sees it; `commit` is None outside a git repository."""

    commit: str | None
    dirty: bool
    diff_sha256: str | None  # hash of `git diff HEAD` plus untracked files, when dirty


def source_state(root: Path) -> SourceState:
    """Commit and dirty-diff hash of the git repository holding `root`."""
    found = proc.output(["git", "-C", str(root), "rev-parse", "HEAD", "--show-toplevel"])
    if found is None or len(found.splitlines()) != 2:
        return SourceState(None, False, None)
    commit, top = found.splitlines()
    root = Path(top)
    diff = proc.output(["git", "-C", str(root), "diff", "HEAD", "--binary"]) or ""
    untracked = (
        proc.output(["git", "-C", str(root), "ls-files", "--others", "--exclude-standard", "-z"])
        or ""
    )
    digest = hashlib.sha256(diff.encode())
    for name in sorted(filter(None, untracked.split("\0"))):
        digest.update(name.encode() + b"\0")
        path = root / name
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    dirty = bool(diff or untracked)
    return SourceState(commit.strip(), dirty, digest.hexdigest() if dirty else None)
