"""The runtime in a real Python process that does not use torch: startup, env, chaining, safety."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from toolkit.runtime.policy import Policy

from .conftest import DEFAULT_POLICY, RunPython

PRINT_RANDOM = """
    import json, random, sys
    print(json.dumps([random.random(), hash("toolkit"), sorted(sys.modules)]))
"""


def test_stdlib_is_seeded_and_heavy_libraries_stay_unimported(run_python: RunPython) -> None:
    first, second = run_python(PRINT_RANDOM), run_python(PRINT_RANDOM)
    (value, hashed, modules), (value2, hashed2, _) = first.json_line(), second.json_line()
    assert value == value2 == random.Random(7).random()
    assert hashed == hashed2  # PYTHONHASHSEED from the launcher's environment
    assert not {"torch", "numpy", "tensorflow", "jax", "inspect", "dataclasses"} & set(modules)
    report = first.main_report()
    statuses = {s["name"]: s["status"] for s in report["settings"]}
    assert statuses["random.seed"] == "applied"
    assert statuses["torch"] == statuses["numpy"] == "not_applicable"
    assert statuses["env PYTHONHASHSEED"] == statuses["env OMP_NUM_THREADS"] == "applied"
    assert report["env"]["OMP_NUM_THREADS"] == "2"
    assert report["policy"] == Policy(seed=7, threads=2).as_dict()
    assert report["errors"] == [] and first.stderr == ""


def test_the_runtime_costs_a_process_no_json_re_or_importlib_util(
    run_python: RunPython, bundle: Path, tmp_path: Path
) -> None:
    """Each is milliseconds at the start of every process of a run (jsonlite, sitecustomize)."""
    user = _user_site(tmp_path, "import builtins\nbuiltins.USER_SITE = 1\n")  # chained
    env = {"PYTHONPATH": f"{bundle}:{user}", "PYTHONPROFILEIMPORTTIME": "1"}
    run = run_python("print(USER_SITE)", env=env)  # the report is written at exit
    assert (run.returncode, run.stdout) == (0, "1\n"), run.stderr
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines()}
    assert "toolkit.runtime.apply" in imported  # what the check reads is the import log
    assert not {"json", "re", "enum", "importlib.util"} & imported
    assert run.main_report()["policy"] == DEFAULT_POLICY.as_dict()


def test_a_process_a_signal_ends_still_leaves_its_report(run_python: RunPython) -> None:
    # SIGTERM's default action skips atexit: as a container's process ends on `docker stop`.
    run = run_python("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert run.returncode == -15
    statuses = {s["name"]: s["status"] for s in run.main_report()["settings"]}
    assert statuses["env PYTHONHASHSEED"] == statuses["env OMP_NUM_THREADS"] == "applied"


def test_report_fields(run_python: RunPython) -> None:
    run = run_python("import sys; sys.exit(3)", Policy(seed=1), "arg")
    assert run.returncode == 3
    report = run.main_report()
    assert set(report) == {
        "schema", "pid", "ppid", "forked_from", "fork_index", "dataloader_worker", "argv",
        "executable", "python", "policy", "settings", "forced", "nondeterministic_ops",
        "overridden", "libraries", "env", "errors", "final", "written_at",
    }  # fmt: skip
    assert report["argv"][1:] == ["arg"]
    assert (report["final"], report["overridden"], report["fork_index"]) == (True, [], None)
    assert report["libraries"] == {}
    assert "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE" in report["env"]
    assert not list((run.run_dir / "runtime").glob("*.tmp"))


def test_without_a_policy_the_runtime_does_nothing(run_python: RunPython) -> None:
    run = run_python(PRINT_RANDOM, None)
    value, _, modules = run.json_line()
    assert value != random.Random(7).random()
    assert "toolkit.runtime.apply" not in modules
    assert not (run.run_dir / "runtime").exists()


def test_env_missing_from_the_launcher_is_fixed_for_what_loads_later(run_python: RunPython) -> None:
    script = "import os; print(repr(os.environ.get('OMP_NUM_THREADS')))"
    run = run_python(
        script,
        Policy(seed=1, threads=3),
        launcher=False,
        env={"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1"},
    )
    assert run.stdout.strip() == "'3'"
    omp, hash_seed = run.setting("env OMP_NUM_THREADS"), run.setting("env PYTHONHASHSEED")
    assert omp["status"] == "applied" and omp["detail"] == "was None; set by the runtime"
    # Python reads PYTHONHASHSEED before any code runs: too late for this process.
    assert hash_seed["status"] == "failed"
    assert run.setting("env TORCH_ALLOW_TF32_CUBLAS_OVERRIDE")["detail"] == "removed (was '1')"


def _user_site(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "user_site"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(body)
    return folder


def test_users_own_sitecustomize_still_runs(
    run_python: RunPython, bundle: Path, tmp_path: Path
) -> None:
    user = _user_site(tmp_path, "import builtins\nbuiltins.USER_SITE = __file__\n")
    env = {"PYTHONPATH": f"{bundle}:{user}"}
    script = "import random; print(USER_SITE, random.random())"
    for policy in (Policy(seed=7), None):
        run = run_python(script, policy, env=env)
        assert run.returncode == 0, run.stderr
        where, value = run.stdout.split()
        assert where == str(user / "sitecustomize.py")
        assert (float(value) == random.Random(7).random()) is (policy is not None)


def test_a_broken_user_sitecustomize_is_reported_like_python_does(
    run_python: RunPython, bundle: Path, tmp_path: Path
) -> None:
    user = _user_site(tmp_path, "raise ValueError('user bug')\n")
    run = run_python("print('ran')", env={"PYTHONPATH": f"{bundle}:{user}"})
    assert run.stdout == "ran\n"
    assert (
        "Error in sitecustomize; set PYTHONVERBOSE for traceback:\nValueError: user bug"
        in run.stderr
    )


def test_a_bad_policy_never_stops_the_program(run_python: RunPython) -> None:
    run = run_python("print('ran')", None, env={"TOOLKIT_POLICY": '{"seed": "zero"}'})
    assert (run.returncode, run.stdout) == (0, "ran\n")
    assert run.stderr.count("toolkit runtime: warning: policy not applied") == 1
    assert "TOOLKIT_POLICY.seed must be a non-negative integer" in run.stderr


def test_an_unwritable_run_dir_never_stops_the_program(
    run_python: RunPython, tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the run directory should be")
    run = run_python("import random; print('ran')", env={"TOOLKIT_RUN_DIR": str(blocked)})
    assert (run.returncode, run.stdout) == (0, "ran\n")
    assert "toolkit runtime: warning: writing the runtime report" in run.stderr


def test_numpy_is_seeded_when_imported(run_python: RunPython) -> None:
    numpy = pytest.importorskip("numpy")
    run = run_python("import numpy; print(numpy.random.rand())", Policy(seed=7))
    assert float(run.stdout) == numpy.random.RandomState(7).rand()
    assert run.setting("numpy.random.seed")["status"] == "applied"
    assert run.main_report()["libraries"]["numpy"] == numpy.__version__


FAKE_TENSORFLOW = """
import types
calls = []
__version__ = "0.0-fake"
def _record(name):
    return lambda *args: calls.append([name, *args])
random = types.SimpleNamespace(set_seed=_record("set_seed"))
config = types.SimpleNamespace(
    experimental=types.SimpleNamespace(enable_op_determinism=_record("op_determinism")),
    threading=types.SimpleNamespace(
        set_intra_op_parallelism_threads=_record("intra"),
        set_inter_op_parallelism_threads=_record("inter"),
    ),
)
"""

FAKE_JAX = """
import types
calls = []
__version__ = "0.0-fake"
def _update(name, value):
    if name != "jax_default_matmul_precision":
        raise AttributeError(name)
    calls.append([name, value])
config = types.SimpleNamespace(update=_update)
"""


def test_tensorflow_and_jax_get_their_part_when_imported(
    run_python: RunPython, bundle: Path, tmp_path: Path
) -> None:
    """Stand-ins for the real libraries, which are not installed here: the calls are recorded."""
    libraries = tmp_path / "libraries"
    libraries.mkdir()
    (libraries / "tensorflow.py").write_text(FAKE_TENSORFLOW)
    (libraries / "jax.py").write_text(FAKE_JAX)
    script = "import json, tensorflow, jax; print(json.dumps([tensorflow.calls, jax.calls]))"
    run = run_python(script, Policy(seed=4, threads=3), env={"PYTHONPATH": f"{bundle}:{libraries}"})
    tensorflow_calls, jax_calls = run.json_line()
    assert tensorflow_calls == [["set_seed", 4], ["op_determinism"], ["intra", 3], ["inter", 3]]
    assert jax_calls == [["jax_default_matmul_precision", "highest"]]
    statuses = {s["name"]: s["status"] for s in run.main_report()["settings"]}
    assert statuses["tf.config.experimental.enable_op_determinism"] == "applied"
    assert statuses["jax.config.jax_default_matmul_precision"] == "applied"
    assert run.main_report()["libraries"] == {"tensorflow": "0.0-fake", "jax": "0.0-fake"}
