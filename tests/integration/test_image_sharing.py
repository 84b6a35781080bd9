"""`toolkit image import|push` against the real engine, with images of a few bytes.

The images are made from a one-file root filesystem carrying the labels toolkit reads, and
tagged with a project's content tag: no base, no build, no registry.
"""

from __future__ import annotations

import gzip
import io
import secrets
import socket
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import toolkit
from toolkit import engine, image
from toolkit.config import load_config

pytestmark = pytest.mark.docker

MakeImage = Callable[..., engine.ImageInfo]


@pytest.fixture
def make_image(tmp_path: Path) -> Iterator[MakeImage]:
    """Make a tiny image tagged `ref` with these labels; every image made is removed after."""
    made: list[str] = []

    def make(ref: str, labels: dict[str, str], content: str = "") -> engine.ImageInfo:
        rootfs = tmp_path / f"rootfs-{len(made)}.tar"
        data = (content or secrets.token_hex(8)).encode()  # its own bytes: its own image id
        with tarfile.open(rootfs, "w") as archive:
            info = tarfile.TarInfo("hello.txt")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        changes = [f'LABEL {key}="{value}"' for key, value in labels.items()]
        repository, _, tag = ref.rpartition(":")
        found = engine.import_rootfs(rootfs, repository, tag, changes)
        made.append(found.id)
        return found

    yield make
    for image_id in made:
        engine.remove_image(image_id)


def project(root: Path, name: str) -> Path:
    """A project with target cpu and a lockfile (never used to build: the image is made)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "toolkit.yaml").write_text(f"name: {name}\ntargets: {{cpu: {{}}}}\n")
    (root / "lockfiles").mkdir(exist_ok=True)
    (root / "lockfiles" / "cpu.txt").write_text("tinyalpha==1.0\n")
    return root


def content_image(root: Path, make_image: MakeImage) -> engine.ImageInfo:
    """An image tagged as the project's current image of target cpu, labelled as toolkit does."""
    cfg = load_config(root / "toolkit.yaml")
    plan = image.plan(cfg, cfg.targets["cpu"])
    labels = {
        "io.toolkit.project": cfg.name,
        "io.toolkit.target": "cpu",
        "io.toolkit.content-hash": plan.content_hash,
    }
    return make_image(plan.ref, labels)


def save(image_ref: str, dest: Path, named: bool = False) -> Path:
    """`docker save | gzip` of an image (with its tag in the archive when `named`)."""
    with gzip.open(dest, "wb") as out:
        for chunk in engine.client().images.get(image_ref).save(named=named):
            out.write(chunk)
    return dest


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_another_projects_image_from_the_same_inputs_is_tagged_for_this_project(
    tmp_path: Path, make_image: MakeImage
) -> None:
    suffix = secrets.token_hex(3)
    theirs = project(tmp_path / "theirs", f"tk-share-theirs-{suffix}")
    ours = project(tmp_path / "ours", f"tk-share-ours-{suffix}")  # the same lockfile
    made = content_image(theirs, make_image)
    archive = tmp_path / "theirs-cpu.tar.gz"
    exported = toolkit("image", "export", str(archive), cwd=theirs)
    assert exported.returncode == 0, exported.stderr
    engine.remove_image(made.id)

    imported = toolkit("image", "import", str(archive), cwd=ours)
    assert imported.returncode == 0, imported.stderr
    cfg = load_config(ours / "toolkit.yaml")
    ref, found = image.current_image(cfg, cfg.targets["cpu"])  # what `toolkit run` looks up
    assert ref.startswith(f"tk-share-ours-{suffix}-cpu:")
    assert found.id == made.id
    assert ref in imported.stdout
    listed = toolkit("images", cwd=ours)
    assert ref in listed.stdout and "current" in listed.stdout


def test_an_image_of_another_project_and_other_inputs_is_said_to_be_so(
    tmp_path: Path, make_image: MakeImage
) -> None:
    suffix = secrets.token_hex(3)
    theirs = project(tmp_path / "theirs", f"tk-share-theirs-{suffix}")
    ours = project(tmp_path / "ours", f"tk-share-ours-{suffix}")
    (ours / "lockfiles" / "cpu.txt").write_text("tinyalpha==2.0\n")
    made = content_image(theirs, make_image)
    archive = save(made.id, tmp_path / "theirs-cpu.tar.gz")
    engine.remove_image(made.id)

    cfg = load_config(ours / "toolkit.yaml")
    imported = image.import_image(cfg, archive)
    assert imported.ref == made.tags[0]  # its own project's tag: not this project's image
    assert not imported.current
    assert imported.state == f"an image of project tk-share-theirs-{suffix}, not of this " + (
        f"project (tk-share-ours-{suffix})"
    )


def test_a_refused_import_leaves_no_image_behind(tmp_path: Path, make_image: MakeImage) -> None:
    foreign = make_image(f"tk-share-foreign-{secrets.token_hex(3)}:1", {"maintainer": "someone"})
    archive = save(foreign.id, tmp_path / "foreign.tar.gz")
    engine.remove_image(foreign.id)

    refused = toolkit("image", "import", str(archive), cwd=tmp_path)
    assert refused.returncode == 1
    assert "toolkit did not build it" in refused.stderr
    assert engine.image(foreign.id) is None


def test_a_refused_import_keeps_an_image_the_engine_had(
    tmp_path: Path, make_image: MakeImage
) -> None:
    ref = f"tk-share-foreign-{secrets.token_hex(3)}:1"
    foreign = make_image(ref, {"maintainer": "someone"})
    archive = save(foreign.id, tmp_path / "foreign.tar.gz")

    refused = toolkit("image", "import", str(archive), cwd=tmp_path)
    assert refused.returncode == 1
    kept = engine.image(foreign.id)
    assert kept is not None and kept.tags == (ref,)


def test_a_refused_import_gives_back_the_tag_its_archive_took(
    tmp_path: Path, make_image: MakeImage
) -> None:
    ref = f"tk-share-foreign-{secrets.token_hex(3)}:1"
    foreign = make_image(ref, {"maintainer": "someone"})
    archive = save(ref, tmp_path / "foreign.tar.gz", named=True)  # loading it tags `ref`
    engine.remove_image(foreign.id)
    users = make_image(ref, {"maintainer": "the user"})

    refused = toolkit("image", "import", str(archive), cwd=tmp_path)
    assert refused.returncode == 1
    assert engine.image(foreign.id) is None
    found = engine.image(ref)
    assert found is not None and found.id == users.id


def test_push_to_an_invalid_repository_name_is_a_user_error(
    tmp_path: Path, make_image: MakeImage
) -> None:
    root = project(tmp_path, f"tk-share-{secrets.token_hex(3)}")
    content_image(root, make_image)
    pushed = toolkit("image", "push", "HUNT/Upper", cwd=root)
    assert pushed.returncode == 1, pushed.stderr
    assert "push to HUNT/Upper:" in pushed.stderr and "must be lowercase" in pushed.stderr
    assert "[REGISTRY[:PORT]/]PATH, in lowercase" in pushed.stderr
    assert "internal error" not in pushed.stderr


def test_a_failed_push_takes_its_tag_away(tmp_path: Path, make_image: MakeImage) -> None:
    root = project(tmp_path, f"tk-share-{secrets.token_hex(3)}")
    made = content_image(root, make_image)
    repository = f"127.0.0.1:{unused_port()}/team/{secrets.token_hex(3)}"
    pushed = toolkit("image", "push", repository, cwd=root)
    assert pushed.returncode == 1
    assert f"push to {repository}:" in pushed.stderr
    assert engine.image(f"{repository}:{made.tags[0].rpartition(':')[2]}") is None
    after = engine.image(made.id)
    assert after is not None and after.tags == made.tags


def test_a_failed_push_keeps_a_tag_that_was_there(tmp_path: Path, make_image: MakeImage) -> None:
    root = project(tmp_path, f"tk-share-{secrets.token_hex(3)}")
    made = content_image(root, make_image)
    repository = f"127.0.0.1:{unused_port()}/team/{secrets.token_hex(3)}"
    ref = f"{repository}:{made.tags[0].rpartition(':')[2]}"
    engine.tag(made.id, ref)  # pushed there before, say
    assert toolkit("image", "push", repository, cwd=root).returncode == 1
    found = engine.image(ref)
    assert found is not None and found.id == made.id
