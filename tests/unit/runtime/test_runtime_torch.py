"""The policy applied to torch in real processes: flags, DataLoader workers, strict, warn."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.runtime import torch_policy
from toolkit.runtime.policy import SHELL_VAR, Policy

from .conftest import Run, RunPython

pytest.importorskip("torch")

FLAGS = """
    import json, sys
    import torch
    b = torch.backends
    print(json.dumps({
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn.deterministic": b.cudnn.deterministic,
        "cudnn.benchmark": b.cudnn.benchmark,
        "cuda.matmul.allow_tf32": b.cuda.matmul.allow_tf32,
        "cudnn.allow_tf32": b.cudnn.allow_tf32,
        "matmul_precision": torch.get_float32_matmul_precision(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn.enabled": b.mkldnn.enabled,
        "mkldnn.deterministic": b.mkldnn.deterministic,
        "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory,
        "cpu_capability": b.cpu.get_cpu_capability(),
        "seeded": torch.initial_seed(),
        "inductor_loaded": "torch._inductor.config" in sys.modules,
    }))
"""


def test_torch_flags_follow_the_policy(run_python: RunPython) -> None:
    run = run_python(FLAGS, Policy(seed=11, threads=2))
    assert run.returncode == 0, run.stderr
    flags = run.json_line()
    assert flags == {
        "deterministic": True,
        "warn_only": False,
        "cudnn.deterministic": True,
        "cudnn.benchmark": False,
        "cuda.matmul.allow_tf32": False,
        "cudnn.allow_tf32": False,
        "matmul_precision": "highest",
        "threads": 2,
        "interop_threads": 2,
        "mkldnn.enabled": True,
        "mkldnn.deterministic": True,
        "fill_uninitialized_memory": True,
        "cpu_capability": flags["cpu_capability"],
        "seeded": 11,
        # use_deterministic_algorithms() would import inductor (~0.9 s); the runtime does not.
        "inductor_loaded": False,
    }
    report = run.main_report()
    failed = [s for s in report["settings"] if s["status"] == "failed"]
    assert failed == []
    assert report["libraries"]["torch"].startswith("2.")
    torch_facts = report["torch"]
    assert torch_facts["state"]["deterministic_algorithms"] is True
    assert torch_facts["cpu_capability"] == flags["cpu_capability"]
    assert report["overridden"] == []
    assert run.stderr == ""


OVERRIDES = """
    import os, sys
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("medium")
    sys.stdout.flush()
    if sys.argv[1] == "os._exit":
        os._exit(0)
"""


def test_settings_the_program_changes_afterwards_are_reported(run_python: RunPython) -> None:
    """The policy was applied, then undone by the program: the report says which, with the
    value found at exit, so the launcher can warn."""
    run = run_python(OVERRIDES, Policy(seed=1, threads=2), "exit")
    assert run.returncode == 0, run.stderr
    report = run.main_report()
    assert report["final"] is True
    found = {entry["name"]: (entry["policy"], entry["found"]) for entry in report["overridden"]}
    assert found["torch.set_num_threads"] == (2, 1)
    assert found["torch.use_deterministic_algorithms"] == (
        {"mode": True, "warn_only": False},
        {"mode": False, "warn_only": False},
    )
    assert found["torch.backends.cudnn.benchmark"] == (False, True)
    assert found["torch.set_float32_matmul_precision"] == ("highest", "medium")
    # torch ties the other TF32 switches to the precision, and reports them changed too
    assert set(found) <= {
        "torch.set_num_threads",
        "torch.use_deterministic_algorithms",
        "torch.backends.cudnn.benchmark",
        "torch.set_float32_matmul_precision",
        "torch.backends.cuda.matmul.allow_tf32",
        "torch.backends.cuda.matmul.fp32_precision",
        "torch.backends.mkldnn.matmul.fp32_precision",
    }
    assert run.setting("torch.set_num_threads")["status"] == "applied"  # as it was
    assert report["torch"]["state"]["num_threads"] == 1


def test_a_process_that_skips_atexit_leaves_its_last_report(run_python: RunPython) -> None:
    """os._exit, a signal, a crash: no final write, which `final` says."""
    run = run_python(OVERRIDES, Policy(seed=1, threads=2), "os._exit")
    assert run.returncode == 0, run.stderr
    report = run.main_report()
    assert (report["final"], report["overridden"]) == (False, [])  # as of torch's import


def test_a_child_forked_after_cuda_started_does_not_query_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch raises there ("Cannot re-initialize CUDA in forked subprocess"), and every forked
    child now writes its report, some at exit too."""
    import torch

    def refuse(index: int) -> None:
        raise RuntimeError("Cannot re-initialize CUDA in forked subprocess")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", refuse)
    with pytest.raises(RuntimeError):
        torch_policy.facts(torch, True)
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)
    assert torch_policy.facts(torch, True)["devices"] == []


def test_no_policy_leaves_torch_alone(run_python: RunPython) -> None:
    flags = run_python(FLAGS, None).json_line()
    assert flags["deterministic"] is False and flags["cudnn.benchmark"] is False
    assert flags["seeded"] != 11


def test_observe_mode_records_torchs_own_settings_and_applies_nothing(
    run_python: RunPython,
) -> None:
    """TOOLKIT_POLICY=null (a --no-policy run): the defaults as torch leaves them, recorded."""
    run = run_python(FLAGS, None, env={"TOOLKIT_POLICY": "null"})
    assert run.returncode == 0, run.stderr
    flags = run.json_line()
    assert flags["deterministic"] is False and flags["seeded"] != 7  # nothing applied
    report = run.main_report()
    assert report["policy"] is None
    assert report["settings"] == [] and report["forced"] == []
    torch_facts = report["torch"]
    assert torch_facts["version"] and torch_facts["state"]["deterministic_algorithms"] is False
    assert torch_facts["state"]["num_threads"] == flags["threads"]


def test_portable_pins_cpu_kernels_to_the_baseline(run_python: RunPython) -> None:
    run = run_python(FLAGS, Policy(seed=1, threads=1, cpu="portable"))
    flags = run.json_line()
    assert (flags["cpu_capability"], flags["mkldnn.enabled"], flags["threads"]) == (
        "DEFAULT",
        False,
        1,
    )
    assert run.setting("torch cpu capability")["status"] == "applied"
    assert run.main_report()["env"]["MKL_CBWR"] == "COMPATIBLE"


def test_portable_without_the_launchers_env_says_what_failed(run_python: RunPython) -> None:
    # The runtime sets ATEN_CPU_CAPABILITY itself before torch loads, so this still works.
    run = run_python(FLAGS, Policy(seed=1, cpu="portable"), launcher=False)
    assert run.json_line()["cpu_capability"] == "DEFAULT"
    assert run.setting("env ATEN_CPU_CAPABILITY")["detail"] == "was None; set by the runtime"


def test_warn_mode(run_python: RunPython) -> None:
    flags = run_python(FLAGS, Policy(seed=1, strict=False)).json_line()
    assert (flags["deterministic"], flags["warn_only"]) == (True, True)


def test_inductor_gets_deterministic_when_it_loads(run_python: RunPython) -> None:
    script = "import torch, torch._inductor.config as c; print(c.deterministic)"
    run = run_python(script, env={"TORCHINDUCTOR_DETERMINISTIC": "0"}, timeout=300)
    assert run.stdout.strip() == "True"
    assert run.setting("torch._inductor.config.deterministic")["status"] == "applied"


def test_a_second_interop_threads_call_is_forced_not_fatal(run_python: RunPython) -> None:
    run = run_python(
        "import torch; torch.set_num_interop_threads(5); print(torch.get_num_interop_threads())"
    )
    assert (run.returncode, run.stdout.strip()) == (0, "2"), run.stderr
    assert run.main_report()["forced"] == ["torch.set_num_interop_threads 5 -> 2 (policy)"]


LOADER = """
    import json, random, sys
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Augmented(Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, index):
            # Random augmentation in the worker: torch's and Python's generators.
            return torch.tensor([index, int(torch.randint(0, 10**6, ())), random.randint(0, 10**6)])

    def user_init(worker_id):
        sys.stderr.write(f"user init {worker_id}\\n")  # one write: workers share stderr

    if __name__ == "__main__":
        context = None if sys.argv[1] == "default" else sys.argv[1]
        loader = DataLoader(Augmented(), batch_size=3, shuffle=True, num_workers=int(sys.argv[2]),
                            worker_init_fn=user_init, multiprocessing_context=context)
        batches = [batch.tolist() for batch in loader]
        print(json.dumps({"batches": batches, "workers": loader.num_workers}))
"""


def test_dataloader_workers_are_forced_to_zero(run_python: RunPython) -> None:
    runs = [run_python(LOADER, Policy(seed=3), "default", "2") for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (run.json_line() for run in runs)
    assert first["workers"] == 0
    assert first["batches"] == second["batches"]
    assert sorted(row[0] for batch in first["batches"] for row in batch) == list(range(12))
    # Without workers torch never calls worker_init_fn: said, so the launcher can warn.
    assert "user init" not in runs[0].stderr
    assert runs[0].main_report()["forced"] == [
        "DataLoader num_workers 2 -> 0",
        "DataLoader worker_init_fn user_init not run (num_workers 2 -> 0)",
        "DataLoader generator None -> torch.Generator seeded policy.seed + n",
    ]
    assert len(runs[0].reports()) == 1


ITERABLE = """
    from torch.utils.data import DataLoader, IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(4))  # not split by get_worker_info(): each worker yields it all

    loader = DataLoader(Stream(), batch_size=None)
    mapped = DataLoader(range(4), batch_size=None)
    print([int(x) for x in loader], loader.num_workers, mapped.num_workers)
"""


def test_an_iterable_dataset_is_not_forced_to_more_workers(run_python: RunPython) -> None:
    """With 2 workers forced on it, that loader gave [0, 0, 1, 1, 2, 2, 3, 3]."""
    run = run_python(ITERABLE, Policy(seed=1, dataloader_workers=2))
    assert (run.returncode, run.stdout) == (0, "[0, 1, 2, 3] 0 2\n"), run.stderr
    assert run.setting("DataLoader num_workers") == {
        "name": "DataLoader num_workers",
        "value": 2,
        "status": "not_applicable",
        "detail": "kept at 0 for IterableDataset Stream, not forced to 2:"
        " each worker would yield the whole dataset",
    }
    assert run.main_report()["forced"] == [
        "DataLoader generator None -> torch.Generator seeded policy.seed + n",
        "DataLoader num_workers 0 -> 2",  # a map-style dataset still is
    ]


def test_multiprocess_only_options_go_with_the_workers(run_python: RunPython) -> None:
    script = """
        from torch.utils.data import DataLoader
        loader = DataLoader(range(4), num_workers=2, persistent_workers=True, prefetch_factor=4,
                            multiprocessing_context="spawn", in_order=False)
        print(sum(len(batch) for batch in loader))
    """
    run = run_python(script, Policy(seed=1))
    assert (run.returncode, run.stdout) == (0, "4\n"), run.stderr
    assert run.main_report()["forced"] == [
        "DataLoader num_workers 2 -> 0",
        "DataLoader persistent_workers True -> False (no workers)",
        "DataLoader prefetch_factor 4 -> None (no workers)",
        "DataLoader multiprocessing_context 'spawn' -> None (no workers)",
        "DataLoader generator None -> torch.Generator seeded policy.seed + n",
    ]


def _worker_reports(run: Run) -> list[dict[str, Any]]:
    return [r for r in run.reports() if r["dataloader_worker"] is not None]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_are_seeded_and_reported(run_python: RunPython, context: str) -> None:
    policy = Policy(seed=5, threads=2, dataloader_workers=2)
    runs = [run_python(LOADER, policy, context, "0", timeout=300) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.json_line()["workers"] == 2
        # The user's worker_init_fn still runs, after the runtime's seeding.
        lines = run.stderr.splitlines()
        assert (lines.count("user init 0"), lines.count("user init 1")) == (1, 1), run.stderr
    assert runs[0].json_line()["batches"] == runs[1].json_line()["batches"]
    workers = _worker_reports(runs[0])
    assert sorted(w["dataloader_worker"]["id"] for w in workers) == [0, 1]
    main_pid = runs[0].pid
    for worker in workers:
        assert worker["ppid"] == main_pid
        # fork: the worker inherits the parent's torch state; spawn: it applies it anew.
        assert worker["forked_from"] == (main_pid if context == "fork" else None)
        assert worker["torch"]["state"]["deterministic_algorithms"] is True
        # torch's worker loop runs one thread per worker: not an override by the program
        assert worker["torch"]["state"]["num_threads"] == 1
        assert worker["overridden"] == []


def test_without_the_runtime_worker_batches_differ_between_runs(run_python: RunPython) -> None:
    """The test above can fail: the same script without a policy is not reproducible."""
    runs = [run_python(LOADER, None, "fork", "2", timeout=300) for _ in range(2)]
    assert runs[0].json_line()["batches"] != runs[1].json_line()["batches"]


NONDETERMINISTIC = """
    import sys, threading
    import torch

    def put():
        # put_ with accumulate=False has no deterministic CPU kernel (torch docs).
        torch.zeros(5).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))

    def unpool():
        functional = torch.nn.functional
        pooled, indices = functional.max_pool1d(torch.rand(1, 1, 4), 2, return_indices=True)
        functional.max_unpool1d(pooled, indices, 2)

    if sys.argv[1] == "thread":
        thread = threading.Thread(target=put)
        thread.start()
        thread.join()
    else:
        put()
        put()
        unpool()
    print("finished")
"""


def test_strict_mode_names_the_op_that_stopped_the_run(run_python: RunPython) -> None:
    run = run_python(NONDETERMINISTIC, Policy(seed=1, strict=True), "main")
    assert run.returncode == 1 and "finished" not in run.stdout
    assert run.main_report()["nondeterministic_ops"] == [{"op": "put_", "mode": "raised"}]
    assert "RuntimeError: put_ does not have a deterministic implementation" in run.stderr
    # the launcher reads the record and says what to do, once: the runtime leaves it to it
    assert "toolkit:" not in run.stderr


def test_under_toolkit_shell_the_runtime_says_what_to_do(run_python: RunPython) -> None:
    run = run_python(NONDETERMINISTIC, Policy(seed=1, strict=True), "main", env={SHELL_VAR: "1"})
    assert run.returncode == 1
    assert "toolkit: put_ has no deterministic implementation" in run.stderr
    assert "--no-strict" in run.stderr


def test_strict_mode_in_a_thread(run_python: RunPython) -> None:
    run = run_python(NONDETERMINISTIC, Policy(seed=1, strict=True), "thread")
    assert "finished" in run.stdout
    assert run.main_report()["nondeterministic_ops"] == [{"op": "put_", "mode": "raised"}]


def test_warn_mode_records_every_op_once_and_goes_on(run_python: RunPython) -> None:
    run = run_python(NONDETERMINISTIC, Policy(seed=1, strict=False), "main")
    assert (run.returncode, run.stdout) == (0, "finished\n"), run.stderr
    assert run.main_report()["nondeterministic_ops"] == [
        {"op": "put_", "mode": "warned"},
        {"op": "max_unpooling2d_forward_out", "mode": "warned"},
    ]
