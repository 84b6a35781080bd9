"""Where `toolkit run`'s overhead goes: when it asks the engine for the container, against the CLI.

`benchmarks/run.py` gives the ratio; this splits it. Both `docker run --rm IMAGE python -c pass`
and `toolkit run --target cpu -- python -c pass` (in a throwaway copy of the example project, as
run.py makes) talk to the engine through a small logging proxy on a unix socket (DOCKER_HOST).
For each, the median over --repeats interleaved rounds of: the time from spawning the process to
its `POST /containers/create`, from then to the process's end, and in all.

    .venv/bin/python benchmarks/launch.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ENV, TARGET, TRIVIAL, copy_project, toolkit_command

from toolkit import engine, image
from toolkit.engine import wire


class Proxy:
    """Forwards each connection to the engine's socket; notes when a create request passes."""

    def __init__(self, path: Path, engine_socket: str) -> None:
        self.path = path
        self.engine_socket = engine_socket
        self.creates: list[float] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            threading.Thread(target=self._connection, args=(client,), daemon=True).start()

    def _connection(self, client: socket.socket) -> None:
        with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as engine_side:
            engine_side.connect(self.engine_socket)
            answers = threading.Thread(target=self._pipe, args=(engine_side, client, False))
            answers.start()
            self._pipe(client, engine_side, True)
            answers.join()

    def _pipe(self, source: socket.socket, dest: socket.socket, requests: bool) -> None:
        """Copy one direction until it ends, then pass the end on (a half-close, as HTTP's
        hijacked attach streams use)."""
        try:
            while chunk := source.recv(65536):
                if requests and chunk.startswith(b"POST ") and b"/containers/create" in chunk[:80]:
                    self.creates.append(time.perf_counter())
                dest.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dest.shutdown(socket.SHUT_WR)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        cfg = copy_project(Path(tmp) / "project")
        ref = image.plan(cfg, cfg.target(TARGET)).ref
        if engine.image(ref) is None:
            sys.exit(f"{ref} is not built: run `.venv/bin/toolkit build --target {TARGET}` first")
        engine_socket = wire.endpoint().unix_path
        if engine_socket is None:
            sys.exit(
                "benchmarks/launch.py needs an engine on a unix socket (DOCKER_HOST=unix://...)"
            )
        proxy = Proxy(Path(tmp) / "engine.sock", engine_socket)
        env = {**ENV, "DOCKER_HOST": f"unix://{proxy.path}"}
        commands = {
            "docker run --rm": ["docker", "run", "--rm", ref, *TRIVIAL],
            "toolkit run": [*toolkit_command(), "run", "--target", TARGET, "--", *TRIVIAL],
        }
        times: dict[str, dict[str, list[float]]] = {
            name: {"create": [], "after": [], "total": []} for name in commands
        }
        for round_ in range(
            args.repeats + 1
        ):  # the first round (dropped) warms up and reads the image's packages once
            for name, argv in commands.items():
                proxy.creates.clear()
                spawned = time.perf_counter()
                done = subprocess.run(argv, cwd=cfg.root, env=env, capture_output=True, check=False)
                ended = time.perf_counter()
                if done.returncode != 0 or not proxy.creates:
                    sys.exit(f"{name} failed:\n{done.stdout.decode()}\n{done.stderr.decode()}")
                if round_ > 0:
                    times[name]["create"].append(proxy.creates[0] - spawned)
                    times[name]["after"].append(ended - proxy.creates[0])
                    times[name]["total"].append(ended - spawned)

    print(f"time to POST /containers/create, and after it; median of {args.repeats} rounds")
    print(f"    {'':<20}{'to create':>12}{'after it':>12}{'total':>12}")
    for name, measured in times.items():
        cells = "".join(f"{statistics.median(v) * 1000:>9.1f} ms" for v in measured.values())
        print(f"    {name:<20}{cells}")


if __name__ == "__main__":
    main()
