"""The Engine API over its socket, with the standard library only: the calls `toolkit run` makes.

The docker SDK (with requests and urllib3) takes ~65 ms to import and makes more round trips per
container than the docker CLI; for a short run they were most of toolkit's overhead. Each call
here is one HTTP/1.1 request on a connection of its own, closed once its response is read to its
declared end (Content-Length or chunked) or, for an attach, once the container's stream ends.
DOCKER_HOST may be unix://PATH (the default socket), or tcp://HOST:PORT, with TLS when
DOCKER_TLS_VERIFY is set (certificates from DOCKER_CERT_PATH, as the docker CLI reads them).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.errors import EngineUnavailable

if TYPE_CHECKING:
    import ssl

DEFAULT_SOCKET = "/var/run/docker.sock"
STDOUT, STDERR = 1, 2
_SAFE = frozenset("-._~/:@")


class ApiError(Exception):
    """The engine answered a request with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Endpoint:
    """Where the engine listens: a unix socket path, or host and port (with TLS or not)."""

    unix_path: str | None = None
    host: str = "localhost"
    port: int = 2375
    tls_dir: str | None = None

    def connect(self, timeout: float | None) -> socket.socket:
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(self.unix_path)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        if self.tls_dir is None:
            return sock
        try:
            return self._tls().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise

    def _tls(self) -> ssl.SSLContext:
        import ssl

        assert self.tls_dir is not None
        try:
            context = ssl.create_default_context(cafile=os.path.join(self.tls_dir, "ca.pem"))
            context.load_cert_chain(
                os.path.join(self.tls_dir, "cert.pem"), os.path.join(self.tls_dir, "key.pem")
            )
        except OSError as exc:  # includes ssl.SSLError
            raise EngineUnavailable(
                f"cannot load the TLS certificates for {self.describe()} from {self.tls_dir} "
                f"({exc})",
                hint="set DOCKER_CERT_PATH to the folder holding ca.pem, cert.pem and key.pem",
            ) from None
        return context

    def describe(self) -> str:
        if self.unix_path is not None:
            return f"unix://{self.unix_path}"
        return f"{'https' if self.tls_dir else 'tcp'}://{self.host}:{self.port}"


def endpoint(environ: dict[str, str] | os._Environ[str] = os.environ) -> Endpoint:
    """The engine's address from DOCKER_HOST (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH)."""
    host = environ.get("DOCKER_HOST", "").strip()
    if not host or host.startswith("unix://"):
        return Endpoint(unix_path=host.removeprefix("unix://") or DEFAULT_SOCKET)
    scheme, sep, rest = host.partition("://")
    if not sep or scheme not in ("tcp", "http", "https"):
        raise EngineUnavailable(
            f"DOCKER_HOST={host} is not supported (only unix:// and tcp:// addresses)",
            hint="forward the engine's socket (`ssh -NL /tmp/docker.sock:/var/run/docker.sock "
            "HOST`) and set DOCKER_HOST=unix:///tmp/docker.sock",
        )
    address = rest.split("/", 1)[0]
    if address.startswith("["):  # [IPv6] or [IPv6]:port
        name, _, after = address[1:].partition("]")
        port = after.removeprefix(":")
    else:
        name, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    tls = scheme == "https" or bool(environ.get("DOCKER_TLS_VERIFY"))
    cert_dir = environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
    return Endpoint(
        host=name or "localhost",
        port=int(port) if port.isdigit() else (2376 if tls else 2375),
        tls_dir=cert_dir if tls else None,
    )


class Response:
    """One response on its own connection: status, headers, then the body or an upgraded stream."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")
        status_line = self._file.readline()
        if not status_line:
            raise ConnectionError("the engine closed the connection without an answer")
        parts = status_line.split(None, 2)
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while True:
            line = self._file.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def read(self) -> bytes:
        """The whole body (by Content-Length, chunked, or up to the end of the connection)."""
        if self.status in (101, 204, 304):
            return b""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size_line = self._file.readline()
                if not size_line:
                    raise ConnectionError("the engine closed the connection mid-answer")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self._file.readline()
                    return bytes(body)
                body += self._exactly(size)
                self._file.readline()
        length = self.headers.get("content-length")
        if length is not None:
            return self._exactly(int(length))
        return self._file.read()

    def json(self) -> Any:
        body = self.read()
        return json.loads(body) if body.strip() else None

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """An attached container's multiplexed output: (STDOUT or STDERR, bytes) until it ends."""
        while True:
            header = self._file.read(8)
            if len(header) < 8:
                return
            kind, size = header[0], struct.unpack(">I", header[4:])[0]
            yield kind, self._exactly(size)

    def close(self) -> None:
        # Shut down first: a thread blocked reading this answer (a container's output) returns,
        # where closing the file alone would wait for that read to end.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._file.close()
        self._sock.close()

    def _exactly(self, size: int) -> bytes:
        data = self._file.read(size)
        if len(data) < size:
            raise ConnectionError("the engine closed the connection mid-answer")
        return data


def send(
    where: Endpoint,
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: Any = None,
    *,
    upgrade: bool = False,
    timeout: float | None = 60,
) -> Response:
    """Send one request and read the response's head; error statuses raise ApiError.

    Connection failures raise EngineUnavailable before anything was sent, ConnectionError after.
    """
    try:
        sock = where.connect(timeout)
    except OSError as exc:
        from toolkit.engine import ENGINE_HINT

        raise EngineUnavailable(
            f"no Docker Engine answers at {where.describe()} ({exc.strerror or exc})",
            hint=ENGINE_HINT,
        ) from None
    target = _escape(path) + (
        "?" + "&".join(f"{k}={_escape(v)}" for k, v in query.items()) if query else ""
    )
    payload = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {target} HTTP/1.1", "Host: docker", "User-Agent: toolkit"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    elif method == "POST":
        head.append("Content-Length: 0")
    if upgrade:
        head += ["Connection: Upgrade", "Upgrade: tcp"]
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        response = Response(sock)
    except BaseException:
        sock.close()
        raise
    if response.status >= 400:
        try:
            detail = response.json()
        except (ValueError, OSError):
            detail = None
        finally:
            response.close()
        message = detail.get("message") if isinstance(detail, dict) else None
        raise ApiError(response.status, str(message or f"{method} {path} failed"))
    return response


def _escape(text: str) -> str:
    """Percent-encode what is not safe in a path or query value (urllib.parse costs 2 ms)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in _SAFE) else _percent(c) for c in text)


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode())


def call(
    where: Endpoint,
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: Any = None,
    *,
    timeout: float | None = 60,
) -> Any:
    """One request whose JSON answer (or None) is all that matters."""
    response = send(where, method, path, query, body, timeout=timeout)
    try:
        return response.json()
    finally:
        response.close()
