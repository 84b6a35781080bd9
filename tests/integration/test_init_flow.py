"""A newcomer's afternoon: `toolkit init` in an existing project, then lock, build and run."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.support import make_wheel, toolkit
from toolkit import engine, image

pytestmark = pytest.mark.docker

JOB = """
import json, random
import tinyalpha
with open("metrics.jsonl", "w") as out:
    for step in range(3):
        out.write(json.dumps({"step": step, "loss": random.random()}) + "\\n")
print("tinyalpha", tinyalpha.VERSION)
"""


def test_init_then_lock_build_run(tmp_path: Path) -> None:
    name = f"tk-init-{secrets.token_hex(3)}"
    project = tmp_path / name
    project.mkdir()
    (project / "job.py").write_text(JOB)
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinyalpha", "1.0")
    (project / ".toolkit").mkdir()  # this machine's mirror of PyPI: offline
    (project / ".toolkit" / "mirrors.toml").write_text(
        f'"https://pypi.org/simple" = "{wheels}"\n'
        f'"https://download.pytorch.org/whl/cpu" = "{wheels}"\n'
    )

    init = toolkit("init", "--command", "python job.py", "-r", "tinyalpha", cwd=project)
    assert init.returncode == 0, init.stderr
    try:
        for step in (["lock"], ["base"], ["build"]):
            done = toolkit(*step, cwd=project)
            assert done.returncode == 0, (step, done.stdout, done.stderr)
        ran = toolkit("run", cwd=project)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "tinyalpha 1.0" in ran.stdout
        (folder,) = (project / "runs").iterdir()
        record = json.loads((folder / "record.json").read_text())
        assert record["status"] == "succeeded"
        assert [s for s, _ in record["metrics"]["series"]["loss"]] == [0, 1, 2]
        again = toolkit("run", cwd=project)
        assert again.returncode == 0
        check = toolkit("repro-check", "--runs", "2", cwd=project)
        assert check.returncode == 0, check.stdout
        assert "reproducible on cpu (2 runs, all identical)" in check.stdout
    finally:
        for img in engine.images(f"{image.LABEL}.project={name}"):
            engine.remove_image(img.id)


def test_a_project_on_the_standard_library_alone_locks_builds_and_runs(tmp_path: Path) -> None:
    """`toolkit init` without -r writes a requirements.in that lists no packages: `lock` said
    "no requirements in it", and the project could not run in a container at all."""
    name = f"tk-stdlib-{secrets.token_hex(3)}"
    project = tmp_path / name
    project.mkdir()
    (project / "job.py").write_text("import sys; print('python', sys.version_info[0])\n")
    init = toolkit("init", "--command", "python job.py", cwd=project)
    assert init.returncode == 0, init.stderr
    try:
        locked = toolkit("lock", cwd=project)
        assert locked.returncode == 0, locked.stderr
        assert "cpu: lockfiles/cpu.txt written (no packages: requirements.in lists none" in (
            locked.stdout
        )
        for step in (["lock", "--check"], ["base"], ["build"]):
            done = toolkit(*step, cwd=project)
            assert done.returncode == 0, (step, done.stdout, done.stderr)
        ran = toolkit("run", cwd=project)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout == "python 3\n"
    finally:
        for img in engine.images(f"{image.LABEL}.project={name}"):
            engine.remove_image(img.id)
