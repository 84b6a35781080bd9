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
    diff_sha256: str | None  # sha256 of the patch (code.diff), when dirty
    # sha256 over every code file's path and git blob id, as the working tree holds it: the
    # same for the same code, committed or not, whatever the commit (a revert, a data commit)
    content_sha256: str | None = None
    files: dict[str, str] | None = None  # path -> blob id (12 hex), up to FILES_KEPT files
    patch: bytes = field(default=b"", repr=False)  # `git diff HEAD --binary`, as git wrote it

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


def ignored(path: Path) -> bool:
    """Whether git ignores `path` (outside a repository, nothing is code: as if ignored)."""
    folder = path.resolve().parent
    if repository_root(folder) is None:
        return True
    return proc.output(["git", "-C", str(folder), "check-ignore", "-q", path.name]) is not None


def source_state(
    root: Path, not_code: Iterable[str] = (), *, written_before: float | None = None
) -> SourceState:
    """Commit, dirty-diff hash and content of the git repository holding the project at `root`.

    The whole repository counts, except what toolkit writes in the project (runs/, .toolkit/),
    Python's bytecode (__pycache__/, *.pyc) and the `not_code` paths under `root` (data and
    outputs, fingerprinted on their own): without a .gitignore, one run's outputs would
    otherwise change the next run's code. git's
    output is read as bytes: file names and changes need not be UTF-8. A new (untracked) file
    last written at `written_before` or later is not code either: the run being recorded wrote
    it (a log), and whether it was there when this is read would depend on timing.
    """
    found = proc.output_bytes(["git", "-C", str(root), "rev-parse", "HEAD", "--show-toplevel"])
    if found is None or len(found.splitlines()) != 2:
        return SourceState(None, False, None)
    commit, top = (os.fsdecode(line) for line in found.splitlines())
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
    pathspecs = [
        "--",
        ":/",
        *(f":(exclude,literal){p}" for p in sorted(skipped)),
        *_NOT_CODE,
    ]
    untracked = [
        name
        for name in _names(
            _git(
                root, "ls-files", "--others", "--exclude-standard", "--full-name", "-z", *pathspecs
            )
        )
        if written_before is None or not _written_since(inside / name, written_before)
    ]
    new_files = [n for n in untracked if (inside / n).is_file() or (inside / n).is_symlink()]
    diff = _patch(root, pathspecs, new_files)
    dirty = bool(diff or untracked)  # a repository inside is in the content, not the patch
    blobs = _blobs(root, pathspecs, inside, untracked)
    content = hashlib.sha256(
        "".join(f"{name}\0{blob}\n" for name, blob in sorted(blobs.items())).encode(
            errors="surrogateescape"
        )
    )
    return SourceState(
        commit.strip(),
        dirty,
        hashlib.sha256(diff).hexdigest() if dirty else None,
        content.hexdigest(),
        {_shown(name): blob[:BLOB_SHOWN] for name, blob in sorted(blobs.items())}
        if len(blobs) <= FILES_KEPT
        else None,
        diff,
    )


# What Python writes beside the code it runs: without a .gitignore, the first run's bytecode
# made the next run's code differ from the first's
_NOT_CODE = (":(top,exclude,glob)**/__pycache__/**", ":(top,exclude,glob)**/*.py[co]")


# `git diff` as `git apply` takes it, whatever the user's settings: relative to the whole
# repository, without colors, external diff tools or text conversion, with a/ and b/ prefixes
_DIFF = (
    "-c",
    "diff.relative=false",
    "diff",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)


def _patch(root: Path, pathspecs: list[str], new_files: list[str]) -> bytes:
    """`git diff HEAD`, new (untracked) files included as git adds them, as `git apply` takes
    it. The new files are marked on a copy of the index (`git add -N`): the user's is untouched."""
    if not new_files:
        return _git(root, *_DIFF, "HEAD", "--binary", *pathspecs)
    import shutil
    import tempfile

    index = Path(os.fsdecode(_git(root, "rev-parse", "--git-path", "index").rstrip(b"\n")))
    with tempfile.TemporaryDirectory(prefix="toolkit-index-") as scratch:
        copy = Path(scratch) / "index"
        if (root / index).is_file():  # none before the first `git add`
            shutil.copyfile(root / index, copy)
        env = {**os.environ, "GIT_INDEX_FILE": str(copy)}
        for start in range(0, len(new_files), 500):  # the names as arguments, a few at a time
            names = [f":(top,literal){name}" for name in new_files[start : start + 500]]
            _git(root, "add", "-N", "--", *names, env=env)
        return _git(root, *_DIFF, "HEAD", "--binary", *pathspecs, env=env)


class GitFailed(Exception):
    """A git query failed: the record then lacks the code rather than holding a wrong one."""


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    found = proc.output_bytes(["git", "-C", str(root), *args], env=env)
    if found is None:
        raise GitFailed(f"`git {' '.join(args[:3])}` failed in {root}")
    return found


def _written_since(path: Path, moment: float) -> bool:
    try:
        return path.lstat().st_mtime >= moment
    except OSError:  # gone already: nothing to count
        return True


def _names(output: bytes) -> list[str]:
    """NUL-separated paths as str (undecodable bytes kept as surrogates), sorted."""
    return sorted(os.fsdecode(name) for name in output.split(b"\0") if name)


def _shown(name: str) -> str:
    """A path as a record shows it: printable whatever its bytes."""
    return os.fsencode(name).decode(errors="backslashreplace")


def _blobs(root: Path, pathspecs: list[str], top: Path, untracked: list[str]) -> dict[str, str]:
    """The git blob id of every code file as the working tree holds it: the index's for a file
    unchanged since it was staged, computed here (no git object written) for one changed since
    and for an untracked one; a file deleted from the working tree is not there. A submodule,
    or a repository inside this one, counts by its own commit and changes."""
    blobs: dict[str, str] = {}
    staged = _git(root, "ls-files", "--stage", "--full-name", "-z", *pathspecs)
    for entry in filter(None, staged.split(b"\0")):
        info, path_bytes = entry.split(b"\t", 1)  # "<mode> <blob> <stage>\t<path>"
        blobs[os.fsdecode(path_bytes)] = info.split()[1].decode()
    changed = _names(_git(root, *_DIFF, "--name-only", "-z", *pathspecs))
    for name in [*changed, *untracked]:
        blobs.pop(name, None)
        path = top / name.rstrip("/")
        found = _blob_id(path) if path.is_symlink() or path.is_file() else _repository(path)
        if found is not None:
            blobs[name.rstrip("/")] = found
    return blobs


def _blob_id(path: Path) -> str:
    """The id git gives a file's content (a symlink's: its target's name), or "unreadable"."""
    try:
        data = os.fsencode(os.readlink(path)) if path.is_symlink() else path.read_bytes()
    except OSError:
        return "unreadable"
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _repository(path: Path) -> str | None:
    """A submodule's or a nested repository's state: its commit and its own changes; None for
    what is neither (a folder git lists that has no repository of its own)."""
    if not (path / ".git").exists():
        return None
    state = source_state(path)
    if state.commit is None:
        return "repository without a commit"
    return hashlib.sha1(
        f"{state.commit}\0{state.content_sha256}".encode(), usedforsecurity=False
    ).hexdigest()
