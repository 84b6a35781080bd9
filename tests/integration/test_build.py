"""`toolkit build` and image sharing against the real engine, with a tiny offline lockfile."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import docker_required, make_wheel, toolkit
from toolkit import base, engine, image
from toolkit.config import load_config

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("build-project")
    wheels = root / "wheels"
    make_wheel(wheels, "tinyalpha", "1.0")
    make_wheel(wheels, "tinybeta", "2.0", body="import tinyalpha\n", requires=("tinyalpha",))
    name = f"tk-build-{secrets.token_hex(3)}"
    (root / "toolkit.yaml").write_text(f"name: {name}\ntargets: {{cpu: {{}}}}\n")
    # offline: this machine's mirror of PyPI is the folder of tiny wheels
    (root / ".toolkit").mkdir()
    (root / ".toolkit" / "mirrors.toml").write_text(f'"https://pypi.org/simple" = "{wheels}"\n')
    (root / "requirements.in").write_text("tinyalpha\n")
    locked = toolkit("lock", cwd=root)
    assert locked.returncode == 0, locked.stderr
    yield root
    for img in engine.images(f"{image.LABEL}.project={name}"):
        engine.remove_image(img.id)


def current(root: Path) -> image.BuildPlan:
    cfg = load_config(root / "toolkit.yaml")
    return image.plan(cfg, cfg.targets["cpu"])


def test_build_then_noop(project: Path) -> None:
    first = toolkit("build", cwd=project)
    assert first.returncode == 0, first.stderr + first.stdout
    ref = current(project).ref
    assert f"built {ref}" in first.stdout
    found = engine.image(ref)
    assert found is not None
    labels = found.labels
    assert labels["io.toolkit.target"] == "cpu"
    assert labels["io.toolkit.lock-hash"] == current(project).lock_hash
    assert labels["io.toolkit.base-digest"].startswith("sha256:")
    assert labels["io.toolkit.version"]

    out = engine.run_once(
        ref, ["python", "-c", "import os, tinyalpha; print(tinyalpha.VERSION, os.getuid())"]
    )
    assert out.split() == ["1.0", "1000"]
    leftovers = engine.run_once(
        ref,
        [
            "sh",
            "-c",
            "ls /tmp/wheels /root/.cache/pip /home/toolkit/.cache/pip 2>&1 | grep -c 'No such'",
        ],
        user="0",  # root, so that /root can be listed
    )
    assert leftovers.strip() == "3"  # no wheelhouse, no pip cache in the final image

    second = toolkit("build", cwd=project)
    assert second.returncode == 0
    assert "up to date, nothing to build" in second.stdout


def test_changed_lockfile_gets_a_new_tag(project: Path) -> None:
    before = current(project).ref
    (project / "requirements.in").write_text("tinyalpha\ntinybeta\n")
    assert toolkit("lock", cwd=project).returncode == 0
    after = current(project).ref
    assert after != before
    built = toolkit("build", cwd=project)
    assert built.returncode == 0, built.stderr
    assert engine.run_once(after, ["python", "-c", "import tinybeta"]) == ""
    assert engine.image(before) is not None  # the old image stays usable


def test_tampered_wheel_is_refused(project: Path) -> None:
    house = project / ".toolkit" / "wheelhouse"
    wheel = next(house.glob("tinybeta-*.whl"))
    original = wheel.read_bytes()
    try:
        wheel.write_bytes(original + b"tampered")
        result = toolkit("build", "--no-cache", cwd=project)
        assert result.returncode == 1
        assert "tinybeta==2.0 does not match the lockfile's hashes" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        wheel.write_bytes(original)


def test_export_remove_import_gives_the_same_image(project: Path, tmp_path: Path) -> None:
    assert toolkit("build", cwd=project).returncode == 0
    ref = current(project).ref
    original = engine.image(ref)
    assert original is not None
    archive = tmp_path / "cpu.tar.gz"
    exported = toolkit("image", "export", str(archive), cwd=project)
    assert exported.returncode == 0, exported.stderr
    assert archive.stat().st_size > 1_000_000
    engine.remove_image(original.id)
    assert engine.image(ref) is None

    imported = toolkit("image", "import", str(archive), cwd=project)
    assert imported.returncode == 0, imported.stderr
    assert "current for this project" in imported.stdout
    again = engine.image(ref)
    assert again is not None and again.id == original.id

    listed = toolkit("images", cwd=project)
    assert ref in listed.stdout and "current" in listed.stdout


def test_interrupted_build_keeps_the_image_the_tag_had(project: Path) -> None:
    """Ctrl-C in the middle of `toolkit build --no-cache`: a message, exit 130, and the tag
    still names the image it named before (the classic builder tags only at the very end)."""
    assert toolkit("build", cwd=project).returncode == 0
    ref = current(project).ref
    before = engine.image(ref)
    assert before is not None
    build = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "build", "--no-cache"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert build.stderr is not None
    seen = []
    for line in build.stderr:  # progress goes to stderr off a terminal
        seen.append(line)
        if "Step 3/" in line:
            build.send_signal(signal.SIGINT)
            break
    else:
        pytest.fail(f"the build never reached step 3: {''.join(seen)}")
    assert build.wait(timeout=120) == 130
    rest = build.stderr.read()
    assert "interrupted" in rest and "Traceback" not in rest
    after = engine.image(ref)
    assert after is not None and after.id == before.id
    assert not list((project / ".toolkit" / "tmp").glob("build-*")), "build context left behind"
    assert toolkit("build", cwd=project).stdout.count("up to date") == 1


def test_missing_lockfile_points_to_lock(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: tk-nolock\ntargets: {cpu: {}}\n")
    result = toolkit("build", cwd=tmp_path)
    assert result.returncode == 1
    assert "no lockfile for target cpu" in result.stderr
    assert "toolkit lock --target cpu" in result.stderr


@pytest.fixture(scope="module")
def registry() -> str:
    """A real local registry (Debian docker-registry on 127.0.0.1), from docker/registry.sh."""
    script = Path(__file__).resolve().parents[2] / "docker" / "registry.sh"
    started = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        if docker_required():
            pytest.fail(f"local registry could not start: {started.stderr}")
        pytest.skip(f"no local registry: {started.stderr.strip()}")
    return "127.0.0.1:5000"


def test_push_then_pull_by_digest(project: Path, registry: str) -> None:
    assert toolkit("build", cwd=project).returncode == 0
    ref = current(project).ref
    original = engine.image(ref)
    assert original is not None
    repository = f"{registry}/{ref.partition(':')[0]}"
    pushed = toolkit("image", "push", repository, cwd=project)
    assert pushed.returncode == 0, pushed.stderr
    pinned = next(w for w in pushed.stdout.split() if "@sha256:" in w)
    assert pinned.startswith(f"{repository}@sha256:")

    engine.remove_image(original.id)
    pulled = toolkit("image", "pull", pinned, cwd=project)
    assert pulled.returncode == 0, pulled.stderr
    again = engine.image(ref)
    assert again is not None and again.id == original.id

    unpinned = toolkit("image", "pull", f"{repository}:latest", cwd=project)
    assert unpinned.returncode == 1
    assert "not pinned by digest" in unpinned.stderr


def test_imported_image_runs_without_its_base(project: Path, tmp_path: Path) -> None:
    """The tag names the base by its inputs, not by this machine's image id, so a teammate who
    imports the archive finds it current whatever base (or none) their machine has."""
    assert toolkit("build", cwd=project).returncode == 0
    cfg = load_config(project / "toolkit.yaml")
    plan = current(project)
    assert plan.base_ref == base.base_ref(cfg.targets["cpu"], cfg.base)
    archive = tmp_path / "cpu.tar.gz"
    assert toolkit("image", "export", str(archive), cwd=project).returncode == 0
    engine.remove_image(plan.ref)
    assert toolkit("image", "import", str(archive), cwd=project).returncode == 0
    assert image.current_image(cfg, cfg.targets["cpu"])[0] == plan.ref  # no base lookup involved
