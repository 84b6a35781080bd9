"""The directory the launcher mounts: its layout, standard-library only, usable on its own."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from toolkit.runtime.bundle import SOURCE, write_bundle

MODULES = sorted(path.name for path in SOURCE.glob("*.py"))


def test_bundle_layout(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    runtime = tmp_path / "toolkit" / "runtime"
    assert sorted(path.name for path in runtime.glob("*.py")) == MODULES
    assert "sitecustomize.py" in MODULES and "__init__.py" in MODULES
    assert (tmp_path / "sitecustomize.py").read_text() == (SOURCE / "sitecustomize.py").read_text()
    assert "Stub of the toolkit package" in (tmp_path / "toolkit" / "__init__.py").read_text()
    for path in tmp_path.rglob("*.py"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    # Compiled ahead: a read-only mount would otherwise recompile it in every process.
    assert list((runtime / "__pycache__").glob(f"apply.{sys.implementation.cache_tag}.pyc"))


def test_rewriting_a_bundle_drops_stale_modules(tmp_path: Path) -> None:
    write_bundle(tmp_path)
    stale = tmp_path / "toolkit" / "runtime" / "gone.py"
    stale.write_text("")
    write_bundle(tmp_path)
    assert not stale.exists()


@pytest.mark.parametrize("module", MODULES)
def test_runtime_imports_only_the_standard_library(module: str) -> None:
    tree = ast.parse((SOURCE / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - {"toolkit"} <= sys.stdlib_module_names, module


def test_bundle_alone_is_enough(tmp_path: Path) -> None:
    """As in a container: a bare Python with nothing installed but the bundle on PYTHONPATH."""
    bundle, run_dir = tmp_path / "bundle", tmp_path / "run"
    write_bundle(bundle)
    run_dir.mkdir()
    venv.create(tmp_path / "bare", with_pip=False)
    python = tmp_path / "bare" / "bin" / "python"
    script = (
        "import json, sys, toolkit.runtime\n"
        "toolkit.runtime.log(step=1, loss=0.5)\n"
        "print(json.dumps([toolkit.runtime.__file__, 'torch' in sys.modules]))\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(bundle),
        "TOOLKIT_POLICY": '{"seed": 1}',
        "TOOLKIT_RUN_DIR": str(run_dir),
    }
    done = subprocess.run(
        [str(python), "-c", script], env=env, capture_output=True, text=True, check=True
    )
    where, has_torch = json.loads(done.stdout)
    assert where == str(bundle / "toolkit" / "runtime" / "__init__.py")
    assert has_torch is False
    assert done.stderr == ""
    (report,) = (run_dir / "runtime").glob("*.json")
    assert json.loads(report.read_text())["policy"]["seed"] == 1
    assert json.loads((run_dir / "metrics.jsonl").read_text())["values"] == {"loss": 0.5}
