"""Data fingerprints: a hash per file; an earlier hash is reused only for an unchanged file."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from toolkit import fingerprint as module
from toolkit.fingerprint import fingerprint

AN_HOUR_AGO = time.time() - 3600


@pytest.fixture()
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled at once (the tests cannot age a file's ctime by 2 s)."""
    monkeypatch.setattr(module, "_SETTLED_NS", 0)


def dataset(root: Path) -> None:
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "train.csv").write_text("1,2\n")
    (root / "data" / "images" / "a.bin").write_bytes(b"\x00" * 10)
    for path in (root / "data").rglob("*"):
        os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))


def test_every_file_hashed_relative_to_the_root_and_missing_paths_named(tmp_path: Path) -> None:
    dataset(tmp_path)
    found = fingerprint(tmp_path, ["data", "labels.csv"])
    assert found.files == {
        "data/images/a.bin": hashlib.sha256(b"\x00" * 10).hexdigest(),
        "data/train.csv": hashlib.sha256(b"1,2\n").hexdigest(),
    }
    assert found.missing == ("labels.csv",)
    (tmp_path / "data" / "train.csv").write_text("3,4\n")
    assert fingerprint(tmp_path, ["data"]).digest != found.digest


@pytest.mark.usefixtures("settled")
def test_a_known_hash_is_reused_only_while_the_file_is_unchanged(tmp_path: Path) -> None:
    dataset(tmp_path)
    known = tmp_path / ".toolkit" / "data-hashes.json"
    first = fingerprint(tmp_path, ["data"], known=known)
    # Proof that a known hash is used and the file not read again: a planted value comes back.
    entries = json.loads(known.read_text())
    train = next(key for key in entries if key.endswith("train.csv"))
    entries[train][4] = "planted"
    known.write_text(json.dumps(entries))
    assert fingerprint(tmp_path, ["data"], known=known).files["data/train.csv"] == "planted"

    (tmp_path / "data" / "train.csv").write_text("5,6\n")  # same size, new content
    os.utime(tmp_path / "data" / "train.csv", (AN_HOUR_AGO, AN_HOUR_AGO))  # even with its old mtime
    again = fingerprint(tmp_path, ["data"], known=known)
    assert again.files["data/train.csv"] == hashlib.sha256(b"5,6\n").hexdigest()
    assert again.files["data/images/a.bin"] == first.files["data/images/a.bin"]


def test_a_file_changed_just_now_is_hashed_again_next_time(tmp_path: Path) -> None:
    (tmp_path / "fresh.csv").write_text("1\n")
    # An old mtime (as `cp -p` or `rsync -t` leave) does not make the file settled: its ctime
    # is new, and a rewrite within the clock's step could keep every stamp the same.
    os.utime(tmp_path / "fresh.csv", (AN_HOUR_AGO, AN_HOUR_AGO))
    known = tmp_path / "known.json"
    fingerprint(tmp_path, ["fresh.csv"], known=known)
    assert not known.exists() or json.loads(known.read_text()) == {}


@pytest.mark.usefixtures("settled")
def test_a_broken_cache_costs_time_not_results(tmp_path: Path) -> None:
    dataset(tmp_path)
    known = tmp_path / "known.json"
    expected = fingerprint(tmp_path, ["data"]).files
    for broken in ("{not json", "[1, 2]", json.dumps({str(tmp_path / "data" / "train.csv"): [1]})):
        known.write_text(broken)
        assert fingerprint(tmp_path, ["data"], known=known).files == expected


@pytest.mark.usefixtures("settled")
def test_a_cache_that_cannot_be_written_costs_time_not_results(tmp_path: Path) -> None:
    dataset(tmp_path)
    (tmp_path / "not-a-folder").write_text("")
    known = tmp_path / "not-a-folder" / "known.json"
    assert (
        fingerprint(tmp_path, ["data"], known=known).files == fingerprint(tmp_path, ["data"]).files
    )


def test_the_files_a_run_changed_made_or_removed_after_they_were_hashed_are_named(
    tmp_path: Path,
) -> None:
    dataset(tmp_path)
    (tmp_path / "data" / "old.txt").write_text("x")
    before = fingerprint(tmp_path, ["data/"])
    assert module.changed(tmp_path, ["data/"], before) == []  # looked at again: as it was
    with (tmp_path / "data" / "train.csv").open("a") as csv:  # same mtime second, longer
        csv.write("3,4\n")
    (tmp_path / "data" / "images" / "cache.npy").write_bytes(b"1")
    (tmp_path / "data" / "old.txt").unlink()
    assert module.changed(tmp_path, ["data/"], before) == [
        "data/images/cache.npy",
        "data/old.txt",
        "data/train.csv",
    ]


def test_what_a_data_path_holds_that_is_no_data_is_left_out(tmp_path: Path) -> None:
    """`data: [.]` at the project's root held the runs, the declared outputs and .git: each
    run's data differed from the last, and each run said it had changed its data."""
    from toolkit.config import ExperimentConfig, MetricsConfig

    for name in ("train.csv", "out/model.pt", "m.jsonl", "runs/r1/record.json", ".git/HEAD"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    exp = ExperimentConfig(
        command="x", data=(".",), outputs=("out/",), metrics=MetricsConfig(file="m.jsonl")
    )
    skip = exp.not_data()
    found = fingerprint(tmp_path, exp.data, skip=skip)
    assert list(found.files) == ["train.csv"]
    (tmp_path / "__pycache__").mkdir()  # what Python wrote as it imported a module here
    (tmp_path / "__pycache__" / "helper.cpython-311.pyc").write_bytes(b"\0")
    assert list(fingerprint(tmp_path, exp.data, skip=skip, data=True).files) == ["train.csv"]
    no_skip = fingerprint(tmp_path, ["__pycache__"], data=True)  # whatever else is left out
    assert list(no_skip.files) == []
    (tmp_path / "runs" / "r2").mkdir()
    (tmp_path / "runs" / "r2" / "stdout.log").write_text("new")
    (tmp_path / "out" / "model.pt").write_text("rewritten")
    assert module.changed(tmp_path, exp.data, found, skip) == []


def test_a_file_that_cannot_be_looked_at_is_left_out_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder the run made without its x bit (mkdir(mode=0o644)): looking at its files
    raised PermissionError when the run ended, and the run lost its record."""
    dataset(tmp_path)
    before = fingerprint(tmp_path, ["data/"])
    (tmp_path / "data" / "cache").mkdir()
    (tmp_path / "data" / "cache" / "x").write_text("1")
    real = Path.is_file

    def is_file(path: Path) -> bool:
        if path.parent.name == "cache":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    assert module.changed(tmp_path, ["data/"], before) == []


def test_a_file_whose_ctime_alone_changed_is_read_to_tell(tmp_path: Path) -> None:
    """A chmod, or a hard link made to a data file, changes its ctime, not its content."""
    dataset(tmp_path)
    before = fingerprint(tmp_path, ["data/"])
    (tmp_path / "data" / "train.csv").chmod(0o444)
    os.link(tmp_path / "data" / "images" / "a.bin", tmp_path / "a-link.bin")
    assert module.changed(tmp_path, ["data/"], before) == []
    mtime = (tmp_path / "data" / "train.csv").stat().st_mtime_ns
    (tmp_path / "data" / "train.csv").chmod(0o644)
    (tmp_path / "data" / "train.csv").write_text("9,9\n")  # same size: content only
    os.utime(tmp_path / "data" / "train.csv", ns=(mtime, mtime))
    assert module.changed(tmp_path, ["data/"], before) == ["data/train.csv"]


def test_data_inside_a_declared_output_is_data_still(tmp_path: Path) -> None:
    """A pretrained checkpoint read from the outputs' folder: left out of the fingerprint
    when the outputs were, and the record held no trace of what the run read."""
    from toolkit.config import ExperimentConfig

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "pretrained.pt").write_text("w")
    (tmp_path / "checkpoints" / "finetuned.pt").write_text("w")
    exp = ExperimentConfig(
        command="x", data=("checkpoints/pretrained.pt",), outputs=("checkpoints/",)
    )
    found = fingerprint(tmp_path, exp.data, skip=exp.not_data())
    assert list(found.files) == ["checkpoints/pretrained.pt"]


def test_data_linked_in_from_elsewhere_is_read_through_its_links(tmp_path: Path) -> None:
    """`data/imagenet -> /mnt/imagenet`: a folder linked into data/ was not walked, and its
    files were in no fingerprint: a change to them went unseen."""
    (tmp_path / "mnt" / "imagenet").mkdir(parents=True)
    (tmp_path / "mnt" / "imagenet" / "a.jpg").write_bytes(b"a")
    (tmp_path / "mnt" / "labels.csv").write_text("1\n")
    data = tmp_path / "p" / "data"
    data.mkdir(parents=True)
    (data / "imagenet").symlink_to(tmp_path / "mnt" / "imagenet")
    (data / "labels.csv").symlink_to(tmp_path / "mnt" / "labels.csv")
    (data / "again").symlink_to(data)  # a link to a folder above: walked once
    (data / "gone.csv").symlink_to(tmp_path / "nowhere.csv")
    found = fingerprint(tmp_path / "p", ["data/"], data=True)
    assert sorted(found.files) == ["data/imagenet/a.jpg", "data/labels.csv"]
    (tmp_path / "mnt" / "imagenet" / "a.jpg").write_bytes(b"b")
    assert module.changed(tmp_path / "p", ["data/"], found) == ["data/imagenet/a.jpg"]
