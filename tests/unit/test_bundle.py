"""Run bundles across machines: export, import, validation, and refusing unsafe archives."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.support import REFERENCE, reference_run, toolkit
from toolkit.bundle import export_runs, import_runs, open_bundle
from toolkit.errors import UserError

needs_reference = pytest.mark.skipif(
    not (REFERENCE / "README.md").is_file(), reason=f"no reference runs at {REFERENCE}"
)


@needs_reference
def test_export_then_import_round_trip(tmp_path: Path) -> None:
    runs = [reference_run(n, tmp_path / "src") for n in ("cpu-threads16-run1", "cpu-threads4-run1")]
    bundle = tmp_path / "runs.tar.gz"
    export_runs(runs, bundle)
    dest = tmp_path / "elsewhere" / "runs"
    first = import_runs(bundle, dest)
    assert first.added == ("cpu-threads16-run1", "cpu-threads4-run1") and first.skipped == ()
    assert (dest / "cpu-threads4-run1" / "outputs" / "weights.npz").read_bytes() == (
        runs[1] / "outputs" / "weights.npz"
    ).read_bytes()
    again = import_runs(bundle, dest)  # never overwritten
    assert again.added == () and again.skipped == first.added


@needs_reference
@pytest.mark.parametrize("name", ["b.tar.gz", "b.tar"])  # a bundle, whatever its file name
def test_diff_reads_a_bundle_directly(tmp_path: Path, name: str) -> None:
    a = reference_run("gpu-deterministic-run1", tmp_path)
    export_runs([reference_run("gpu-deterministic-run2", tmp_path)], tmp_path / name)
    result = toolkit("diff", str(a), str(tmp_path / name), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("identical")


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"toolkit-runs/../../escape.txt": b"x"}, "unsafe path"),
        ({"toolkit-runs/manifest.json": b"{}", "/etc/evil": b"x"}, "unsafe path"),
        ({"toolkit-runs/manifest.json": b"{}", "elsewhere/file": b"x"}, "unsafe path"),
        ({"elsewhere/file": b"x"}, "not a run bundle (no toolkit-runs/ in it)"),
        ({"manifest.json": b"[]", "repositories": b"{}"}, "is an image archive"),
        ({"toolkit-runs/run/record.json": b"{}"}, "no manifest"),
        (
            {
                "toolkit-runs/manifest.json": json.dumps(
                    {"schema": "toolkit.bundle/1", "runs": ["r"]}
                ).encode(),
                "toolkit-runs/r/record.json": b'{"schema": "something-else"}',
            },
            "not a toolkit run record",
        ),
    ],
)
def test_unsafe_or_invalid_bundles_are_refused(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    bundle = _archive(tmp_path / "bad.tar.gz", members)
    with pytest.raises(UserError) as info:
        open_bundle(bundle, tmp_path / "scratch")
    assert message in info.value.message
    assert not (tmp_path / "escape.txt").exists()


def test_a_link_in_a_bundle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "link.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("toolkit-runs/r/record.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        archive.addfile(info)
    with pytest.raises(UserError) as raised:
        open_bundle(path, tmp_path / "scratch")
    assert "is a link or device" in raised.value.message


def test_not_a_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file")
    with pytest.raises(UserError) as info:
        open_bundle(junk, tmp_path / "scratch")
    assert "not a run bundle" in info.value.message


@needs_reference
def test_a_truncated_bundle_is_said_to_be_damaged(tmp_path: Path) -> None:
    bundle = tmp_path / "runs.tar.gz"
    export_runs([reference_run("cpu-threads16-run1", tmp_path / "src")], bundle)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    with pytest.raises(UserError, match=r"damaged bundle \(it ends early: truncated in transfer"):
        open_bundle(cut, tmp_path / "scratch")
    # not "Aborted." with exit 1, which diff and repro-check use for "diverged"
    result = toolkit("diff", str(cut), str(bundle), cwd=tmp_path)
    assert result.returncode == 2 and "damaged bundle" in result.stderr, result.stderr


@needs_reference
def test_export_writes_each_run_once_and_leaves_nothing_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = reference_run("cpu-threads16-run1", tmp_path / "src")
    assert export_runs([run, run], tmp_path / "twice.tar.gz") == 1
    with pytest.raises(UserError, match="does not exist"):
        export_runs([run], tmp_path / "nowhere" / "r.tar.gz")
    with pytest.raises(UserError, match="is a folder"):
        export_runs([run], tmp_path)

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "add", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        export_runs([run], tmp_path / "stopped.tar.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "twice.tar.gz"]


@needs_reference
def test_an_import_cut_short_leaves_no_half_run_and_is_repaired_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "runs.tar.gz"
    export_runs([reference_run("cpu-threads16-run1", tmp_path / "src")], bundle)
    dest = tmp_path / "runs"
    copy = shutil.copyfile
    copied = []

    def copy_then_ctrl_c(source: str, target: str, **kwargs: bool) -> object:
        if len(copied) == 2:  # Ctrl-C half-way through the run's files
            raise KeyboardInterrupt
        copied.append(source)
        return copy(source, target, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copy_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        import_runs(bundle, dest)
    assert len(copied) == 2 and list(dest.iterdir()) == []
    monkeypatch.setattr(shutil, "copyfile", copy)
    (dest / "cpu-threads16-run1").mkdir()  # what an older toolkit's interrupted import left
    assert import_runs(bundle, dest).added == ("cpu-threads16-run1",)
    assert (dest / "cpu-threads16-run1" / "record.json").is_file()
    assert [p.name for p in dest.iterdir()] == ["cpu-threads16-run1"]
