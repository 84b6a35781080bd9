"""`toolkit lock` against plain pip-compile on the same inputs, in the same run: overhead ratio.

Offline and stable: a generated set of tiny wheels with a random dependency graph, served two ways,
each with the very pip-compile options and sources toolkit uses:

- folder: local folders of wheels, mapped through TOOLKIT_MIRRORS (what the tests use); pure
  resolution, no I/O wait: toolkit's fixed cost (CLI start-up, config, header) shows in full;
- index: a local PyPI-like HTTP index (PEP 503 pages with sha256 and PEP 658 metadata, and the
  JSON API pip-tools reads hashes from) answering after --latency-ms, as a remote index does.

    .venv/bin/python benchmarks/lock.py [--runs 5] [--packages 80] [--latency-ms 25]

Goal: toolkit lock / pip-compile <= 1.10 (median wall time of whole processes).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import make_wheel  # noqa: E402
from toolkit import piptools  # noqa: E402
from toolkit.config import IndexConfig  # noqa: E402

GOAL = 1.10
_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def build_wheels(folder: Path, packages: int, seed: int = 0) -> list[str]:
    """`packages` projects x 3 versions with random acyclic deps, plus torch; returns top names."""
    rng = random.Random(seed)
    names = [f"pkg{i:03d}" for i in range(packages)]
    for i, name in enumerate(names):
        later = names[i + 1 :]
        for minor in range(3):
            deps = rng.sample(later, k=min(3, len(later)))
            make_wheel(folder, name, f"1.{minor}.0", requires=tuple(f"{d}>=1.0" for d in deps))
    make_wheel(folder, "numpy", "2.1.0")
    make_wheel(folder, "numpy", "2.2.0")
    make_wheel(folder, "filelock", "3.16.1")
    make_wheel(folder / "torch-cpu", "torch", "2.13.0+cpu", requires=("numpy", "filelock"))
    return ["torch==2.13.0", "numpy>=2,<3", *names[: max(1, packages // 4)]]


class _Index(http.server.BaseHTTPRequestHandler):
    """A PyPI stand-in over the wheels of one folder, slowed by `latency` per request."""

    wheels: ClassVar[dict[str, Path]] = {}
    latency: ClassVar[float] = 0.0

    def do_GET(self) -> None:
        time.sleep(self.latency)
        path = unquote(self.path.split("?")[0])
        if match := re.fullmatch(r"/simple/([^/]+)/?", path):
            if _SIMPLE_JSON in self.headers.get("Accept", ""):  # PEP 691, as PyPI answers pip
                self._send(json.dumps(self._project(match[1])).encode(), _SIMPLE_JSON)
            else:
                self._send(self._page(match[1]).encode(), "text/html")
        elif match := re.fullmatch(r"/files/(.+\.whl)\.metadata", path):
            self._send(self._metadata(match[1]), "text/plain")
        elif (match := re.fullmatch(r"/files/(.+\.whl)", path)) and match[1] in self.wheels:
            self._send(self.wheels[match[1]].read_bytes(), "application/octet-stream")
        elif match := re.fullmatch(r"/([^/]+)/json", path):
            self._send(json.dumps(self._json(match[1])).encode(), "application/json")
        else:
            self.send_error(404)

    def _files(self, project: str) -> list[str]:
        key = re.sub(r"[-_.]+", "-", project).lower()
        return [f for f in self.wheels if re.sub(r"[-_.]+", "-", f.split("-")[0]).lower() == key]

    def _page(self, project: str) -> str:
        links = []
        for name in self._files(project):
            digest = hashlib.sha256(self.wheels[name].read_bytes()).hexdigest()
            meta = hashlib.sha256(self._metadata(name)).hexdigest()
            links.append(
                f'<a href="/files/{name}#sha256={digest}" data-dist-info-metadata="sha256={meta}"'
                f' data-core-metadata="sha256={meta}">{name}</a>'
            )
        return "<html><body>" + "<br>".join(links) + "</body></html>"

    def _project(self, project: str) -> dict[str, object]:
        files = []
        for name in self._files(project):
            digest = hashlib.sha256(self.wheels[name].read_bytes()).hexdigest()
            meta = hashlib.sha256(self._metadata(name)).hexdigest()
            files.append(
                {
                    "filename": name,
                    "url": f"/files/{name}",
                    "hashes": {"sha256": digest},
                    "core-metadata": {"sha256": meta},
                }
            )
        return {"meta": {"api-version": "1.1"}, "name": project, "files": files}

    def _metadata(self, name: str) -> bytes:
        with zipfile.ZipFile(self.wheels[name]) as archive:
            member = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            return archive.read(member)

    def _json(self, project: str) -> dict[str, object]:
        host = f"http://{self.headers['Host']}"
        releases: dict[str, list[dict[str, object]]] = {}
        for name in self._files(project):
            releases.setdefault(name.split("-")[1], []).append(
                {
                    "url": f"{host}/files/{name}",
                    "packagetype": "bdist_wheel",
                    "digests": {
                        "sha256": hashlib.sha256(self.wheels[name].read_bytes()).hexdigest()
                    },
                }
            )
        return {"releases": releases}

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:5])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed


def compare(
    base: Path, name: str, index: IndexConfig, env: dict[str, str], runs: int
) -> tuple[list[float], list[float], int]:
    """Alternate plain pip-compile and `toolkit lock` on one project; (plain, toolkit, pins)."""
    project = base / name
    project.mkdir()
    (project / "requirements.in").write_text((base / "requirements.in").read_text())
    extra = "".join(f'\n      extra_urls: ["{u}"]' for u in index.extra_urls)
    (project / "toolkit.yaml").write_text(
        f'name: bench\npython: "{sys.version_info.major}.{sys.version_info.minor}"\n'
        f'targets:\n  cpu:\n    index:\n      url: "{index.url}"{extra}\n'
    )
    sources = piptools.target_sources("cpu", index, project, piptools.load_mirrors(project, env))
    out = base / f"{name}-pip-compile.txt"
    plain = [
        sys.executable,
        "-m",
        "piptools",
        "compile",
        *piptools.compile_args("requirements.in", out, sources, cache_dir=base / f"{name}-cache"),
    ]
    plain_env = piptools.pip_environment(base=env)
    toolkit = [sys.executable, "-m", "toolkit", "lock", "--target", "cpu"]
    lockfile = project / "lockfiles" / "cpu.txt"
    plain_times: list[float] = []
    toolkit_times: list[float] = []
    for run in range(runs + 1):  # the first round warms caches and is dropped
        out.unlink(missing_ok=True)
        lockfile.unlink(missing_ok=True)
        plain_time = timed(plain, project, plain_env)
        toolkit_time = timed(toolkit, project, env)
        if run:
            plain_times.append(plain_time)
            toolkit_times.append(toolkit_time)
    pins = sum(1 for line in lockfile.read_text().splitlines() if "==" in line)
    return plain_times, toolkit_times, pins


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--packages", type=int, default=80)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-lock-") as scratch:
        base = Path(scratch)
        wheels = base / "wheels"
        top = build_wheels(wheels, args.packages)
        (base / "requirements.in").write_text("\n".join(top) + "\n")
        env = {k: v for k, v in os.environ.items() if k != "TOOLKIT_MIRRORS"}
        env["XDG_CONFIG_HOME"] = str(base / "xdg")

        _Index.wheels = {p.name: p for p in wheels.rglob("*.whl")}
        _Index.latency = args.latency_ms / 1000
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/simple"

        cpu_index = IndexConfig(
            url="https://download.pytorch.org/whl/cpu", extra_urls=("https://pypi.org/simple",)
        )
        folder_env = dict(
            env,
            TOOLKIT_MIRRORS=f"https://download.pytorch.org/whl/cpu={wheels / 'torch-cpu'} "
            f"https://pypi.org/simple={wheels}",
        )
        scenarios = {
            "folder": compare(base, "folder", cpu_index, folder_env, args.runs),
            f"index +{args.latency_ms:.0f}ms": compare(
                base, "index", IndexConfig(url=url), env, args.runs
            ),
        }
        server.shutdown()

    pins = scenarios["folder"][2]
    print(
        f"toolkit lock vs pip-compile, same inputs and options: {pins} pinned packages from "
        f"{len(_Index.wheels)} wheels; median of {args.runs} runs of whole processes"
    )
    print(f"{'scenario':<14}{'pip-compile':>13}{'toolkit lock':>14}{'overhead':>10}{'ratio':>7}")
    for name, (plain_times, toolkit_times, _) in scenarios.items():
        plain_median = statistics.median(plain_times)
        toolkit_median = statistics.median(toolkit_times)
        ratio = toolkit_median / plain_median
        verdict = "ok" if ratio <= GOAL else f"over {GOAL:.2f}"
        print(
            f"{name:<14}{plain_median:>11.2f} s{toolkit_median:>12.2f} s"
            f"{toolkit_median - plain_median:>+8.2f} s{ratio:>7.2f}  {verdict}"
        )


if __name__ == "__main__":
    main()
