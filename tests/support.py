"""Test helpers: real, tiny wheels made on the spot, and the CLI run as a user runs it."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path


def docker_required() -> bool:
    """CI (CI=true) or TOOLKIT_REQUIRE_DOCKER=1 turns a missing engine into a failure."""
    return os.environ.get("TOOLKIT_REQUIRE_DOCKER") == "1" or os.environ.get("CI") == "true"


def make_wheel(
    folder: Path, name: str, version: str, body: str = "", requires: tuple[str, ...] = ()
) -> Path:
    """A valid pure-Python wheel `name-version-py3-none-any.whl` with one module."""
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": body or f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: toolkit-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return wheel


def lock_line(wheel: Path, name: str, version: str) -> str:
    """A hash-pinned lockfile entry for a wheel."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return f"{name}=={version} \\\n    --hash=sha256:{digest}\n"


def toolkit(
    *args: str, cwd: Path, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess, as a user would (in `env`, else this environment)."""
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


# In CI the repository is cloned beside a copy of shared/: <repo>/../shared.
REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gpu-reference"


def run_python_argv(program: str, *options: str) -> list[str]:
    """`toolkit run OPTIONS -- python -c PROGRAM`, as a command line to start a process with."""
    return [sys.executable, "-m", "toolkit", "run", *options, "--", "python", "-c", program]


def reference_run(name: str, dest: Path) -> Path:
    """A run folder (record.json + outputs/) made from one of shared/data/gpu-reference's runs."""
    import json
    import shutil

    source = REFERENCE / name
    meta = json.loads((source / "meta.json").read_text())
    lines = (source / "metrics.jsonl").read_text().splitlines()
    losses = [[entry["step"], entry["loss"]] for entry in map(json.loads, lines)]
    folder = dest / name
    if (folder / "record.json").is_file():
        return folder
    (folder / "outputs").mkdir(parents=True)
    shutil.copyfile(source / "weights.npz", folder / "outputs" / "weights.npz")
    shutil.copyfile(source / "metrics.jsonl", folder / "outputs" / "metrics.jsonl")
    weights_hash = hashlib.sha256((source / "weights.npz").read_bytes()).hexdigest()
    metrics_hash = hashlib.sha256((source / "metrics.jsonl").read_bytes()).hexdigest()
    record = {
        "schema": "toolkit.run/1",
        "id": name,
        "project": "reference",
        "target": "gpu" if meta["device"] == "cuda" else "cpu",
        "status": "succeeded",
        "exit_code": 0,
        "command": ["python", "make_run.py", meta["mode"]],
        "native": True,
        "code": {"commit": "reference", "dirty": False, "diff_sha256": None},
        "data": {"digest": "synthetic", "files": {}},
        "lockfile": {"sha256": None},
        "packages": {"torch": meta["torch"]},
        "host": {"gpus": [{"name": meta["gpu"]}] if meta.get("gpu") else []},
        "accelerator": {"device_name": meta.get("gpu", "cpu")},
        "determinism": {
            "policy": {
                "seed": 0,
                "threads": meta["threads"],
                "deterministic": meta["deterministic"],
                "cudnn_benchmark": meta["cudnn_benchmark"],
            },
            "applied": [],
        },
        "metrics": {
            "primary": "loss",
            "file": "metrics.jsonl",
            "primary_final": losses[-1][1],
            "series": {"loss": losses},
        },
        "outputs": {
            "digest": weights_hash,
            "files": {"weights.npz": weights_hash, "metrics.jsonl": metrics_hash},
        },
    }
    (folder / "record.json").write_text(json.dumps(record))
    return folder


def running_processes(group: int | None = None, pid: int | None = None) -> list[int]:
    """Pids of the processes still running in process `group`, or the one `pid`. Zombies are
    dead (an init slow to reap them, as here, keeps them listed), unless only their main thread
    ended: the others run on."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_bytes().rpartition(b")")[2].split()[:3]
            threads = len(list((stat.parent / "task").iterdir()))
        except (OSError, ValueError):
            continue
        this = int(stat.parent.name)
        alive = state != b"Z" or threads > 1
        if alive and (int(pgrp) == group if pid is None else this == pid):
            found.append(this)
    return found
