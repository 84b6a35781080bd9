"""`toolkit run` against plain `docker run` of the same image, in the same run: overhead ratios.

Two numbers, each against a baseline measured here and now (issue 5), in a throwaway copy of the
example project (a fresh git repository: toolkit reads the commit), so the repo's runs/ stays as
it is; the image tag is content-addressed, so the copy finds the repo's CPU image:

- (a) wall time of `toolkit run --target cpu -- python -c pass` against `docker run --rm IMAGE
  python -c pass` (with `--network none` where the experiment has no network, as toolkit's
  container then has none): median of --repeats interleaved rounds of whole processes, after
  one dropped warm-up round. A third row, `docker run` with the very container toolkit starts
  (mounts, environment with the runtime, --init, user), splits the overhead into what happens
  in the container and what the launcher costs. Both commands are then timed again on a terminal (a
  pty), as a user types them: toolkit colors its lines there (the goal is read off the first);
- (b) training steps/s of the example under `toolkit run` (train.py as it is, plus a timer around
  the training loop) against the same script with the same determinism settings written into it
  by hand (seeds, deterministic algorithms, cuDNN/TF32 flags, threads, DataLoader num_workers=0
  with a seeded generator; the policy's environment passed with `docker run -e`), run by plain
  `docker run`: median of --train-repeats interleaved runs, steps/s timed inside the script.

    .venv/bin/python benchmarks/run.py [--repeats 15] [--train-repeats 3] [--epochs 20]

Goals: (a) toolkit / docker run <= 1.2x; (b) toolkit / by hand >= 0.98x.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit import engine, image  # noqa: E402
from toolkit.config import Config, load_config  # noqa: E402
from toolkit.run import CONTAINER_PROJECT, CONTAINER_RUN_DIR, CONTAINER_RUNTIME  # noqa: E402
from toolkit.runtime.policy import POLICY_VAR, Policy, environment  # noqa: E402

OVERHEAD_GOAL = 1.2
STEPS_GOAL = 0.98
NOISY = 1.3  # max / min of one measure's rounds above which the machine was likely busy
TARGET = "cpu"
PROJECT_FILES = ("toolkit.yaml", "requirements.in", "lockfiles", "examples")
TRIVIAL = ["python", "-c", "pass"]
_BENCH = re.compile(r"^BENCH steps=(\d+) seconds=([0-9.]+) epoch=([0-9.]+)$", re.MULTILINE)

# Edits to examples/quickstart/train.py: (anchor, replacement), each anchor found exactly once.
# The loop's steps/s is the measure; the median over epochs (the first, warming up, left out) of
# each epoch's training steps/s is printed beside it: a burst of other load moves it less.
TIMER = (
    ("import torch\n", "import statistics\nimport time\n\nimport torch\n"),
    ("    step = 0\n", "    step = 0\n    bench_start, bench_epochs = time.perf_counter(), []\n"),
    (
        "            model.train()\n",
        "            model.train()\n"
        "            epoch_start, epoch_step = time.perf_counter(), step\n",
    ),
    (
        "            model.eval()\n",
        "            epoch_seconds = time.perf_counter() - epoch_start\n"
        "            bench_epochs.append((step - epoch_step) / epoch_seconds)\n"
        "            model.eval()\n",
    ),
    (
        '    Path("checkpoints").mkdir(exist_ok=True)\n',
        "    bench_seconds = time.perf_counter() - bench_start\n"
        "    bench_epoch = statistics.median(bench_epochs[1:] or bench_epochs)\n"
        '    print(f"BENCH steps={step} seconds={bench_seconds:.6f} epoch={bench_epoch:.3f}")\n'
        '    Path("checkpoints").mkdir(exist_ok=True)\n',
    ),
)
BY_HAND_FLAGS = """
# Determinism by hand: what toolkit's runtime applies, written into the script.
import random

import numpy

SEED, THREADS = {seed}, {threads}
random.seed(SEED)
numpy.random.seed(SEED)
torch.manual_seed(SEED)
torch.use_deterministic_algorithms(True)
torch.backends.cudnn.deterministic = True
torch.backends.cudnn.benchmark = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
torch.set_num_threads(THREADS)
torch.set_num_interop_threads(THREADS)
torch.backends.mkldnn.deterministic = True
torch.utils.deterministic.fill_uninitialized_memory = True
for owner in (
    torch.backends.cuda.matmul,
    torch.backends.mkldnn,
    torch.backends.mkldnn.matmul,
    torch.backends.mkldnn.conv,
    torch.backends.mkldnn.rnn,
):
    if hasattr(owner, "fp32_precision"):  # torch >= 2.9
        owner.fp32_precision = "ieee"
"""


def by_hand(seed: int, threads: int) -> tuple[tuple[str, str], ...]:
    """Edits that set the policy in train.py itself: flags after the imports, loader fixed."""
    imports = "from torch.utils.data import DataLoader, TensorDataset\n"
    flags = BY_HAND_FLAGS.format(seed=seed, threads=threads)
    return (
        (imports, imports + flags),
        ("num_workers=2)", "num_workers=0, generator=torch.Generator().manual_seed(SEED))"),
    )


def edit(text: str, edits: tuple[tuple[str, str], ...]) -> str:
    for anchor, replacement in edits:
        if text.count(anchor) != 1:
            sys.exit(f"train.py changed: {anchor.strip()!r} is not there once; update {__file__}")
        text = text.replace(anchor, replacement)
    return text


def copy_project(dest: Path) -> Config:
    """The example project, copied into a new git repository with one commit."""
    dest.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)
    git = ["git", "-C", str(dest), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench"]):
        subprocess.run([*git, *argv], capture_output=True, check=True)
    return load_config(dest / "toolkit.yaml")


# As an installed toolkit runs: from bytecode cached on its first run (an editable install under
# PYTHONDONTWRITEBYTECODE would compile every module of toolkit on every start).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(argv: list[str], cwd: Path) -> tuple[float, str]:
    """Run a whole process to its end: (wall time, stdout); exit with its output on failure."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:8])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def on_terminal(argv: list[str], cwd: Path) -> float:
    """Wall time of a whole process whose stdout and stderr are a terminal (a pty), as when a
    user types the command: toolkit colors its lines there."""
    leader, follower = pty.openpty()
    started = time.perf_counter()
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env={**ENV, "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    ) as process:
        os.close(follower)
        with contextlib.suppress(OSError):  # EIO once the process has closed its side
            while os.read(leader, 65536):
                pass
        code = process.wait()
    elapsed = time.perf_counter() - started
    os.close(leader)
    if code != 0:
        sys.exit(f"{' '.join(argv[:8])} failed on a terminal (exit {code})")
    return elapsed


def steps_per_second(stdout: str) -> tuple[float, float]:
    """(steps/s of the whole training loop, median steps/s of an epoch) from the BENCH line."""
    found = _BENCH.search(stdout)
    if found is None:
        sys.exit(f"no BENCH line in the training's output:\n{stdout[-2000:]}")
    return int(found[1]) / float(found[2]), float(found[3])


def docker_run(
    ref: str, command: list[str], *, env: dict[str, str], options: list[str]
) -> list[str]:
    argv = ["docker", "run", "--rm", *options]
    for name, value in env.items():
        argv += ["--env", f"{name}={value}"]
    return [*argv, ref, *command]


def same_container(cfg: Config, ref: str, run_dir: Path) -> list[str]:
    """`docker run` of the container `toolkit run` starts: its mounts, environment and user."""
    bundles = sorted((cfg.root / ".toolkit" / "runtime").glob("*/sitecustomize.py"))
    if not bundles:
        sys.exit("toolkit run left no runtime bundle in the project copy")
    env = environment(policy_of(cfg))
    env[POLICY_VAR] = policy_of(cfg).to_json()
    env.update(
        TOOLKIT_RUN_DIR=CONTAINER_RUN_DIR,
        PYTHONPATH=CONTAINER_RUNTIME,
        HOME="/tmp",
        TINI_KILL_PROCESS_GROUP="1",
    )
    workdir = f"{CONTAINER_PROJECT}/{cfg.experiment.workdir if cfg.experiment else '.'}"
    workdir = workdir.rstrip("/.")
    mounts = [
        f"type=bind,source={cfg.root},target={CONTAINER_PROJECT}",
        f"type=bind,source={run_dir},target={CONTAINER_RUN_DIR}",
        f"type=bind,source={bundles[-1].parent},target={CONTAINER_RUNTIME},readonly",
    ]
    if cfg.experiment:  # each run's outputs are bound over the paths the experiment writes
        declared = [*cfg.experiment.outputs, cfg.experiment.metrics.file or ""]
        for rel in filter(None, declared):
            host_side = run_dir / "outputs" / rel
            if rel.endswith("/"):
                host_side.mkdir(parents=True, exist_ok=True)
            else:
                host_side.parent.mkdir(parents=True, exist_ok=True)
                host_side.touch()
            mounts.append(f"type=bind,source={host_side},target={workdir}/{rel.rstrip('/')}")
    options = ["--init", "--user", f"{os.getuid()}:{os.getgid()}", "--workdir", workdir]
    options += network(cfg)
    for mount in mounts:
        options += ["--mount", mount]
    return docker_run(ref, TRIVIAL, env=env, options=options)


def network(cfg: Config) -> list[str]:
    """The network option of the container `toolkit run` starts (experiment.network): every
    baseline gets it too, since a container without one starts faster."""
    return [] if cfg.experiment is None or cfg.experiment.network else ["--network", "none"]


def policy_of(cfg: Config) -> Policy:
    return Policy(**{name: getattr(cfg.determinism, name) for name in Policy.FIELDS})


def median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    # Rounds vary by ±10 ms on a busy 2-core machine, 3% of the baseline: fewer would decide
    # the goal by chance.
    parser.add_argument("--repeats", type=int, default=15, help="rounds for (a)")
    parser.add_argument(
        "--train-repeats", type=int, default=3, help="training runs for (b); 0 skips (b)"
    )
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each training run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        cfg = copy_project(Path(tmp) / "project")
        project = cfg.root
        ref = image.plan(cfg, cfg.target(TARGET)).ref
        if engine.image(ref) is None:
            sys.exit(f"{ref} is not built: run `.venv/bin/toolkit build --target {TARGET}` first")
        toolkit_run = [*toolkit_command(), "run", "--target", TARGET, "--"]
        plain = docker_run(ref, TRIVIAL, env={}, options=network(cfg))
        scratch_run_dir = Path(tmp) / "run"
        scratch_run_dir.mkdir()

        # (a) the warm-up round (dropped) also reads the image's packages once into toolkit's
        # cache and writes the runtime bundle, as the first run in a project does.
        run([*toolkit_run, *TRIVIAL], project)
        same = same_container(cfg, ref, scratch_run_dir)
        run(plain, project)
        run(same, project)
        times: dict[str, list[float]] = {
            "plain": [],
            "same": [],
            "toolkit": [],
            "plain on a terminal": [],
            "toolkit on a terminal": [],
        }
        # what a user would type, with the engine's default network: for context when the
        # experiment has none (a container without one starts ~50 ms faster)
        bridged = docker_run(ref, TRIVIAL, env={}, options=[]) if network(cfg) else None
        if bridged:
            times["default network"] = []
        for _ in range(args.repeats):
            if bridged:
                times["default network"].append(run(bridged, project)[0])
            times["plain"].append(run(plain, project)[0])
            times["same"].append(run(same, project)[0])
            times["toolkit"].append(run([*toolkit_run, *TRIVIAL], project)[0])
            times["plain on a terminal"].append(on_terminal(plain, project))
            times["toolkit on a terminal"].append(on_terminal([*toolkit_run, *TRIVIAL], project))

        loop: dict[str, list[float]] = {"toolkit": [], "hand": []}
        epoch: dict[str, list[float]] = {"toolkit": [], "hand": []}
        if args.train_repeats > 0:
            training(cfg, ref, toolkit_run, args, loop, epoch)

    report(ref, " ".join(["docker run --rm", *network(cfg), "IMAGE"]), args, times, loop, epoch)


def toolkit_command() -> list[str]:
    """`toolkit` as a user types it: the console script beside this Python, else `-m toolkit`."""
    script = Path(sys.executable).parent / "toolkit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "toolkit"]


def training(
    cfg: Config,
    ref: str,
    toolkit_run: list[str],
    args: argparse.Namespace,
    loop: dict[str, list[float]],
    epoch: dict[str, list[float]],
) -> None:
    """(b): steps/s of the example under toolkit run and with the flags written by hand."""
    project = cfg.root
    quickstart = project / "examples" / "quickstart"
    original = (quickstart / "train.py").read_text(encoding="utf-8")
    (quickstart / "bench_train.py").write_text(edit(original, TIMER), encoding="utf-8")
    hand_edits = by_hand(cfg.determinism.seed, cfg.determinism.threads)
    (quickstart / "bench_train_by_hand.py").write_text(
        edit(edit(original, TIMER), hand_edits), encoding="utf-8"
    )
    epochs = ["--epochs", str(args.epochs)]
    hand = docker_run(
        ref,
        ["python", "bench_train_by_hand.py", *epochs],
        env=environment(policy_of(cfg)),
        options=[
            *network(cfg),
            "--user",
            f"{os.getuid()}:{os.getgid()}",
            "--mount",
            f"type=bind,source={project},target=/project",
            "--workdir",
            "/project/examples/quickstart",
        ],
    )
    trainings = {"toolkit": [*toolkit_run, "python", "bench_train.py", *epochs], "hand": hand}
    for round_ in range(args.train_repeats):
        # Alternate which goes first: neither always runs right after the other.
        for name in sorted(trainings, reverse=round_ % 2 == 1):
            whole, per_epoch = steps_per_second(run(trainings[name], project)[1])
            loop[name].append(whole)
            epoch[name].append(per_epoch)


def report(
    ref: str,
    baseline: str,
    args: argparse.Namespace,
    times: dict[str, list[float]],
    loop: dict[str, list[float]],
    epoch: dict[str, list[float]],
) -> None:
    plain_s, same_s, toolkit_s = (statistics.median(times[k]) for k in ("plain", "same", "toolkit"))
    overhead = toolkit_s / plain_s
    print(f"toolkit run vs docker run, image {ref}, {os.cpu_count()} CPUs")
    print(f"(a) `python -c pass`, wall time of whole processes, median of {args.repeats} rounds")
    print(f"    {baseline + ' (baseline)':<46}{median_ms(times['plain']):>9}")
    print(
        f"    {'docker run, toolkit container + runtime':<46}{median_ms(times['same']):>9}"
        f"  {same_s / plain_s:5.2f}x"
    )
    print(
        f"    {'toolkit run':<46}{median_ms(times['toolkit']):>9}  {overhead:5.2f}x"
        f"  goal <= {OVERHEAD_GOAL}x  {'ok' if overhead <= OVERHEAD_GOAL else 'MISSED'}"
        f"  (+{(toolkit_s - plain_s) * 1000:.0f} ms)"
    )
    if "default network" in times:
        bridged = statistics.median(times["default network"])
        print(
            f"    {'docker run --rm IMAGE (default network)':<46}"
            f"{median_ms(times['default network']):>9}  toolkit run is {toolkit_s / bridged:.2f}x"
            " of it (context: not the goal's baseline)"
        )
    plain_tty, toolkit_tty = (
        statistics.median(times[k]) for k in ("plain on a terminal", "toolkit on a terminal")
    )
    print(f"    {'on a terminal, as a user types it:':<46}")
    print(f"    {'  ' + baseline:<46}{median_ms(times['plain on a terminal']):>9}")
    print(
        f"    {'  toolkit run':<46}{median_ms(times['toolkit on a terminal']):>9}"
        f"  {toolkit_tty / plain_tty:5.2f}x  (+{(toolkit_tty - plain_tty) * 1000:.0f} ms)"
    )
    if loop["toolkit"]:
        training_report(args, loop, epoch)
    series = {
        **{f"{k} (s)": v for k, v in times.items()},
        **{f"{k} loop (steps/s)": v for k, v in loop.items() if v},
        **{f"{k} epoch (steps/s)": v for k, v in epoch.items() if v},
    }
    for name, values in series.items():
        spread = max(values) / min(values)
        noisy = f"  (spread {spread:.1f}x: other load on the machine?)" if spread > NOISY else ""
        print(f"    {name}: {' '.join(f'{v:.3f}' for v in values)}{noisy}")


def training_report(
    args: argparse.Namespace, loop: dict[str, list[float]], epoch: dict[str, list[float]]
) -> None:
    toolkit_rate, hand_rate = statistics.median(loop["toolkit"]), statistics.median(loop["hand"])
    speed = toolkit_rate / hand_rate
    epoch_speed = statistics.median(epoch["toolkit"]) / statistics.median(epoch["hand"])
    print(
        f"(b) example training, {args.epochs} epochs, median of {args.train_repeats} runs; "
        "steps/s of the loop, timed in the script (and of its median epoch)"
    )
    print(
        f"    {'flags by hand, docker run (baseline)':<46}{hand_rate:>9.1f}{'':8}"
        f"  ({statistics.median(epoch['hand']):.1f})"
    )
    print(
        f"    {'toolkit run (runtime)':<46}{toolkit_rate:>9.1f}  {speed:5.3f}x"
        f"  ({statistics.median(epoch['toolkit']):.1f}: {epoch_speed:.3f}x)"
        f"  goal >= {STEPS_GOAL}x  {'ok' if speed >= STEPS_GOAL else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
