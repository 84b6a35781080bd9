"""Our Engine API client (`toolkit.engine.wire`) and the calls built on it, against a fake engine.

The fake is a small HTTP/1.1 server on a unix socket that answers each (method, path prefix) with
scripted bytes and records every request. Like the real engine, it keeps a connection open after
its answer, so a client that reads past an answer's declared end times out instead of passing.
The real engine is covered by tests/integration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import signal
import socketserver
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from toolkit import engine
from toolkit.engine import ContainerExit, ContainerSpec, Mount, wire
from toolkit.errors import EngineUnavailable, UserError

WAIT = 5.0  # the longest a fake handler waits for the client: a bug fails a test, never hangs it

UPGRADED = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
)
CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def answer(status: str, body: Any = None) -> bytes:
    """A whole response: a JSON body with its Content-Length, or no body at all."""
    if body is None:
        return f"HTTP/1.1 {status}\r\n\r\n".encode()
    payload = json.dumps(body).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload


NO_CONTENT = answer("204 No Content")


def chunks(*parts: bytes) -> bytes:
    """A chunked body: each part as one chunk, then the last (empty) chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def frame(kind: int, data: bytes) -> bytes:
    """One frame of the engine's raw stream: kind, three zero bytes, big-endian length, data."""
    return struct.pack(">BxxxI", kind, len(data)) + data


@dataclass(frozen=True)
class Request:
    """One request as the fake engine read it."""

    method: str
    target: str  # path and query, exactly as sent
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(socketserver.StreamRequestHandler):
    """Reads one request (line, headers, Content-Length body), records it, and runs its script."""

    timeout = WAIT
    server: FakeEngine

    def handle(self) -> None:
        method, target, _ = self.rfile.readline().decode().split(" ", 2)
        headers: dict[str, str] = {}
        while line := self.rfile.readline().decode("latin-1").strip():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.rfile.read(int(headers.get("content-length", "0")))
        request = Request(method, target, headers, body)
        self.server.requests.append(request)
        script = self.server.script_for(request)
        if isinstance(script, bytes):
            self.wfile.write(script)
            until_closed(self)
        else:
            script(request, self)


Script = bytes | Callable[[Request, _Handler], None]
Routes = dict[tuple[str, str], Script]


def until_closed(conn: _Handler) -> None:
    """Keep the connection open, as the engine does, until the client closes it."""
    with contextlib.suppress(OSError):
        conn.rfile.read()


def dribble(data: bytes) -> Script:
    """Write `data` in small pieces that align with nothing, then close the connection."""

    def script(request: Request, conn: _Handler) -> None:
        sizes, start = itertools.cycle((3, 13, 5, 4099)), 0
        while start < len(data):
            end = start + next(sizes)
            conn.wfile.write(data[start:end])
            start = end
            time.sleep(0.001)  # so the client receives each piece on its own

    return script


class FakeEngine(socketserver.ThreadingUnixStreamServer):
    """Answers each request with the script of the longest matching (method, path prefix)."""

    daemon_threads = True

    def __init__(self, path: str, routes: Routes) -> None:
        super().__init__(path, _Handler)
        self.path = path
        self.routes = routes
        self.requests: list[Request] = []
        self._thread = threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def script_for(self, request: Request) -> Script:
        matches = [
            prefix
            for method, prefix in self.routes
            if method == request.method and request.target.startswith(prefix)
        ]
        if not matches:
            return answer("500 Internal Server Error", {"message": f"no route: {request.target}"})
        return self.routes[request.method, max(matches, key=len)]

    def targets(self) -> list[str]:
        """Every request so far, as "METHOD /path?query"."""
        return [f"{r.method} {r.target}" for r in self.requests]

    def request(self, start: str) -> Request:
        """The first request whose "METHOD /path?query" starts with `start`."""
        return next(r for r in self.requests if f"{r.method} {r.target}".startswith(start))

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(WAIT)


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory for unix sockets: their path must fit in ~107 bytes, which tmp_path may not."""
    directory = tempfile.mkdtemp(prefix="tk-wire-", dir="/tmp")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def serve(
    short_dir: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Routes], FakeEngine]]:
    """Start a fake engine with these routes; DOCKER_HOST points at it."""
    fakes: list[FakeEngine] = []

    def start(routes: Routes) -> FakeEngine:
        fake = FakeEngine(f"{short_dir}/engine{len(fakes)}.sock", routes)
        fakes.append(fake)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{fake.path}")
        return fake

    yield start
    for fake in fakes:
        fake.stop()


class ContainerScript:
    """Container abc's create, attach, wait and start, answered in the order the engine does."""

    def __init__(
        self,
        output: list[bytes],
        exit_status: dict[str, Any] | None,
        start: bytes = NO_CONTENT,
        create: bytes = answer("201 Created", {"Id": "abc", "Warnings": []}),
    ) -> None:
        self.output = output  # written to the attach stream after the start, one write each
        self.exit_status = exit_status  # None: the engine dies before it answers the wait
        self.start_answer = start
        self.create_answer = create
        self.started = threading.Event()
        self.output_ended = threading.Event()

    def routes(self) -> Routes:
        return {
            ("POST", "/containers/create"): self.create_answer,
            ("POST", "/containers/abc/attach"): self.attach,
            ("POST", "/containers/abc/wait"): self.wait,
            ("POST", "/containers/abc/start"): self.start,
            ("DELETE", "/containers/abc"): NO_CONTENT,
        }

    def attach(self, request: Request, conn: _Handler) -> None:
        conn.wfile.write(UPGRADED)
        if self.started.wait(WAIT):  # a container writes nothing before it starts
            for piece in self.output:
                conn.wfile.write(piece)
                time.sleep(0.001)
        self.output_ended.set()  # and the stream closes: the container has ended

    def wait(self, request: Request, conn: _Handler) -> None:
        conn.wfile.write(CHUNKED)  # at once: the waiter is registered before the start
        ended = self.started.wait(WAIT) and self.output_ended.wait(WAIT)
        if ended and self.exit_status is not None:
            conn.wfile.write(chunks(json.dumps(self.exit_status).encode()))
            until_closed(conn)

    def start(self, request: Request, conn: _Handler) -> None:
        conn.wfile.write(self.start_answer)
        self.started.set()
        until_closed(conn)


LABELS = {"io.toolkit.project": "demo", "io.toolkit.run": "r1"}
ATTACH = "POST /containers/abc/attach?stream=1&stdout=1&stderr=1"
WAIT_REMOVED = "POST /containers/abc/wait?condition=removed"


def spec(gpus: str | None = None) -> ContainerSpec:
    return ContainerSpec(
        image="toolkit/demo:1a2b3c",
        command=("python", "train.py", "--epochs", "1"),
        mounts=(
            Mount(Path("/home/u/demo"), "/work/demo", read_only=True),
            Mount(Path("/home/u/demo/.toolkit/runs/r1/outputs/ckpt"), "/work/demo/ckpt"),
        ),
        env={"PYTHONHASHSEED": "0", "TOOLKIT_RUN": "r1"},
        workdir="/work/demo",
        user="1000:1000",
        gpus=gpus,
    )


def run(
    container: ContainerSpec, started: Callable[[], None] = lambda: None
) -> tuple[ContainerExit, list[tuple[str, bytes]]]:
    """Run `container` on the fake engine; its exit and its output as ("out"/"err", bytes)."""
    output: list[tuple[str, bytes]] = []
    ended = engine.run_container(
        container,
        LABELS,
        on_stdout=lambda data: output.append(("out", data)),
        on_stderr=lambda data: output.append(("err", data)),
        started=started,
    )
    return ended, output


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, wire.Endpoint(unix_path="/var/run/docker.sock")),
        ({"DOCKER_HOST": "unix:///x/y.sock"}, wire.Endpoint(unix_path="/x/y.sock")),
        ({"DOCKER_HOST": "tcp://h:1234"}, wire.Endpoint(host="h", port=1234)),
        ({"DOCKER_HOST": "tcp://[::1]"}, wire.Endpoint(host="::1", port=2375)),
        ({"DOCKER_HOST": "tcp://[fe80::2]:2380"}, wire.Endpoint(host="fe80::2", port=2380)),
        (
            {"DOCKER_HOST": "tcp://h", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"},
            wire.Endpoint(host="h", port=2376, tls_dir="/certs"),
        ),
    ],
    ids=["unset", "unix", "tcp", "ipv6", "ipv6-port", "tcp-tls"],
)
def test_endpoint_reads_docker_host(environ: dict[str, str], expected: wire.Endpoint) -> None:
    assert wire.endpoint(environ) == expected


def test_endpoint_refuses_ssh_and_says_how_to_forward_the_socket() -> None:
    with pytest.raises(EngineUnavailable) as caught:
        wire.endpoint({"DOCKER_HOST": "ssh://me@host"})
    assert "DOCKER_HOST=ssh://me@host" in caught.value.message
    assert caught.value.hint is not None
    assert "forward the engine's socket" in caught.value.hint


def test_missing_tls_certificates_are_named(tmp_path: Path) -> None:
    where = wire.Endpoint(host="127.0.0.1", port=1, tls_dir=str(tmp_path))
    with pytest.raises(EngineUnavailable) as caught:
        where._tls()
    assert str(tmp_path) in caught.value.message
    assert caught.value.hint is not None and "DOCKER_CERT_PATH" in caught.value.hint


# A 1 s client timeout: reading past an answer's end would wait for the fake to close, and fail.


def test_call_reads_a_body_by_its_content_length(serve: Callable[[Routes], FakeEngine]) -> None:
    serve({("GET", "/version"): answer("200 OK", {"Version": "27.1.1", "ApiVersion": "1.46"})})
    got = wire.call(wire.endpoint(), "GET", "/version", timeout=1)
    assert got == {"Version": "27.1.1", "ApiVersion": "1.46"}


def test_call_reads_a_chunked_body(serve: Callable[[Routes], FakeEngine]) -> None:
    body = chunks(b'{"Contain', b'ers": 2, "Ima', b'ges": 14}')
    serve({("GET", "/info"): CHUNKED + body})
    assert wire.call(wire.endpoint(), "GET", "/info", timeout=1) == {"Containers": 2, "Images": 14}


def test_call_of_a_204_is_none(serve: Callable[[Routes], FakeEngine]) -> None:
    serve({("POST", "/containers/abc/stop"): NO_CONTENT})
    assert wire.call(wire.endpoint(), "POST", "/containers/abc/stop", timeout=1) is None


def test_an_error_status_raises_api_error_with_the_engines_message(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    serve({("GET", "/images/"): answer("404 Not Found", {"message": "No such image: x"})})
    with pytest.raises(wire.ApiError) as caught:
        wire.call(wire.endpoint(), "GET", "/images/x/json", timeout=1)
    assert (caught.value.status, caught.value.message) == (404, "No such image: x")


def test_path_and_query_are_percent_encoded(serve: Callable[[Routes], FakeEngine]) -> None:
    fake = serve({("GET", "/images/"): answer("200 OK", {})})
    query = {"filters": '{"label":["a=b&c"]}', "all": "1"}
    wire.call(wire.endpoint(), "GET", "/images/my image:é/json", query, timeout=1)
    assert fake.targets() == [
        "GET /images/my%20image:%C3%A9/json?filters=%7B%22label%22:%5B%22a%3Db%26c%22%5D%7D&all=1"
    ]


def test_no_socket_is_engine_unavailable_naming_the_address(
    short_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{short_dir}/docker.sock")
    with pytest.raises(EngineUnavailable) as caught:
        wire.call(wire.endpoint(), "GET", "/_ping")
    assert f"unix://{short_dir}/docker.sock" in caught.value.message
    assert caught.value.hint == engine.ENGINE_HINT


@pytest.fixture
def fresh_client() -> Iterator[None]:
    """engine.client() connects anew (it is cached for the process), before and after."""
    engine.client.cache_clear()
    yield
    engine.client.cache_clear()


@pytest.mark.usefixtures("fresh_client")
def test_no_socket_is_said_the_same_way_on_the_sdks_paths(
    short_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`images`, `image import|pull` and `doctor` go through the SDK; `run` through wire."""
    from toolkit import doctor

    monkeypatch.setenv("DOCKER_HOST", f"unix://{short_dir}/docker.sock")
    said = f"no Docker Engine answers at unix://{short_dir}/docker.sock (No such file or directory)"
    for call in (engine.info, lambda: engine.images("io.toolkit.project=x")):
        with pytest.raises(EngineUnavailable) as caught:
            call()
        assert (caught.value.message, caught.value.hint) == (said, engine.ENGINE_HINT)
    checks = doctor.diagnose(None)
    assert (checks[0].name, checks[0].status, checks[0].detail) == ("engine", "fail", said)


def test_frames_separate_stdout_and_stderr_however_the_bytes_arrive(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    big = bytes(range(256)) * 80  # longer than the client's read buffer
    stream = frame(1, b"hello ") + frame(2, b"oops\n") + frame(1, big) + frame(2, b"bye\n")
    serve({("POST", "/containers/abc/attach"): dribble(UPGRADED + stream)})
    response = wire.send(wire.endpoint(), "POST", "/containers/abc/attach", upgrade=True)
    try:
        got = list(response.frames())
    finally:
        response.close()
    assert response.status == 101
    assert got == [
        (wire.STDOUT, b"hello "),
        (wire.STDERR, b"oops\n"),
        (wire.STDOUT, big),
        (wire.STDERR, b"bye\n"),
    ]


def test_image_reads_the_inspect_answer(serve: Callable[[Routes], FakeEngine]) -> None:
    inspect = {
        "Id": "sha256:5f1e",
        "RepoTags": ["toolkit/demo:1a2b3c", "toolkit/demo:latest"],
        "Config": {"Labels": {"io.toolkit.project": "demo"}},
        "Size": 123456789,
        "Created": "2024-05-01T12:00:00Z",
    }
    fake = serve({("GET", "/images/"): answer("200 OK", inspect)})
    assert engine.image("toolkit/demo:1a2b3c") == engine.ImageInfo(
        id="sha256:5f1e",
        tags=("toolkit/demo:1a2b3c", "toolkit/demo:latest"),
        labels={"io.toolkit.project": "demo"},
        size=123456789,
        created="2024-05-01T12:00:00Z",
    )
    assert fake.targets() == ["GET /images/toolkit/demo:1a2b3c/json"]


def test_image_the_engine_does_not_have_is_none(serve: Callable[[Routes], FakeEngine]) -> None:
    serve({("GET", "/images/"): answer("404 Not Found", {"message": "No such image: nope"})})
    assert engine.image("nope") is None


def test_run_container_streams_output_and_returns_the_exit_code(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    script = ContainerScript(
        output=[frame(1, b"hello "), frame(2, b"warn\n") + frame(1, b"wor"), frame(1, b"ld\n")],
        exit_status={"StatusCode": 3, "Error": None},
    )
    fake = serve(script.routes())
    seen_when_started: list[list[str]] = []
    ended, output = run(spec(), started=lambda: seen_when_started.append(fake.targets()))
    assert ended == ContainerExit(3)
    assert output == [("out", b"hello "), ("err", b"warn\n"), ("out", b"wor"), ("out", b"ld\n")]
    calls = ["POST /containers/create", ATTACH, WAIT_REMOVED, "POST /containers/abc/start"]
    # `started` ran once, when the engine had answered the start: nothing in the way of it
    assert seen_when_started == [calls]
    assert fake.targets() == calls
    assert fake.request(ATTACH).headers["upgrade"] == "tcp"


def test_run_container_creates_what_docker_run_rm_would(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    fake = serve(ContainerScript(output=[], exit_status={"StatusCode": 0}).routes())
    ended, _ = run(spec())
    assert ended == ContainerExit(0)
    create = fake.request("POST /containers/create")
    assert create.headers["content-type"] == "application/json"
    body = create.json()
    assert body["Image"] == "toolkit/demo:1a2b3c"
    assert body["Cmd"] == ["python", "train.py", "--epochs", "1"]
    assert body["Env"] == ["PYTHONHASHSEED=0", "TOOLKIT_RUN=r1"]
    assert (body["User"], body["WorkingDir"], body["Labels"]) == ("1000:1000", "/work/demo", LABELS)
    host = body["HostConfig"]
    assert host["AutoRemove"] is True
    assert host["Init"] is True
    assert host["Mounts"] == [
        {"Type": "bind", "Source": "/home/u/demo", "Target": "/work/demo", "ReadOnly": True},
        {
            "Type": "bind",
            "Source": "/home/u/demo/.toolkit/runs/r1/outputs/ckpt",
            "Target": "/work/demo/ckpt",
            "ReadOnly": False,
        },
    ]
    assert "DeviceRequests" not in host
    assert "NetworkMode" not in host  # the engine's default network


def test_run_container_without_network_asks_for_none(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    fake = serve(ContainerScript(output=[], exit_status={"StatusCode": 0}).routes())
    run(dataclasses.replace(spec(), network=False))
    body = fake.request("POST /containers/create").json()
    assert body["HostConfig"]["NetworkMode"] == "none"


@pytest.mark.parametrize(
    ("gpus", "request_"),
    [
        ("all", {"Count": -1, "Capabilities": [["gpu"]]}),
        ("2", {"Count": 2, "Capabilities": [["gpu"]]}),
        ("0,1", {"DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]]}),
    ],
)
def test_run_container_requests_gpus(
    serve: Callable[[Routes], FakeEngine], gpus: str, request_: dict[str, Any]
) -> None:
    fake = serve(ContainerScript(output=[], exit_status={"StatusCode": 0}).routes())
    run(spec(gpus))
    body = fake.request("POST /containers/create").json()
    assert body["HostConfig"]["DeviceRequests"] == [request_]


@pytest.mark.parametrize(
    "last_write",
    [frame(1, b"partial"), frame(1, b"partial") + frame(2, b"cut")[:-1]],
    ids=["between-frames", "mid-frame"],
)
def test_an_engine_that_dies_mid_run_is_an_engine_error(
    serve: Callable[[Routes], FakeEngine], last_write: bytes
) -> None:
    serve(ContainerScript(output=[last_write], exit_status=None).routes())
    ended, output = run(spec())
    assert ended.exit_code is None
    assert not ended.interrupted
    assert ended.engine_error is not None
    assert "closed the connection" in ended.engine_error
    assert output == [("out", b"partial")]


def test_a_refused_start_is_a_user_error_and_removes_the_container(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    refusal = 'failed to create task: exec: "nope": executable file not found in $PATH'
    script = ContainerScript(
        output=[], exit_status=None, start=answer("400 Bad Request", {"message": refusal})
    )
    fake = serve(script.routes())
    with pytest.raises(UserError, match="executable file not found"):
        run(spec())
    assert fake.targets()[-2:] == ["POST /containers/abc/start", "DELETE /containers/abc?force=1"]


def test_a_refused_create_is_a_user_error_with_the_engines_message(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    refusal = answer("404 Not Found", {"message": "No such image: x"})
    fake = serve(ContainerScript(output=[], exit_status=None, create=refusal).routes())
    with pytest.raises(UserError, match="No such image: x"):
        run(spec())
    assert fake.targets() == ["POST /containers/create"]


def test_ctrl_c_before_the_start_leaves_no_container(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    script = ContainerScript(output=[], exit_status={"StatusCode": 0})
    routes = script.routes()

    def pressed_while_created(request: Request, conn: _Handler) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the engine creates the container
        conn.wfile.write(script.create_answer)

    fake = serve({**routes, ("POST", "/containers/create"): pressed_while_created})
    with pytest.raises(KeyboardInterrupt):
        run(spec())
    assert fake.targets() == ["POST /containers/create", "DELETE /containers/abc?force=1"]


class RunsUntilSignalled(ContainerScript):
    """Container abc that prints a line, is sent Ctrl-C, and runs on until it is sent a signal
    of `ends_on` (`POST /containers/abc/kill?signal=...`); then prints "saved" and ends. Each
    other signal it gets is pressed past: Ctrl-C again, 0.3 s later, when `presses_again`."""

    def __init__(self, ends_on: str, presses_again: bool = False, sig: int = signal.SIGINT) -> None:
        super().__init__(output=[frame(wire.STDOUT, b"step 1\n")], exit_status={"StatusCode": 130})
        self.ends_on = ends_on
        self.presses_again = presses_again
        self.sig = sig  # what toolkit is sent: Ctrl-C's SIGINT, or SIGTERM, SIGHUP
        self.signalled = threading.Event()
        self.signals: list[tuple[str, float]] = []  # each signal, and when it came

    def routes(self) -> Routes:
        return {**super().routes(), ("POST", "/containers/abc/kill"): self.kill}

    def attach(self, request: Request, conn: _Handler) -> None:
        conn.wfile.write(UPGRADED)
        if self.started.wait(WAIT):
            for piece in self.output:
                conn.wfile.write(piece)
            os.kill(os.getpid(), self.sig)  # Ctrl-C (or `sig`), once it runs
            if self.signalled.wait(WAIT):
                conn.wfile.write(frame(wire.STDOUT, b"saved\n"))  # on its way out
        self.output_ended.set()

    def kill(self, request: Request, conn: _Handler) -> None:
        name = request.target.partition("signal=")[2]
        self.signals.append((name, time.monotonic()))
        conn.wfile.write(NO_CONTENT)
        if name == self.ends_on:
            self.signalled.set()
        elif self.presses_again:  # later than the answer: a press toolkit sees as a new one
            threading.Timer(0.3, os.kill, (os.getpid(), self.sig)).start()
        until_closed(conn)


def test_ctrl_c_sends_a_container_sigint_first(serve: Callable[[Routes], FakeEngine]) -> None:
    """SIGINT, as Ctrl-C on a terminal: Python unwinds and flushes (SIGTERM killed it)."""
    script = RunsUntilSignalled(ends_on="SIGINT")
    fake = serve(script.routes())
    ended, output = run(spec())
    assert ended == ContainerExit(130, interrupted=True)  # how it ended, as the engine says
    assert [name for name, _ in script.signals] == ["SIGINT"]
    assert fake.targets().count("POST /containers/abc/kill?signal=SIGINT") == 1
    assert b"".join(data for _, data in output) == b"step 1\nsaved\n"  # its way out shown


def test_ctrl_c_again_sends_a_container_the_next_signal_at_once(
    serve: Callable[[Routes], FakeEngine],
) -> None:
    script = RunsUntilSignalled(ends_on="SIGKILL", presses_again=True)
    fake = serve(script.routes())
    ended, output = run(spec())
    assert ended == ContainerExit(130, interrupted=True)
    kills = [t for t in fake.targets() if "/kill" in t]
    signals = ("SIGINT", "SIGTERM", "SIGKILL")
    assert kills == [f"POST /containers/abc/kill?signal={s}" for s in signals]
    sent = [at for _, at in script.signals]
    assert sent[-1] - sent[0] < 5  # each at the next press, not the 10 s apart of STOP_SIGNALS
    assert b"".join(data for _, data in output) == b"step 1\nsaved\n"


def test_a_container_that_ignores_sigint_gets_sigterm_then_sigkill(
    serve: Callable[[Routes], FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    grace = 0.5  # STOP_SIGNALS' 10 s, shortened
    monkeypatch.setattr(
        engine, "STOP_SIGNALS", tuple((name, grace) for name, _ in engine.STOP_SIGNALS)
    )
    script = RunsUntilSignalled(ends_on="SIGKILL")  # one press only
    serve(script.routes())
    ended, _ = run(spec())
    assert ended == ContainerExit(130, interrupted=True)
    assert [name for name, _ in script.signals] == ["SIGINT", "SIGTERM", "SIGKILL"]
    sent = [at for _, at in script.signals]
    assert all(later - earlier >= grace for earlier, later in itertools.pairwise(sent))
