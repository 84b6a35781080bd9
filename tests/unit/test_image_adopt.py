"""`toolkit image export|import|pull`: what is checked before the engine, and what an imported
image is to this project, against a fake engine (the real one: tests/integration)."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from toolkit import bundle, engine, image
from toolkit.config import Config, load_config
from toolkit.errors import UserError


def make_project(root: Path, name: str, lock: str = "tinyalpha==1.0\n") -> Config:
    root.mkdir(parents=True, exist_ok=True)
    (root / "toolkit.yaml").write_text(f"name: {name}\ntargets: {{cpu: {{}}, gpu: {{}}}}\n")
    (root / "lockfiles").mkdir(exist_ok=True)
    (root / "lockfiles" / "cpu.txt").write_text(lock)
    return load_config(root / "toolkit.yaml")


def content_hash(cfg: Config, target: str = "cpu") -> str:
    return image.plan(cfg, cfg.targets[target]).content_hash


def untouched(*_: Any, **__: Any) -> Any:
    raise AssertionError("the engine was asked before the input was checked")


@dataclass
class FakeEngine:
    """The engine calls that importing makes: one loaded image, and the tags put on it."""

    loaded: engine.ImageInfo
    tagged: list[tuple[str, str]] = field(default_factory=list)

    def image(self, ref: str) -> engine.ImageInfo | None:
        return self.loaded if ref == self.loaded.id else None

    def tag(self, image_id: str, ref: str) -> None:
        self.tagged.append((image_id, ref))


def loaded_image(project: str, target: str, chash: str) -> engine.ImageInfo:
    labels = {
        "io.toolkit.project": project,
        "io.toolkit.target": target,
        "io.toolkit.content-hash": chash,
    }
    return engine.ImageInfo("sha256:feed", (), labels, 6, "2024-05-01T12:00:00Z")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(loaded: engine.ImageInfo) -> FakeEngine:
        found = FakeEngine(loaded)
        monkeypatch.setattr(engine, "image", found.image)
        monkeypatch.setattr(engine, "tag", found.tag)
        return found

    return install


@pytest.mark.parametrize(
    ("dest", "message"),
    [
        ("somefolder", "somefolder is a folder, not a file"),
        ("nope/x.tar.gz", "folder {root}/nope does not exist"),
    ],
)
def test_export_checks_the_destination_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dest: str, message: str
) -> None:
    cfg = make_project(tmp_path, "demo")
    (tmp_path / "somefolder").mkdir()
    monkeypatch.setattr(image, "current_image", untouched)
    with pytest.raises(UserError) as caught:
        image.export_image(cfg, cfg.targets["cpu"], tmp_path / dest)
    assert message.format(root=tmp_path) in caught.value.message
    assert caught.value.hint


def test_another_projects_image_from_the_same_inputs_is_tagged_for_this_project(
    tmp_path: Path, fake: Any
) -> None:
    ours = make_project(tmp_path / "huntcarol", "huntcarol")
    chash = content_hash(make_project(tmp_path / "example", "example"))
    assert chash == content_hash(ours)  # the project's name is no input of the image
    engine_ = fake(loaded_image("example", "cpu", chash))

    imported = image._adopt(ours, "sha256:feed", "example-cpu.tar.gz")
    assert imported.ref == f"huntcarol-cpu:{chash}"  # the tag `toolkit run` looks for
    assert engine_.tagged == [("sha256:feed", f"huntcarol-cpu:{chash}")]
    assert imported.current and imported.project == "example"
    assert imported.state == "built by project example from the same inputs: current for this " + (
        "project"
    )


def test_another_projects_image_from_other_inputs_is_said_to_be_theirs(
    tmp_path: Path, fake: Any
) -> None:
    ours = make_project(tmp_path / "huntcarol", "huntcarol", lock="tinyalpha==2.0\n")
    chash = content_hash(make_project(tmp_path / "example", "example"))
    engine_ = fake(loaded_image("example", "cpu", chash))

    imported = image._adopt(ours, "sha256:feed", "example-cpu.tar.gz")
    assert engine_.tagged == [("sha256:feed", f"example-cpu:{chash}")]
    assert not imported.current
    assert imported.state == "an image of project example, not of this project (huntcarol)"


@pytest.mark.parametrize(
    ("target", "chash", "state"),
    [
        ("tpu", "0" * 20, "target tpu is not in toolkit.yaml (cpu, gpu)"),
        ("gpu", "0" * 20, "not checked against this project: no lockfile for target gpu"),
        (
            "cpu",
            "0" * 20,
            "stale: not built from this project's current lockfile, base and toolkit version",
        ),
        ("cpu", None, "current for this project"),
    ],
)
def test_what_an_image_of_this_project_is_to_it(
    tmp_path: Path, fake: Any, target: str, chash: str | None, state: str
) -> None:
    cfg = make_project(tmp_path, "demo")
    chash = chash or content_hash(cfg)
    fake(loaded_image("demo", target, chash))
    imported = image._adopt(cfg, "sha256:feed", "demo.tar.gz")
    assert imported.ref == f"demo-{target}:{chash}"
    assert imported.state.startswith(state)
    assert imported.current == (state == "current for this project")


def test_an_image_imported_outside_a_project_is_not_checked(fake: Any) -> None:
    fake(loaded_image("example", "cpu", "0" * 20))
    imported = image._adopt(None, "sha256:feed", "example-cpu.tar.gz")
    assert imported.ref == f"example-cpu:{'0' * 20}"
    assert imported.state == "not checked against a project (no toolkit.yaml here)"


def test_images_lists_another_projects_image_tagged_for_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_project(tmp_path, "huntcarol")
    chash = content_hash(cfg)
    adopted = engine.ImageInfo(
        "sha256:feed",
        (f"huntcarol-cpu:{chash}",),
        loaded_image("example", "cpu", chash).labels,
        6,
        "2024-05-01T12:00:00Z",
    )
    theirs = engine.ImageInfo(
        "sha256:beef",
        (f"example-cpu:{'1' * 20}",),
        loaded_image("example", "cpu", "1" * 20).labels,
        6,
        "2024-05-02T12:00:00Z",
    )
    monkeypatch.setattr(engine, "images", lambda label: [adopted, theirs])
    listed = image.project_images(cfg)
    assert [(i.ref, i.current) for i in listed] == [(f"huntcarol-cpu:{chash}", True)]


def test_importing_a_folder_says_it_is_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "all_images", untouched)
    monkeypatch.setattr(engine, "load", untouched)
    with pytest.raises(UserError) as caught:
        image.import_image(None, tmp_path)
    assert caught.value.message == f"{tmp_path} is a folder, not an image archive"


def test_importing_a_run_bundle_points_to_runs_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "RUNS.tar.gz"
    with tarfile.open(runs, "w:gz") as archive:  # what `toolkit runs export` writes first
        folder = tarfile.TarInfo(f"{bundle.TOP}/20240501-120000-abcd")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        record = tarfile.TarInfo(f"{bundle.TOP}/20240501-120000-abcd/record.json")
        record.size = 2
        archive.addfile(record, io.BytesIO(b"{}"))
    monkeypatch.setattr(engine, "all_images", untouched)
    monkeypatch.setattr(engine, "load", untouched)
    with pytest.raises(UserError) as caught:
        image.import_image(None, runs)
    assert caught.value.message == f"{runs} is a run bundle (toolkit runs export), not an " + (
        "image archive"
    )
    assert caught.value.hint == f"use `toolkit runs import {runs}`"


@pytest.mark.parametrize("digest", ["sha256:abc", "sha256:" + "G" * 64, "sha256:" + "a" * 65])
def test_pull_of_an_invalid_digest_says_the_digest_is_invalid(
    monkeypatch: pytest.MonkeyPatch, digest: str
) -> None:
    monkeypatch.setattr(engine, "all_images", untouched)
    monkeypatch.setattr(engine, "pull", untouched)
    with pytest.raises(UserError) as caught:
        image.pull_image(None, f"reg:5000/team/x@{digest}")
    assert caught.value.message == (
        f"reg:5000/team/x@{digest}: invalid digest {digest} (sha256: and 64 hex digits)"
    )
