"""What code a build or run used: the git commit, a hash of uncommitted changes, and the
content of every code file, so that the same code is known as such whatever the commit."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import proc
from toolkit.paths import RUNS_DIR, STATE_DIR

FILES_KEPT = 5000  # a repository with more code files keeps only its content hash
BLOB_SHOWN = 12  # characters of each file's git blob id kept in the record


@dataclass(frozen=True)
class SourceState:
    """The project's code as git sees it; `commit` is None outside a git repository."""

    commit: str | None
    dirty: bool
    diff_sha256: str | None  # hash of `git diff HEAD` plus untracked files, when dirty
    # sha256 over every code file's path and git blob id, as the working tree holds it: the
    # same for the same code, committed or not, whatever the commit (a revert, a data commit)
    content_sha256: str | None = None
    files: dict[str, str] | None = None  # path -> blob id (12 hex), up to FILES_KEPT files
    patch: str = field(default="", repr=False)  # `git diff HEAD --binary`: the changes, kept

    def record(self) -> dict[str, object]:
        """What a run record keeps of it (the patch goes beside it, in a file)."""
        return {
            "commit": self.commit,
            "dirty": self.dirty,
            "diff_sha256": self.diff_sha256,
            "content_sha256": self.content_sha256,
            "files": self.files,
        }


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
    new_files = sorted(filter(None, untracked.split("\0")))
    digest = hashlib.sha256(diff.encode())
    for name in new_files:
        digest.update(name.encode() + b"\0")
        path = inside / name
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    dirty = bool(diff or untracked)
    blobs = _blobs(git, pathspecs, inside, new_files)
    content = hashlib.sha256(
        "".join(f"{name}\0{blob}\n" for name, blob in sorted(blobs.items())).encode()
    )
    return SourceState(
        commit.strip(),
        dirty,
        digest.hexdigest() if dirty else None,
        content.hexdigest(),
        {name: blob[:BLOB_SHOWN] for name, blob in sorted(blobs.items())}
        if len(blobs) <= FILES_KEPT
        else None,
        diff,
    )


def _blobs(git: list[str], pathspecs: list[str], top: Path, untracked: list[str]) -> dict[str, str]:
    """The git blob id of every code file as the working tree holds it: the index's for a file
    unchanged since it was staged, hashed by git (no object written) for one changed since and
    for an untracked one; a file deleted from the working tree is not there."""
    staged = proc.output([*git, "ls-files", "--stage", "--full-name", "-z", *pathspecs]) or ""
    blobs: dict[str, str] = {}
    for entry in filter(None, staged.split("\0")):
        info, name = entry.split("\t", 1)  # "<mode> <blob> <stage>\t<path>"
        blobs[name] = info.split()[1]
    changed = proc.output(
        [*git, "-c", "diff.relative=false", "diff", "--name-only", "-z", *pathspecs]
    )
    rehash = []
    for name in [*filter(None, (changed or "").split("\0")), *untracked]:
        blobs.pop(name, None)
        if (top / name).is_file():
            rehash.append(name)
    for start in range(0, len(rehash), 500):  # the names as arguments, a few at a time
        chunk = rehash[start : start + 500]
        hashed = proc.output(["git", "-C", str(top), "hash-object", "--", *chunk])
        if hashed is None:  # unreadable: a hash of what cannot be read says that much
            hashed = "\n".join("unreadable" for _ in chunk)
        blobs.update(zip(chunk, hashed.split(), strict=False))
    return blobs
