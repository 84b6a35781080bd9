"""Benchmark: tensor diff of two 1 GiB float32 checkpoints against `cmp -l`, and its peak memory.

Run: .venv/bin/python benchmarks/diff.py [--all-differ] [--dir DIR]
Goals (issue 6): within 2x of cmp's time, peak RSS < 256 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ELEMENTS = 1 << 28  # 1 GiB of float32
WRITE_CHUNK = 1 << 24
CHANGED = (0, 12_345_678, ELEMENTS // 2, ELEMENTS - 1)  # a few elements, start, middle, end
TIME_GOAL = 2.0
RSS_GOAL_MIB = 256
REPO = Path(__file__).resolve().parents[1]

# The comparison, in a child process so that its peak RSS is its own.
CHILD = """
import json, sys, time
from toolkit.compare import compare_tensor_files
if sys.argv[1:]:
    start = time.perf_counter()
    diff = compare_tensor_files(sys.argv[1], sys.argv[2])
    seconds = time.perf_counter() - start
    (t,) = diff.tensors
    print(json.dumps({"seconds": seconds, "verdict": diff.verdict, "differing": t.differing,
                      "max_abs": t.max_abs, "max_ulp": t.max_ulp}))
else:
    print(json.dumps({}))  # only the imports: the interpreter's own share of the peak
"""

# Linux children start as a vfork of their parent and keep its peak RSS as their own, so the
# comparison runs under this small stdlib-only process, never under the 1 GiB writer above it.
MEASURE = """
import json, resource, subprocess, sys
out = subprocess.run([sys.executable, "-c", *sys.argv[1:]], stdout=subprocess.PIPE, check=True)
result = json.loads(out.stdout)
result["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(result))
"""


def write_checkpoints(folder: Path, all_differ: bool) -> tuple[Path, Path]:
    """Write a.npy (random) and b.npy (a copy with CHANGED elements, or every element, nudged)."""
    a, b = folder / "a.npy", folder / "b.npy"
    out = np.lib.format.open_memmap(a, mode="w+", dtype=np.float32, shape=(ELEMENTS,))
    rng = np.random.default_rng(0)
    for lo in range(0, ELEMENTS, WRITE_CHUNK):
        out[lo : lo + WRITE_CHUNK] = rng.standard_normal(WRITE_CHUNK, dtype=np.float32)
    out.flush()
    del out
    shutil.copyfile(a, b)
    changed = np.lib.format.open_memmap(b, mode="r+")
    if all_differ:
        for lo in range(0, ELEMENTS, WRITE_CHUNK):
            part = changed[lo : lo + WRITE_CHUNK]
            part[:] = np.nextafter(part, np.float32(np.inf))
    else:
        changed[list(CHANGED)] += np.float32(1.0)
    changed.flush()
    del changed
    return a, b


def time_cmp(a: Path, b: Path) -> float:
    """Best of three `cmp -l`: unlike plain cmp it reads both files to the end, as a diff must."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        # Output goes to a pipe: GNU cmp stops at the first difference when it sees /dev/null.
        subprocess.run(["cmp", "-l", str(a), str(b)], stdout=subprocess.PIPE, check=False)
        best = min(best, time.perf_counter() - start)
    return best


def measure(*paths: Path) -> dict[str, Any]:
    """Run CHILD on paths in a grandchild; return its output and peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, CHILD, *map(str, paths)],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def time_ours(a: Path, b: Path) -> dict[str, Any]:
    """Best of three runs of compare_tensor_files, each in a fresh process."""
    return min((measure(a, b) for _ in range(3)), key=lambda result: float(result["seconds"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-differ", action="store_true", help="nudge every element by 1 ULP")
    parser.add_argument("--dir", type=Path, help="where to write the 2 GiB of checkpoints")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="toolkit-diff-bench-") as tmp:
        start = time.perf_counter()
        a, b = write_checkpoints(Path(tmp), args.all_differ)
        print(
            f"wrote 2 x {a.stat().st_size / 2**30:.2f} GiB in {time.perf_counter() - start:.1f} s"
        )
        # Both tools read from the page cache: warm it once so neither pays for the disk.
        subprocess.run(["cat", str(a), str(b)], stdout=subprocess.DEVNULL, check=True)
        result = time_ours(a, b)
        baseline = time_cmp(a, b)
    ours, peak_mib = float(result.pop("seconds")), result.pop("peak_rss_kib") / 1024  # Linux: KiB
    imports_mib = measure()["peak_rss_kib"] / 1024
    ratio = ours / baseline
    print(f"result: {result}")
    print(f"cmp -l (baseline):     {baseline:.3f} s")
    print(f"compare_tensor_files:  {ours:.3f} s   ratio {ratio:.2f}x cmp   (goal <= {TIME_GOAL}x)")
    print(
        f"peak RSS of the diff:  {peak_mib:.0f} MiB   (goal < {RSS_GOAL_MIB} MiB; "
        f"python + numpy imports alone: {imports_mib:.0f} MiB)"
    )
    met = ratio <= TIME_GOAL and peak_mib < RSS_GOAL_MIB
    print("goals met" if met else "goals MISSED")


if __name__ == "__main__":
    main()
