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


def test_what_toolkit_and_the_experiment_write_is_not_code(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")  # no .gitignore: runs/ and outputs show up as untracked
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "train.csv").write_text("1,2\n")
    (project / "train.py").write_text("print(1)\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    for rel in ("runs/20261127-cpu-0001/record.json", ".toolkit/config.json", "ckpt/model.pt"):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text("written by a run\n")
    (project / "data" / "train.csv").write_text("3,4\n")  # data has a fingerprint of its own
    not_code = ("data", "ckpt/", "../../outside-the-repository")
    assert source_state(project, not_code) == source_state(project, not_code)
    assert not source_state(project, not_code).dirty

    (project / "helper.py").write_text("x = 1\n")  # new code, not yet committed
    assert source_state(project, not_code).dirty
    assert source_state(project).dirty  # without not_code, the data and outputs count too


def test_code_outside_the_project_folder_counts_whatever_the_users_git_settings(
    tmp_path: Path,
) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "diff.relative", "true")  # would limit `git diff` to the project
    for folder in ("project", "lib"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    (tmp_path / "lib" / "code.py").write_text("x = 2\n")
    assert source_state(tmp_path / "project").dirty


def test_data_linked_from_elsewhere_is_not_code(tmp_path: Path) -> None:
    repo, disk = tmp_path / "repo", tmp_path / "bigdisk"
    (disk / "dataset").mkdir(parents=True)
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print(1)\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    (repo / "data").symlink_to(disk / "dataset")
    assert not source_state(repo, ["data"]).dirty


def test_the_same_code_is_known_by_its_content_whatever_the_commit(tmp_path: Path) -> None:
    """A revert, a commit of exactly the uncommitted change, and a data-only commit: each is
    the same code under another commit (the content hash); an edit is named by its file."""
    git(tmp_path, "init", "-q")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text("1\n")
    (tmp_path / "train.py").write_text("lr = 3e-3\n")
    (tmp_path / "old.py").write_text("x = 1\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    first = source_state(tmp_path, ["data"])
    assert first.files is not None and set(first.files) == {"old.py", "train.py"}
    assert first.patch == ""

    (tmp_path / "train.py").write_text("lr = 1e-3\n")  # uncommitted
    edited = source_state(tmp_path, ["data"])
    assert edited.content_sha256 != first.content_sha256
    assert edited.files is not None and edited.files["train.py"] != first.files["train.py"]
    assert edited.files["old.py"] == first.files["old.py"]
    assert "-lr = 3e-3\n+lr = 1e-3\n" in edited.patch  # what `git apply` takes back

    git(tmp_path, "commit", "-q", "-am", "lr")  # exactly that change, committed
    committed = source_state(tmp_path, ["data"])
    assert committed.commit != edited.commit and not committed.dirty
    assert (committed.content_sha256, committed.files) == (edited.content_sha256, edited.files)

    git(tmp_path, "revert", "--no-edit", "HEAD")
    assert source_state(tmp_path, ["data"]).content_sha256 == first.content_sha256

    (tmp_path / "data" / "rows.csv").write_text("2\n")
    git(tmp_path, "commit", "-q", "-am", "data only")
    assert source_state(tmp_path, ["data"]).content_sha256 == first.content_sha256

    (tmp_path / "old.py").unlink()
    (tmp_path / "new.py").write_text("y = 2\n")  # untracked
    moved = source_state(tmp_path, ["data"])
    assert moved.files is not None and set(moved.files) == {"new.py", "train.py"}
    git(tmp_path, "add", "-A")  # staged, not committed: the same content
    assert source_state(tmp_path, ["data"]).content_sha256 == moved.content_sha256
