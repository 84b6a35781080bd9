"""End to end with torch: the bundled example built into its CPU image and run in containers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import run_python_argv, toolkit
from toolkit import engine
from toolkit.config import load_config

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's example project, its CPU image built (reused when current)."""
    root = tmp_path_factory.mktemp("example")
    for name in ("toolkit.yaml", "requirements.in"):
        shutil.copyfile(REPO / name, root / name)
    shutil.copytree(REPO / "lockfiles", root / "lockfiles")
    shutil.copytree(
        REPO / "examples",
        root / "examples",
        ignore=shutil.ignore_patterns("checkpoints", "metrics.jsonl", "__pycache__"),
    )
    base = toolkit("base", cwd=root)
    assert base.returncode == 0, base.stderr
    built = toolkit("build", "--target", "cpu", cwd=root, timeout=1800)
    assert built.returncode == 0, built.stdout + built.stderr
    return root


def copy_of(example: Path, dest: Path) -> Path:
    """A copy of the example project at `dest`, without its runs: a test's own to change."""
    shutil.copytree(example, dest, ignore=shutil.ignore_patterns("runs"))
    return dest


def run(example: Path, *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    result = toolkit("run", *args, cwd=example)
    text = result.stdout + result.stderr
    run_id = next(w for w in text.split() if w.startswith("2026") or w.startswith("20"))
    run_id = run_id.rstrip(":")
    folder = example / "runs" / run_id
    return result.returncode, json.loads((folder / "record.json").read_text()), text


def test_two_runs_are_identical_and_settings_were_applied(example: Path) -> None:
    code_a, a, _ = run(example)
    code_b, b, _ = run(example)
    assert code_a == code_b == 0
    assert a["image"]["id"] == b["image"]["id"] and a["native"] is False
    assert a["metrics"]["series"] == b["metrics"]["series"]
    assert (
        a["outputs"]["files"]["checkpoints/model.pt"]
        == b["outputs"]["files"]["checkpoints/model.pt"]
    )
    assert len(a["metrics"]["series"]["train_loss"]) == 128  # 4 epochs of 32 batches
    state = a["accelerator"]["state"]
    assert state["deterministic_algorithms"] is True and state["num_threads"] == 2
    assert "DataLoader num_workers 2 -> 0" in a["determinism"]["forced"]
    assert a["packages"]["torch"] == "2.13.0+cpu"
    diff = toolkit("diff", a["id"], b["id"], cwd=example)
    assert diff.returncode == 0
    assert diff.stdout.startswith("identical")


def test_thread_count_is_recorded_and_changes_results(example: Path) -> None:
    _, two, _ = run(example)
    _, one, _ = run(example, "--threads", "1")
    assert one["determinism"]["policy"]["threads"] == 1
    assert one["determinism"]["environment"]["OMP_NUM_THREADS"] == "1"
    assert one["accelerator"]["state"]["num_threads"] == 1
    diff = toolkit("diff", two["id"], one["id"], "--json", cwd=example)
    doc = json.loads(diff.stdout)
    assert diff.returncode == 1 and doc["verdict"] == "diverged"
    assert doc["causes"] == ["settings"]
    assert doc["first_divergence"] is not None


def test_portable_level_gives_the_same_weights_at_1_and_2_threads(example: Path) -> None:
    _, one, _ = run(example, "--cpu", "portable", "--threads", "1")
    _, two, _ = run(example, "--cpu", "portable", "--threads", "2")
    assert one["determinism"]["environment"]["ATEN_CPU_CAPABILITY"] == "default"
    assert one["accelerator"]["cpu_capability"] == "DEFAULT"
    model = "checkpoints/model.pt"
    assert one["outputs"]["files"][model] == two["outputs"]["files"][model]


def test_runtime_flags_inside_the_container(example: Path) -> None:
    script = (
        "import torch; print('FLAGS', torch.are_deterministic_algorithms_enabled(), "
        "torch.backends.cudnn.benchmark, torch.get_num_threads(), "
        "torch.get_float32_matmul_precision(), torch.initial_seed())"
    )
    code, record, text = run(example, "--seed", "5", "--", "python", "-c", script)
    assert code == 0, text
    assert "FLAGS True False 2 highest 5" in text
    assert record["command"] == ["python", "-c", script]


INTERFACES = "import socket; print(sorted(name for _, name in socket.if_nameindex()))"
DOWNLOAD = "import urllib.request; urllib.request.urlopen('http://example.com', timeout=5)"


def test_a_run_without_network_has_loopback_only_and_says_why_a_download_failed(
    example: Path, tmp_path: Path
) -> None:
    code, doc, text = run(example, "--", "python", "-c", INTERFACES)  # network: false
    assert code == 0 and "in the cpu image with no network" in text
    assert "['lo']" in text and doc["network"] == "none"
    code, doc, text = run(example, "--", "python", "-c", DOWNLOAD)
    assert code == 1 and doc["status"] == "failed"
    assert (
        "warning: the run has no network (experiment.network: false in toolkit.yaml) and its "
        "output says 'Temporary failure in name resolution'"
    ) in text

    online = copy_of(example, tmp_path / "online")
    config = online / "toolkit.yaml"
    config.write_text(config.read_text().replace("network: false", "network: true"))
    code, doc, text = run(online, "--", "python", "-c", INTERFACES)
    assert code == 0 and "eth0" in text and doc["network"] == "bridge"


def test_failing_experiment_passes_its_exit_code(example: Path) -> None:
    code, record, _ = run(example, "--", "python", "-c", "import sys; sys.exit(4)")
    assert code == 4
    assert record["status"] == "failed" and record["exit_code"] == 4


def test_command_not_found_in_the_image_fails_with_127(example: Path) -> None:
    code, record, text = run(example, "--", "no-such-program-xyz")
    assert code == 127
    assert record["status"] == "failed" and record["exit_code"] == 127
    assert "no-such-program-xyz" in text
    assert "exit 127: the command was not found: check its name and PATH" in text


def test_a_script_whose_interpreter_the_image_lacks_is_said_so(
    example: Path, tmp_path: Path
) -> None:
    project = copy_of(example, tmp_path / "shebang")
    script = project / "examples" / "quickstart" / "old.py"  # experiment.workdir
    script.write_text("#!/usr/bin/python2.7\nprint('hello')\n")
    script.chmod(0o755)
    code, record, text = run(project, "--", "./old.py")
    assert code == 127 and record["status"] == "failed"
    assert (
        "exit 127: ./old.py is there, but its interpreter is not in the image "
        "(#!/usr/bin/python2.7): fix the script's #! line"
    ) in text


def test_outputs_the_run_never_wrote_are_said_and_leave_nothing_in_the_project(
    example: Path, tmp_path: Path
) -> None:
    """Declared outputs are mounted over paths in the project: the empty files and folders
    made for them stayed there, new code to git and to the next run's record."""
    project = copy_of(example, tmp_path / "unwritten")
    config = project / "toolkit.yaml"
    config.write_text(
        config.read_text()
        .replace("command: python train.py --epochs 4", "command: python -c pass")
        .replace("outputs: [checkpoints/]", "outputs: [out/, model.pt, ck/sub/x.bin]")
        .replace("file: metrics.jsonl", "file: m2.jsonl")
    )
    workdir = project / "examples" / "quickstart"
    before = sorted(p.name for p in workdir.iterdir())
    code, _, text = run(project)
    assert code == 0, text
    assert (
        "warning: the run wrote nothing in out/, model.pt, ck/sub/x.bin (experiment.outputs), "
        "so the record holds no output there: are the paths right? (relative to "
        "experiment.workdir, examples/quickstart)"
    ) in text
    assert sorted(p.name for p in workdir.iterdir()) == before


def test_a_run_that_ends_leaves_the_outputs_of_one_still_running_mounted(
    example: Path, tmp_path: Path
) -> None:
    """The first run to end took away the mount targets it had made in the project, and with
    them the mount of the second run's outputs: its checkpoint could not be written."""
    import time

    project = copy_of(example, tmp_path / "overlap")
    assert not (project / "examples" / "quickstart" / "checkpoints").exists()
    short = "import time; time.sleep(2)"
    long = "import time; time.sleep(6); open('checkpoints/m.pt', 'w').write('w')"
    first = subprocess.Popen(run_python_argv(short), cwd=project, stderr=subprocess.PIPE)
    time.sleep(1)
    second = subprocess.Popen(run_python_argv(long), cwd=project, stderr=subprocess.PIPE)
    try:
        assert first.wait(timeout=120) == 0
        assert second.wait(timeout=120) == 0, second.communicate()[1]
    finally:
        first.kill()
        second.kill()
    records = [json.loads(p.read_text()) for p in (project / "runs").glob("*/record.json")]
    written = [r for r in records if "checkpoints/m.pt" in r["outputs"]["files"]]
    assert len(records) == 2 and len(written) == 1


def test_a_rename_over_a_declared_output_file_is_explained(example: Path, tmp_path: Path) -> None:
    project = copy_of(example, tmp_path / "replace")
    config = project / "toolkit.yaml"
    config.write_text(config.read_text().replace("outputs: [checkpoints/]", "outputs: [model.pt]"))
    save = "import os; open('model.pt.tmp', 'w').write('w'); os.replace('model.pt.tmp', 'model.pt')"
    code, record, text = run(project, "--", "python", "-c", save)
    assert code == 1 and record["status"] == "failed"
    assert "Device or resource busy" in text
    assert (
        "warning: the run's output says 'Device or resource busy': a declared output file "
        "(model.pt, metrics.jsonl) is bound into the container"
    ) in text


def test_data_linked_from_outside_the_project_is_said_to_be_out_of_the_containers_sight(
    example: Path, tmp_path: Path
) -> None:
    project = copy_of(example, tmp_path / "linked")
    data = project / "examples" / "quickstart" / "data"
    shutil.move(data, tmp_path / "elsewhere")
    data.symlink_to(tmp_path / "elsewhere")
    code, record, text = run(project, "--", "python", "-c", "open('data/train.csv')")
    assert code == 1 and "FileNotFoundError" in text
    assert record["data"]["files"]  # fingerprinted on this machine
    assert (
        "warning: experiment.data data/ links outside the project, which is all the container "
        "sees of this machine"
    ) in text


def test_gpus_on_an_engine_without_nvidias_hook_say_what_to_install(example: Path) -> None:
    if "nvidia" in engine.info().runtimes:
        pytest.skip("this engine can pass GPUs to containers")
    from toolkit.config import load_config
    from toolkit.errors import UserError
    from toolkit.image import current_image

    cfg = load_config(example / "toolkit.yaml")
    ref, _ = current_image(cfg, cfg.target("cpu"))
    spec = engine.ContainerSpec(ref, ("true",), (), {}, "/", "1000:1000", gpus="all")
    with pytest.raises(UserError) as refused:
        engine.run_container(spec, {}, on_stdout=print, on_stderr=print)
    assert refused.value.hint is not None and "NVIDIA Container Toolkit" in refused.value.hint


def test_two_runs_at_once_keep_their_own_outputs(example: Path) -> None:
    """Both write the experiment's metrics file at once; each record keeps its own."""
    script = (
        "import sys, time; open('metrics.jsonl', 'w').write("
        '\'{"step": 0, "val_loss": %s}\\n\' % sys.argv[1]); time.sleep(2)'
    )
    argv = run_python_argv(script)
    procs = [
        subprocess.Popen([*argv, value], cwd=example, stderr=subprocess.PIPE, text=True)
        for value in ("1.5", "2.5")
    ]
    outs = [p.communicate(timeout=120)[1] for p in procs]  # toolkit's lines are on stderr
    assert [p.returncode for p in procs] == [0, 0], outs
    ids = [out.split("✓ ", 1)[1].split(":", 1)[0] for out in outs]
    assert ids[0] != ids[1]
    records = [json.loads((example / "runs" / i / "record.json").read_text()) for i in ids]
    assert [r["metrics"]["primary_final"] for r in records] == [1.5, 2.5]


def test_runs_that_wrote_nothing_have_nothing_to_compare(example: Path, tmp_path: Path) -> None:
    """The empty files made for the mounts of declared outputs (metrics.jsonl) were the runs'
    outputs: two runs printing different random numbers were "identical", exit 0."""
    project = copy_of(example, tmp_path / "p")
    ids = []
    for _ in range(2):
        code, record, text = run(project, "--", "bash", "-c", "echo random: $RANDOM")
        assert code == 0, text
        assert record["outputs"]["files"] == {}, record["outputs"]
        ids.append(record["id"])
    assert not (project / "runs" / ids[0] / "outputs" / "metrics.jsonl").exists()
    compared = toolkit("diff", *ids, cwd=project)
    assert compared.returncode == 2, compared.stdout + compared.stderr
    assert "nothing to compare" in compared.stdout + compared.stderr
    program = "open('metrics.jsonl', 'w').write('{\"step\": 0, \"val_loss\": 1}')"
    code, record, text = run(project, "--", "python", "-c", program)
    assert code == 0, text
    assert list(record["outputs"]["files"]) == ["metrics.jsonl"]  # written: an output


def test_op_without_deterministic_kernel_is_named(example: Path) -> None:
    script = "import torch; torch.zeros(3).put_(torch.tensor([0]), torch.tensor([1.0]))"
    code, record, text = run(example, "--", "python", "-c", script)
    assert code == 1
    ops = record["determinism"]["nondeterministic_ops"]
    assert [o["mode"] for o in ops] == ["raised"] and "put_" in ops[0]["op"]
    assert text.count("--no-strict") == 1, text  # said once, by the launcher
    code, record, text = run(example, "--no-strict", "--", "python", "-c", script)
    assert code == 0
    assert [o["mode"] for o in record["determinism"]["nondeterministic_ops"]] == ["warned"]
    assert "warning: ops without a deterministic implementation ran: put_" in text


def test_repro_check_identical_then_thread_variation_differs(example: Path) -> None:
    same = toolkit("repro-check", "--runs", "2", cwd=example)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "reproducible on cpu (2 runs, all identical)" in same.stdout
    # two runs: with one, the run-to-run noise is unknown and no variation is named a cause
    varied = toolkit("repro-check", "--runs", "2", "--vary", "threads=1,2", "--json", cwd=example)
    assert varied.returncode == 1
    doc = json.loads(varied.stdout[varied.stdout.index("{") :])
    assert doc["summary"] == (
        "reproducible on cpu (2 runs, all identical); thread count changes results (threads=1)"
    )
    gap = next(p for p in doc["pairs"] if p["group"] == "cpu threads=1")
    assert gap["verdict"] == "diverged" and gap["first_divergence"][1] >= 0
    same_threads = next(p for p in doc["pairs"] if p["group"] == "cpu threads=2")
    assert same_threads["verdict"] == "identical"


def test_missing_image_points_to_build(tmp_path: Path) -> None:
    (tmp_path / "lockfiles").mkdir()
    (tmp_path / "lockfiles" / "cpu.txt").write_text("# nothing built from this yet\n")
    (tmp_path / "toolkit.yaml").write_text(
        "name: tk-unbuilt\ntargets: {cpu: {}}\nexperiment: {command: python -V}\n"
    )
    result = toolkit("run", cwd=tmp_path)
    assert result.returncode == 1
    assert "no image for target cpu" in result.stderr
    assert "toolkit build --target cpu` (`toolkit run --build` builds it first)" in result.stderr


def test_missing_image_of_a_lockfile_toolkit_did_not_write_points_to_lock(
    tmp_path: Path,
) -> None:
    (tmp_path / "requirements.in").write_text("six\n")
    (tmp_path / "lockfiles").mkdir()
    (tmp_path / "lockfiles" / "cpu.txt").write_text("six==1.17.0\n")  # by hand: no header
    (tmp_path / "toolkit.yaml").write_text(
        "name: tk-unlocked\ntargets: {cpu: {}}\nexperiment: {command: python -V}\n"
    )
    result = toolkit("run", cwd=tmp_path)  # `toolkit build`, the hint it gave, fails on this
    assert result.returncode == 1
    assert "lockfile cpu.txt of target cpu: has no toolkit header" in result.stderr
    assert "run `toolkit lock --target cpu`, then `toolkit build --target cpu`" in result.stderr


def test_shell_runs_a_command_with_the_run_settings(example: Path) -> None:
    script = (
        "import os, torch; "
        "print('SHELL', os.getcwd(), torch.get_num_threads(), os.environ['PYTHONHASHSEED'])"
    )
    result = toolkit("shell", "--", "python", "-c", script, cwd=example)
    assert result.returncode == 0, result.stderr
    assert "SHELL /project/examples/quickstart 2 0" in result.stdout
    failed = toolkit("shell", "--", "sh", "-c", "exit 3", cwd=example)
    assert failed.returncode == 3
    # no launcher reads a record after a shell's command: the runtime says what to do itself
    put = "import torch; torch.zeros(3).put_(torch.tensor([0]), torch.tensor([1.0]))"
    stopped = toolkit("shell", "--", "python", "-c", put, cwd=example)
    assert stopped.returncode == 1
    assert "toolkit: put_ has no deterministic implementation" in stopped.stderr


def test_stdout_is_the_containers_alone(example: Path) -> None:
    result = toolkit("run", "--", "python", "-c", "print('only this')", cwd=example)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "only this\n"


def test_a_stale_lockfile_is_said_by_the_run_and_by_a_missing_image(
    example: Path, tmp_path: Path
) -> None:
    copy = copy_of(example, tmp_path / "copy")
    with (copy / "requirements.in").open("a") as requirements:
        requirements.write("six\n")  # not locked yet; the lockfile (and so the image) as it was
    result = toolkit("run", "--", "python", "-c", "pass", cwd=copy)
    assert result.returncode == 0, result.stderr
    assert (
        "warning: lockfile lockfiles/cpu.txt: requirements.in changed since the lock was "
        "written, so this run used the packages of the old lock" in result.stderr
    )
    (folder,) = (copy / "runs").iterdir()
    assert json.loads((folder / "record.json").read_text())["lockfile"]["state"] == "stale"

    with (copy / "lockfiles" / "cpu.txt").open("a") as lockfile:
        lockfile.write("# edited by hand\n")  # a tag no image has
    missing = toolkit("run", "--", "python", "-c", "pass", cwd=copy)
    assert missing.returncode == 1
    assert "lockfile cpu.txt of target cpu: requirements.in changed" in missing.stderr
    assert "run `toolkit lock --target cpu`, then `toolkit build --target cpu`" in missing.stderr


def test_ctrl_c_stops_the_container_and_records_it(example: Path, tmp_path: Path) -> None:
    from tests.integration.test_run_native import interrupt_run

    copy_of(example, tmp_path / "copy")
    ended = interrupt_run(tmp_path / "copy")
    assert ended.code == 130
    assert ended.record["status"] == "interrupted"
    run_label = f"io.toolkit.run={ended.record['id']}"
    assert engine.client().containers.list(filters={"label": run_label}) == []


def test_what_a_stopped_container_prints_on_its_way_out_is_shown_and_logged(
    example: Path, tmp_path: Path
) -> None:
    from tests.integration.test_run_native import SAVING, interrupt_run

    copy_of(example, tmp_path / "copy")
    ended = interrupt_run(tmp_path / "copy", handler=SAVING)
    assert ended.code == 130 and ended.record["status"] == "interrupted"
    assert "SAVING 2" in ended.stdout and "SAVED" in ended.stderr  # Ctrl-C: SIGINT
    folder = tmp_path / "copy" / "runs" / ended.record["id"]
    assert "SAVING 2" in (folder / "stdout.log").read_text()
    assert "SAVED" in (folder / "stderr.log").read_text()


def test_a_container_run_whose_reader_left_goes_on_to_its_end(
    example: Path, tmp_path: Path
) -> None:
    from tests.integration.test_run_native import run_into_a_closed_pipe

    copy_of(example, tmp_path / "copy")
    code, stderr, record = run_into_a_closed_pipe(tmp_path / "copy")
    assert (code, record["status"]) == (0, "succeeded"), stderr
    assert "Traceback" not in stderr and "error" not in stderr


def test_all_a_stopped_container_prints_reaches_a_slow_reader(
    example: Path, tmp_path: Path
) -> None:
    """20,000 lines on the way out, read by a pipe that drains slowly: all of them shown and
    logged (the output was cut when the container ended before toolkit had read it all)."""
    import signal
    import time

    program = (
        "import signal, sys, time\n"
        "def leave(signum, frame):\n"
        "    for i in range(20_000): print('bye', i)\n"
        "    print('DONE', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGINT, leave)\n"
        "print('READY', flush=True); time.sleep(60)\n"
    )
    copy = copy_of(example, tmp_path / "copy")
    argv = run_python_argv(program)
    proc = subprocess.Popen(argv, cwd=copy, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"READY\n"
    proc.send_signal(signal.SIGINT)
    shown = b""
    while chunk := proc.stdout.read1(16384):  # type: ignore[attr-defined]
        shown += chunk
        time.sleep(0.05)  # ~0.6 s for all of it: longer than the engine takes to stop it
    assert proc.wait(timeout=60) == 130
    assert shown.count(b"bye ") == 20_000 and shown.endswith(b"DONE\n")
    (folder,) = (copy / "runs").iterdir()
    assert (folder / "stdout.log").read_bytes() == b"READY\n" + shown


def test_a_container_run_whose_stdout_is_full_goes_on_to_its_end(
    example: Path, tmp_path: Path
) -> None:
    from tests.integration.test_run_native import run_into_a_full_disk

    copy_of(example, tmp_path / "copy")
    code, stderr, record = run_into_a_full_disk(tmp_path / "copy")
    assert (code, record["status"]) == (0, "succeeded"), stderr
    assert "cannot write to stdout (No space left on device)" in stderr


def test_two_presses_at_once_stop_a_container_run_cleanly(example: Path, tmp_path: Path) -> None:
    from tests.integration.test_run_native import interrupt_run

    for attempt in range(4):
        copy = copy_of(example, tmp_path / f"copy{attempt}")
        ended = interrupt_run(copy, presses=2, gap=0)
        assert ended.code == 130 and ended.record["status"] == "interrupted", ended.stderr
        assert ended.seconds < 8  # stopped, not waited out (the program sleeps 120 s)
        run_label = f"io.toolkit.run={ended.record['id']}"
        assert engine.client().containers.list(filters={"label": run_label}) == []


def test_ctrl_c_again_kills_a_container_that_will_not_stop(example: Path, tmp_path: Path) -> None:
    from tests.integration.test_run_native import STUBBORN, interrupt_run

    copy_of(example, tmp_path / "copy")
    # Ctrl-C: SIGINT; again: SIGTERM; again: SIGKILL (each without waiting the 10 s between)
    ended = interrupt_run(tmp_path / "copy", handler=STUBBORN, presses=3)
    assert ended.code == 130 and ended.record["status"] == "interrupted"
    assert ended.seconds < 8  # not the 20 s a single press gives it before SIGKILL
    run_label = f"io.toolkit.run={ended.record['id']}"
    assert engine.client().containers.list(filters={"label": run_label}) == []


@pytest.mark.parametrize("delay", [0, 0.03, 0.1, 0.2])
def test_ctrl_c_while_the_container_starts_leaves_a_record_or_nothing(
    example: Path, tmp_path: Path, delay: float
) -> None:
    from tests.integration.test_run_native import ctrl_c_during_start

    copy_of(example, tmp_path / "copy")
    folder = ctrl_c_during_start(tmp_path / "copy", "toolkit-start-probe", delay)
    if folder is not None:
        assert json.loads((folder / "record.json").read_text())["status"] == "interrupted"
    project = f"io.toolkit.project={load_config(tmp_path / 'copy' / 'toolkit.yaml').name}"
    left = engine.client().containers.list(all=True, filters={"label": project})
    # this copy's: another copy of the example may be running beside the tests
    mine = [c for c in left if any(str(tmp_path) in m["Source"] for m in c.attrs["Mounts"])]
    assert mine == []


def test_ctrl_c_while_huge_outputs_are_hashed_keeps_the_record(
    example: Path, tmp_path: Path
) -> None:
    from tests.integration.test_run_native import ctrl_c_when_finishing

    copy = copy_of(example, tmp_path / "copy")
    write = "open('checkpoints/huge.pt', 'wb').truncate(256 * 2**30)"  # sparse: no disk used
    finished = ctrl_c_when_finishing(copy, "run", "--", "python", "-c", write)
    assert finished.returncode == 0, finished.stderr  # the experiment itself succeeded
    assert "the record is incomplete, without: outputs" in finished.stderr
    (folder,) = (copy / "runs").iterdir()
    doc = json.loads((folder / "record.json").read_text())
    assert doc["incomplete"] == ["outputs"] and doc["outputs"] is None
    assert doc["code"] is not None and doc["data"]["files"]  # the facts were in by then


BUFFERED_METRICS = (  # a training loop that writes its metrics buffered, never flushing them
    "import json, os, time\n"
    "metrics = open('metrics.jsonl', 'w')\n"
    "print('READY', 6 * 7, os.getpid(), flush=True)\n"
    "for step in range(100_000):\n"
    "    metrics.write(json.dumps({'step': step, 'val_loss': 1 / (step + 1)}) + '\\n')\n"
    "    print('wrote step', step, flush=True)\n"
    "    time.sleep(0.1)\n"
)


def test_ctrl_c_lets_a_container_program_flush_its_files_and_run_its_exit_hooks(
    example: Path, tmp_path: Path
) -> None:
    """What the program wrote before Ctrl-C is kept, as on a terminal: SIGTERM first (`docker
    stop`) killed Python with its metrics still in its buffer, and no exit hook ran."""
    import signal
    import time

    copy = copy_of(example, tmp_path / "copy")  # metrics.jsonl: the example's metrics file
    proc = subprocess.Popen(
        run_python_argv(BUFFERED_METRICS),
        cwd=copy,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("READY 42"), first
    time.sleep(2)  # ~20 steps: a few hundred bytes, far from filling the file's buffer
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    (folder,) = (copy / "runs").iterdir()
    shown = (folder / "stdout.log").read_text().splitlines()  # all it printed, as shown
    printed = [int(line.split()[2]) for line in shown if line.startswith("wrote step")]
    assert len(printed) >= 10, shown
    doc = json.loads((folder / "record.json").read_text())
    assert doc["status"] == "interrupted" and doc["exit_code"] == 130  # as the container ended
    lines = (folder / "outputs" / "metrics.jsonl").read_text().splitlines()
    written = [json.loads(line)["step"] for line in lines]
    # every step it printed, in order; one more if Ctrl-C came between a write and its print
    assert written[: len(printed)] == printed and len(written) - len(printed) in (0, 1)
    assert doc["metrics"]["primary_final"] == 1 / (written[-1] + 1)  # the record reads them all
    in_container_pid = int(first.split()[2])
    report = json.loads((folder / "runtime" / f"{in_container_pid}.json").read_text())
    assert report["final"] is True  # written by the runtime's atexit hook, on the way out


def test_ctrl_c_reaches_python_behind_a_shell_in_the_container(
    example: Path, tmp_path: Path
) -> None:
    """`sh -c "python ...; echo after"`: the shell does not pass SIGINT on; the whole
    process group gets it, as on a terminal."""
    import shlex
    import signal
    import time

    copy = copy_of(example, tmp_path / "copy")
    script = f"python -c {shlex.quote(BUFFERED_METRICS)}; echo after"
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolkit", "run", "--", "sh", "-c", script],
        cwd=copy,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("READY 42")
    time.sleep(2)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert time.monotonic() - started < 8  # not the 10 s before SIGTERM
    (folder,) = (copy / "runs").iterdir()
    shown = (folder / "stdout.log").read_text().splitlines()
    printed = [int(line.split()[2]) for line in shown if line.startswith("wrote step")]
    lines = (folder / "outputs" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) >= len(printed) >= 10  # flushed by Python on its way out


def test_ctrl_c_stops_a_container_program_that_ignores_it_with_sigterm(
    example: Path, tmp_path: Path
) -> None:
    from tests.integration.test_run_native import interrupt_run

    ignores_sigint = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "def leave(signum, frame):\n"
        "    print('SAVING', signum, flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, leave)\n"
    )
    copy_of(example, tmp_path / "copy")
    ended = interrupt_run(tmp_path / "copy", handler=ignores_sigint)  # one press
    assert ended.code == 130 and ended.record["status"] == "interrupted"
    assert "SAVING 15" in ended.stdout  # SIGTERM, once SIGINT's 10 s were up
    assert 9 < ended.seconds < 19  # and before SIGKILL, 10 s later
    said = [line for line in ended.stderr.splitlines() if line.startswith("stopping:")]
    assert said == [  # the user hears that Ctrl-C was heard, and what comes next
        "stopping: SIGINT sent; SIGTERM in 10 s (Ctrl-C again sends it now)",
        "stopping: SIGTERM sent; SIGKILL in 10 s (Ctrl-C again sends it now)",
    ]
    run_label = f"io.toolkit.run={ended.record['id']}"
    assert engine.client().containers.list(filters={"label": run_label}) == []
