"""`toolkit build` of the example CPU image against plain `docker build`, in the same run: ratios.

Three numbers, each against a baseline measured here and now (issue 4):

- (a) a no-op `toolkit build --target cpu` (the image is current) against `docker build` of the
  same rendered Dockerfile, labels and context with the classic builder toolkit drives, every
  layer cached: a first, dropped round fills the cache (toolkit removes its install stage after
  a build, so that round installs the wheels again); whole processes, median wall time,
  interleaved;
- (b) the final image's size against base image + the installed venv (`du -sb /opt/venv`);
- (c) the image against a naive single-stage image (`COPY wheels` + `pip install -r`) of the same
  lockfile, built here and removed afterwards.

    .venv/bin/python benchmarks/build.py [--repeats 5]

Goals: (a) <= 0.5x, (b) <= 1.05x, (c) reported. Needs the CPU image built and current
(`TOOLKIT_MIRRORS=... toolkit build --target cpu`); every image and folder made here is removed.
"""

from __future__ import annotations

import argparse
import os
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

from toolkit import base, engine, image, wheelhouse  # noqa: E402
from toolkit.config import Config, load_config  # noqa: E402
from toolkit.paths import STATE_DIR  # noqa: E402

NOOP_GOAL = 0.5
SIZE_GOAL = 1.05
TARGET = "cpu"
BENCH_REPOSITORY = "toolkit-bench-build"  # throwaway tags: toolkit-bench-build:<what>-<pid>
TOOLKIT = [sys.executable, "-m", "toolkit"]
# The classic builder: the one toolkit's engine.build drives, so the cache is the same one.
DOCKER_ENV = dict(os.environ, DOCKER_BUILDKIT="0")
_STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12})$", re.MULTILINE)  # each step's image

NAIVE_DOCKERFILE = """\
FROM {base}
COPY requirements.lock /tmp/requirements.lock
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install --no-index --find-links /tmp/wheels -r /tmp/requirements.lock
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"""


def run(argv: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> float:
    """Run a whole process to its end; its wall time, or exit with its output on failure."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:6])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed


def make_context(cfg: Config, dockerfile: str, dest: Path) -> None:
    """The build context toolkit.image.build sends: locked wheels (linked), lockfile, Dockerfile."""
    target = cfg.target(TARGET)
    pins = wheelhouse.read_pins(target.lockfile.read_text(encoding="utf-8"))
    house = cfg.root / STATE_DIR / "wheelhouse"
    if wheelhouse.missing(pins, house):
        sys.exit(f"{house} lacks wheels of {target.lockfile.name}: run `toolkit build` first")
    wheelhouse.collect(pins, house, dest / "wheels")
    shutil.copyfile(target.lockfile, dest / "requirements.lock")
    (dest / "Dockerfile").write_text(dockerfile, encoding="utf-8")


def docker_build(context: Path, tag: str, labels: dict[str, str], made: list[str]) -> float:
    """`docker build` of a context, as toolkit builds (no network, no pull); its wall time.

    The ids of the images it made, intermediate ones too, are appended to `made` in build order.
    """
    argv = ["docker", "build", "--network", "none", "--force-rm", "--tag", tag]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    started = time.perf_counter()
    done = subprocess.run(
        [*argv, str(context)], env=DOCKER_ENV, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"docker build of {context.name} failed:\n{done.stdout[-3000:]}{done.stderr}")
    made.extend(_STEP_IMAGE.findall(done.stdout))
    return elapsed


def venv_bytes(ref: str) -> int:
    """Apparent size of the installed venv inside the image."""
    out = engine.run_once(ref, ["du", "-sb", "/opt/venv"])
    return int(out.split()[0])


def clean_up(tags: list[str], made: list[str], keep: set[str]) -> list[str]:
    """Remove the throwaway tags, then each image this run made, newest first; ids that remain.

    Never forced, never pruning parents: an image that another tag or a child still uses stays,
    and one in `keep` (every image there before the run, toolkit's own among them) is not touched.
    """
    for tag in tags:
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)
    mine = [i for i in dict.fromkeys(reversed(made)) if i not in keep]
    for image_id in mine:
        subprocess.run(["docker", "rmi", "--no-prune", image_id], capture_output=True, check=False)
    return [i for i in mine if engine.image(i) is not None]


def image_ids() -> set[str]:
    """Short ids (as `docker build` prints them) of every image in the engine, layers too."""
    done = subprocess.run(
        ["docker", "images", "--all", "--quiet", "--no-trunc"], capture_output=True, text=True
    )
    return {i.removeprefix("sha256:")[:12] for i in done.stdout.split()}


def mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds for (a)")
    args = parser.parse_args()

    cfg = load_config(ROOT / "toolkit.yaml")
    target = cfg.target(TARGET)
    plan = image.plan(cfg, target)
    built = engine.image(plan.ref)
    if built is None:
        sys.exit(
            f"{plan.ref} is not built (or not current): run "
            f"`TOOLKIT_MIRRORS=... .venv/bin/toolkit build --target {TARGET}` first"
        )
    base_info = base.require_base(target, cfg.base)
    # The labels toolkit gave the image: computed now, the revision would name today's commit.
    labels = {k: built.labels.get(k, v) for k, v in image.labels(cfg, plan, base_info.id).items()}
    before = image_ids()
    made: list[str] = []
    same_tag = f"{BENCH_REPOSITORY}:same-{os.getpid()}"
    naive_tag = f"{BENCH_REPOSITORY}:naive-{os.getpid()}"
    scratch = cfg.root / STATE_DIR / "tmp"  # beside the wheelhouse: wheels link, as in a build
    scratch.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="bench-build-", dir=scratch) as tmp:
        try:
            same, naive = Path(tmp) / "same", Path(tmp) / "naive"
            make_context(cfg, plan.dockerfile, same)
            make_context(cfg, NAIVE_DOCKERFILE.format(base=plan.base_ref), naive)

            # (a) the first round warms the page cache and builds any layer not cached (toolkit
            # removes its install stage after a build): dropped.
            toolkit_build = [*TOOLKIT, "build", "--target", TARGET]
            run(toolkit_build)
            first_docker = docker_build(same, same_tag, labels, made)
            toolkit_times: list[float] = []
            docker_times: list[float] = []
            for _ in range(args.repeats):
                toolkit_times.append(run(toolkit_build))
                docker_times.append(docker_build(same, same_tag, labels, made))
            rebuilt = engine.image(same_tag)
            same_image = rebuilt is not None and rebuilt.id == built.id

            # (b) and (c)
            venv = venv_bytes(plan.ref)
            started = time.perf_counter()
            docker_build(naive, naive_tag, {"io.toolkit.bench": "naive"}, made)
            naive_seconds = time.perf_counter() - started
            naive_info = engine.image(naive_tag)
            assert naive_info is not None
        finally:
            left = clean_up([same_tag, naive_tag], made, before)
    if left:
        print(f"could not remove images this run made: {' '.join(left)}")

    toolkit_median = statistics.median(toolkit_times)
    docker_median = statistics.median(docker_times)
    noop_ratio = toolkit_median / docker_median
    size_ratio = built.size / (base_info.size + venv)
    naive_ratio = built.size / naive_info.size
    rows = [
        (
            "(a) no-op toolkit build",
            f"{toolkit_median:.2f} s",
            f"docker build, warm cache: {docker_median:.2f} s",
            noop_ratio,
            f"<= {NOOP_GOAL}",
            noop_ratio <= NOOP_GOAL,
        ),
        (
            "(b) image size",
            mb(built.size),
            f"base {mb(base_info.size)} + venv {mb(venv)}",
            size_ratio,
            f"<= {SIZE_GOAL}",
            size_ratio <= SIZE_GOAL,
        ),
        (
            "(c) image size",
            mb(built.size),
            f"naive single-stage: {mb(naive_info.size)}",
            naive_ratio,
            "reported",
            None,
        ),
    ]
    print(
        f"toolkit build vs docker build, target {TARGET}: {plan.ref}; (a) median of "
        f"{args.repeats} interleaved rounds of whole processes"
        + ("" if same_image else " (docker build made its own image: a layer was not in cache)")
    )
    print(f"{'measure':<26}{'toolkit':>10}  {'baseline':<44}{'ratio':>7}  {'goal':<9}verdict")
    for name, ours, baseline, ratio, goal, met in rows:
        verdict = "-" if met is None else "ok" if met else "MISSED"
        print(f"{name:<26}{ours:>10}  {baseline:<44}{ratio:>6.2f}x  {goal:<9}{verdict}")
    print(
        f"rounds (s): toolkit {' '.join(f'{t:.2f}' for t in toolkit_times)}; "
        f"docker {' '.join(f'{t:.2f}' for t in docker_times)} "
        f"(first, dropped: {first_docker:.1f}); "
        f"naive image built in {naive_seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
