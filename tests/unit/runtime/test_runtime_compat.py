"""The runtime runs on the image's Python, which may be as old as 3.8."""

from __future__ import annotations

import ast
import json
import os
import random
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from toolkit.runtime.bundle import SOURCE
from toolkit.runtime.policy import Policy

from .conftest import launch_env

OLDEST = (3, 8)
MODULES = sorted(SOURCE.glob("*.py"))

# Python APIs newer than 3.8: a call's keyword, a method of any object, a module's function.
NEWER_KEYWORDS = {("zip", "strict")}  # 3.10
NEWER_METHODS = {
    "removeprefix",  # str, bytes: 3.9
    "removesuffix",
    "is_relative_to",  # pathlib: 3.9
    "bit_count",  # int: 3.10
}
NEWER_FUNCTIONS = {
    "functools": {"cache"},  # 3.9
    "os": {"waitstatus_to_exitcode", "pidfd_open"},  # 3.9
    "sys": {"orig_argv", "stdlib_module_names"},  # 3.10
    "itertools": {"pairwise"},  # 3.10
    "inspect": {"get_annotations"},  # 3.10
    "asyncio": {"to_thread"},  # 3.9
    "math": {"lcm", "nextafter", "ulp"},  # 3.9
}
# Built-in generics subscripted at runtime (list[int]) need 3.9.
GENERICS = {"dict", "list", "set", "frozenset", "tuple", "type"}


class _Finder(ast.NodeVisitor):
    """Code that runs (annotations and `if TYPE_CHECKING:` blocks do not) using a newer API."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def _add(self, node: ast.AST, what: str) -> None:
        self.found.append(f"line {getattr(node, 'lineno', '?')}: {what}")

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        for child in (node.target, node.value):
            if child is not None:
                self.visit(child)

    def visit_arg(self, node: ast.arg) -> None:
        pass  # its annotation

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for child in [*node.decorator_list, node.args, *node.body]:
            self.visit(child)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        for keyword in node.keywords:
            if (name, keyword.arg) in NEWER_KEYWORDS:
                self._add(node, f"{name}({keyword.arg}=...)")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        module = node.value.id if isinstance(node.value, ast.Name) else ""
        if node.attr in NEWER_METHODS or node.attr in NEWER_FUNCTIONS.get(module, ()):
            self._add(node, f"{module}.{node.attr}")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name in NEWER_FUNCTIONS.get(node.module or "", ()):
                self._add(node, f"{node.module}.{alias.name}")

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in GENERICS:
            self._add(node, f"{node.value.id}[...]")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        # int | None in isinstance() or a type alias: 3.10
        sides = (node.left, node.right)
        if isinstance(node.op, ast.BitOr) and any(_is_type(side) for side in sides):
            self._add(node, "X | Y of types")
        self.generic_visit(node)


def _is_type(node: ast.expr) -> bool:
    names = {"None", "int", "str", "float", "bool", "bytes", *GENERICS}
    if isinstance(node, ast.Constant):
        return node.value is None
    return isinstance(node, ast.Name) and node.id in names


def newer_than_38(source: str) -> list[str]:
    """What in this source needs a Python newer than 3.8 to run."""
    finder = _Finder()
    finder.visit(ast.parse(source, feature_version=OLDEST))
    return finder.found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_runtime_module_needs_nothing_newer_than_python_3_8(path: Path) -> None:
    """Python 3.8's syntax (no match, no except*) and no API added since (zip strict=...)."""
    assert newer_than_38(path.read_text()) == []


def test_the_check_finds_what_3_8_lacks() -> None:
    source = """
        from __future__ import annotations
        TYPE_CHECKING = False
        if TYPE_CHECKING:
            Alias = dict[str, int | None]
        def f(x: list[int] | None = None) -> tuple[int, ...]:
            y: dict[str, int] = {}
            return x | 1, zip(x, y, strict=True), "ab".removeprefix("a"), list[int], int | None
        from functools import cache, lru_cache
        sys.orig_argv, sys.argv, os.readlink
    """
    assert [line.split(": ", 1)[1] for line in newer_than_38(textwrap.dedent(source))] == [
        "zip(strict=...)",
        ".removeprefix",
        "list[...]",
        "X | Y of types",
        "functools.cache",
        "sys.orig_argv",
    ]
    with pytest.raises(SyntaxError):
        newer_than_38("match x:\n    case 1:\n        pass\n")


def _old_python(version: str) -> str | None:
    """That Python's interpreter, from pyenv's versions or PATH; None when there is none."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = [str(path) for path in sorted(root.glob(f"{version}.*/bin/python{version}"))]
    found.append(shutil.which(f"python{version}") or "")
    for python in filter(None, reversed(found)):
        # A pyenv shim is on PATH for versions that are not installed, and fails when run.
        check = [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        try:
            done = subprocess.run(check, capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return python
    return None


# Just enough of torch for the runtime to apply its policy and force a DataLoader: any
# attribute or call gives another stand-in.
FAKE_TORCH = """
__version__ = "0.0-fake"

class _Anything:
    def __call__(self, *args, **kwargs):
        return _Anything()

    def __getattr__(self, name):
        return _Anything()

    def __repr__(self):
        return "anything"

def __getattr__(name):
    return _Anything()
"""
FAKE_DATA = """
class IterableDataset:
    pass

class DataLoader:
    def __init__(self, dataset, batch_size=1, num_workers=0, worker_init_fn=None,
                 generator=None, persistent_workers=False, prefetch_factor=None,
                 multiprocessing_context=None, in_order=True):
        self.num_workers = num_workers
"""
SCRIPT = """
import json, os, random, sys
import torch
from torch.utils.data import DataLoader

loader = DataLoader(range(4), num_workers=2, worker_init_fn=print)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, json.dumps(random.random()).encode())
    os._exit(0)
os.close(write)
child = json.loads(os.read(read, 100))
os.waitpid(pid, 0)
print(json.dumps([sys.version_info[:2], random.random(), child, loader.num_workers]))
"""


@pytest.mark.parametrize("version", ["3.8", "3.9", "3.10", "3.12", "3.13"])
def test_the_runtime_runs_on_other_pythons(bundle: Path, tmp_path: Path, version: str) -> None:
    """With that interpreter where one is installed (CI may have none): policy applied, torch's
    part and DataLoader forcing with a stand-in torch, a fork, reports written."""
    python = _old_python(version)
    if python is None:
        pytest.skip(f"no python{version} installed")
    libraries = tmp_path / "libraries"
    (libraries / "torch" / "utils").mkdir(parents=True)
    (libraries / "torch" / "__init__.py").write_text(FAKE_TORCH)
    (libraries / "torch" / "utils" / "__init__.py").write_text("")
    (libraries / "torch" / "utils" / "data.py").write_text(FAKE_DATA)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = launch_env(Policy(seed=7), run_dir, bundle)
    env["PYTHONPATH"] = f"{bundle}{os.pathsep}{libraries}"
    done = subprocess.run(
        [python, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "toolkit runtime" not in done.stderr
    found_version, parent, child, workers = json.loads(done.stdout.splitlines()[-1])
    assert (found_version, workers) == ([int(part) for part in version.split(".")], 0)
    # the same seeds give the same numbers on every Python 3
    assert (parent, child) == (random.Random(7).random(), random.Random("7/1").random())
    reports = [json.loads(path.read_text()) for path in (run_dir / "runtime").glob("*.json")]
    assert sorted(report["fork_index"] or 0 for report in reports) == [0, 1]
    main = next(report for report in reports if report["fork_index"] is None)
    assert main["python"].startswith(f"{version}.") and main["errors"] == []
    statuses = {setting["name"]: setting["status"] for setting in main["settings"]}
    assert statuses["random.seed"] == statuses["torch.manual_seed"] == "applied"
    assert "DataLoader worker_init_fn print not run (num_workers 2 -> 0)" in main["forced"]
