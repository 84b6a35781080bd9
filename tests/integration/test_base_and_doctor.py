"""`toolkit base` and `toolkit doctor` against the real Docker Engine.

The bootstrapped base is kept after the tests: like a pulled image, it is the cached input that
every later build starts from (about a minute to make).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support import toolkit
from toolkit import base, engine
from toolkit.config import BaseConfig

pytestmark = pytest.mark.docker


def test_base_builds_a_python_image_then_reuses_it(tmp_path: Path) -> None:
    first = toolkit("base", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    ref = f"{base.REPOSITORY}:{base.base_tag(BaseConfig())}"
    assert ref in first.stdout

    out = engine.run_once(ref, ["python3", "-c", "import sys, venv; print(sys.version_info[:2])"])
    assert out.strip() == "(3, 11)"
    image = engine.image(ref)
    assert image is not None
    assert image.labels[base.LABEL_HASH] == base.base_tag(BaseConfig())

    started = time.monotonic()
    second = toolkit("base", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    assert elapsed < 2.0, f"reusing the base took {elapsed:.2f}s"


def test_doctor_reports_the_engine(tmp_path: Path) -> None:
    result = toolkit("doctor", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "toolkit.doctor/1"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["engine"]["status"] == "ok"
    assert checks["engine"]["detail"].startswith(f"Docker Engine {engine.info().version}")
    assert checks["gpu"]["status"] in ("ok", "warn")  # no GPU here is a fact, not a failure
    # the engine answering is not enough: it started a container, as `toolkit run` will
    assert checks["containers"]["status"] == "ok", checks["containers"]


def test_doctor_flags_a_missing_base_for_the_project(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text(
        "name: x\nbase: {packages: [python3, python3-venv, curl]}\ntargets: {cpu: {}}\n"
    )
    result = toolkit("doctor", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if "base for cpu" in x)
    assert line.split()[0] == "warn"
    assert "missing" in line
    assert "run `toolkit base`" in result.stdout


def test_doctor_finds_a_stale_lock(tmp_path: Path) -> None:
    (tmp_path / "toolkit.yaml").write_text("name: x\ntargets: {cpu: {}}\n")
    (tmp_path / "requirements.in").write_text("numpy\n")
    (tmp_path / "lockfiles").mkdir()
    (tmp_path / "lockfiles" / "cpu.txt").write_text("numpy==2.0.0\n")
    result = toolkit("doctor", "--json", cwd=tmp_path)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["lock cpu"]["status"] == "warn"
    assert "no toolkit header" in checks["lock cpu"]["detail"]
    assert checks["lock cpu"]["fix"] == "run `toolkit lock --target cpu`"
    build = toolkit("build", cwd=tmp_path)
    assert build.returncode == 1
    assert "run `toolkit lock --target cpu`" in build.stderr
