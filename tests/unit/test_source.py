"""The code state a record keeps: commit, and whether (and how) the tree differs from it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from toolkit.source import source_state


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_outside_git_and_before_the_first_commit(tmp_path: Path) -> None:
    assert source_state(tmp_path).commit is None
    git(tmp_path, "init", "-q")
    assert source_state(tmp_path).commit is None


def test_commit_then_changes_then_untracked_files(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "train.py").write_text("print(1)\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    clean = source_state(tmp_path / "sub")  # a folder inside the repository
    assert clean.commit == git(tmp_path, "rev-parse", "HEAD")
    assert (clean.dirty, clean.diff_sha256) == (False, None)

    (tmp_path / "sub" / "train.py").write_text("print(2)\n")
    changed = source_state(tmp_path)
    assert changed.dirty and changed.diff_sha256
    (tmp_path / "notes.txt").write_text("x")
    untracked = source_state(tmp_path)
    assert untracked.dirty and untracked.diff_sha256 not in (None, changed.diff_sha256)
