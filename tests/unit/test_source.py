"""The code state a record keeps: commit, and whether (and how) the tree differs from it."""

from __future__ import annotations

import hashlib
import os
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
    for rel in (
        "runs/20261127-cpu-0001/record.json",
        ".toolkit/config.json",
        "ckpt/model.pt",
        "__pycache__/train.cpython-311.pyc",  # what Python wrote as it imported the code
        "lib/__pycache__/util.cpython-311.pyc",
        "old.pyc",
    ):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text("written by a run\n")
    (project / "data" / "train.csv").write_text("3,4\n")  # data has a fingerprint of its own
    (tmp_path / "lib" / "__pycache__").mkdir(parents=True)  # code beside the project's, imported
    (tmp_path / "lib" / "__pycache__" / "util.cpython-311.pyc").write_bytes(b"\0")
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
    assert first.patch == b""

    (tmp_path / "train.py").write_text("lr = 1e-3\n")  # uncommitted
    edited = source_state(tmp_path, ["data"])
    assert edited.content_sha256 != first.content_sha256
    assert edited.files is not None and edited.files["train.py"] != first.files["train.py"]
    assert edited.files["old.py"] == first.files["old.py"]
    assert b"-lr = 3e-3\n+lr = 1e-3\n" in edited.patch  # what `git apply` takes back

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


def test_names_and_changes_that_are_not_utf8_are_code_like_any_other(tmp_path: Path) -> None:
    """git's output is bytes: a latin-1 file name or change was an error that cost the record
    its code and every fact after it."""
    git(tmp_path, "init", "-q")
    (tmp_path / os.fsdecode(b"caf\xe9.py")).write_bytes(b"x = 1\n")
    (tmp_path / "notes.txt").write_bytes(b"plain\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    clean = source_state(tmp_path)
    assert clean.files is not None and "caf\\xe9.py" in clean.files  # printable in a record
    (tmp_path / "notes.txt").write_bytes(b"caf\xe9\n")
    changed = source_state(tmp_path)
    assert changed.dirty and b"+caf\xe9\n" in changed.patch
    assert changed.content_sha256 != clean.content_sha256


def test_the_kept_patch_applies_whatever_the_users_git_settings(tmp_path: Path) -> None:
    """CRLF line endings kept, and no colors or missing a/ b/ prefixes from a user's config."""
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "color.ui", "always")
    git(tmp_path, "config", "diff.noprefix", "true")
    (tmp_path / "w.py").write_bytes(b"a = 1\r\nb = 2\r\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    (tmp_path / "w.py").write_bytes(b"a = 1\r\nb = 3\r\n")
    patch = source_state(tmp_path).patch
    git(tmp_path, "checkout", "--", "w.py")
    (tmp_path / "change.diff").write_bytes(patch)
    git(tmp_path, "apply", "change.diff")
    assert (tmp_path / "w.py").read_bytes() == b"a = 1\r\nb = 3\r\n"


def test_a_submodule_or_nested_repository_counts_by_its_own_state(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "-q")
    (lib / "f.py").write_text("v = 1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib one")
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q")
    (project / "train.py").write_text("print(1)\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "one")
    git(project, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    git(project, "commit", "-q", "-m", "with lib")
    (project / "vendor").mkdir()
    git(project / "vendor", "init", "-q")  # a repository inside, not a submodule
    (project / "vendor" / "v.py").write_text("w = 1\n")
    git(project / "vendor", "add", "-A")
    git(project / "vendor", "commit", "-q", "-m", "vendor")

    before = source_state(project)
    (project / "lib" / "f.py").write_text("v = 2\n")  # the submodule's code changed
    edited = source_state(project)
    assert edited.content_sha256 != before.content_sha256
    assert edited.files is not None and before.files is not None
    assert edited.files["lib"] != before.files["lib"]
    (project / "lib" / "f.py").write_text("v = 1\n")
    assert source_state(project).content_sha256 == before.content_sha256
    (project / "vendor" / "v.py").write_text("w = 2\n")
    assert source_state(project).files["vendor"] != before.files["vendor"]  # type: ignore[index]


def test_a_symlink_counts_by_its_target_name_as_git_stores_it(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "link.py").symlink_to("a.py")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    committed = source_state(tmp_path)
    (tmp_path / "link.py").unlink()
    (tmp_path / "link.py").symlink_to("a.py")  # the same link again: unchanged
    assert source_state(tmp_path).content_sha256 == committed.content_sha256
    (tmp_path / "link.py").unlink()
    (tmp_path / "link.py").symlink_to("missing-folder")  # to nothing: still there, changed
    retargeted = source_state(tmp_path)
    assert retargeted.files is not None and "link.py" in retargeted.files
    assert retargeted.content_sha256 != committed.content_sha256


def test_the_kept_patch_holds_new_files_too_and_leaves_the_index_alone(tmp_path: Path) -> None:
    """A new module the changed code imports: without it the patch would not rebuild the run's
    code. It is added on a copy of the index; the user's staging area is as it was."""
    git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("LR = 3e-3\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    (tmp_path / "train.py").write_text("from hparams import LR\n")
    (tmp_path / "hparams.py").write_text("LR = 2e-3\n")
    state = source_state(tmp_path)
    assert git(tmp_path, "status", "--porcelain") == "M train.py\n?? hparams.py"  # untouched
    assert state.diff_sha256 == hashlib.sha256(state.patch).hexdigest()  # the file's own hash
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(tmp_path), str(clone)], check=True)
    (clone / "code.diff").write_bytes(state.patch)
    git(clone, "apply", "code.diff")
    assert (clone / "hparams.py").read_text() == "LR = 2e-3\n"
    assert (clone / "train.py").read_text() == "from hparams import LR\n"


def test_a_new_file_written_since_the_run_began_is_not_its_code(tmp_path: Path) -> None:
    """The code is read while the run is under way: a log it writes is not code, however soon
    it appears (before, two runs of the same code could differ in "code")."""
    import time

    git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    (tmp_path / "helper.py").write_text("x = 1\n")  # new code, there before the run
    begun = time.time() + 0.01
    time.sleep(0.02)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "train.log").write_text("step 1\n")  # written by the run
    state = source_state(tmp_path, written_before=begun)
    assert state.files is not None and set(state.files) == {"helper.py", "train.py"}
    assert b"train.log" not in state.patch and b"helper.py" in state.patch
    assert "logs/train.log" in (source_state(tmp_path).files or {})  # without it: counted
