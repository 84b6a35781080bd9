"""The one place that talks to the Docker Engine.

Containers and image lookups go through `wire` (the Engine API over its socket, standard library
only: fast enough for `toolkit run`); builds, save/load, push/pull and the rest through the
`docker` SDK, imported lazily.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from toolkit import interrupt
from toolkit.engine import wire
from toolkit.errors import EngineUnavailable, UserError
from toolkit.pump import Pump

ENGINE_HINT = (
    "start the Docker Engine: `make engine` (Debian, as root: installs and starts it), "
    "`sudo systemctl start docker`, or Docker Desktop; set DOCKER_HOST if it runs elsewhere"
)


@dataclass(frozen=True)
class EngineInfo:
    """What the engine says about itself."""

    version: str
    api_version: str
    runtimes: tuple[str, ...]
    root_dir: str
    os: str


@dataclass(frozen=True)
class ImageInfo:
    """An image in the engine's store."""

    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    size: int
    created: str


@functools.cache
def client() -> Any:
    """A connected docker client, or EngineUnavailable with what to do."""
    try:
        from docker.errors import DockerException

        import docker
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EngineUnavailable(f"the docker SDK is not installed: {exc}") from None
    try:
        docker_client = docker.from_env(timeout=600)  # type: ignore[attr-defined]
        docker_client.ping()
    except (DockerException, OSError) as exc:  # requests' errors are OSErrors
        _ping()  # the SDK wraps the socket's error in its own words: `wire` says it as `run` does
        reason = str(exc).splitlines()[0][:200]
        raise EngineUnavailable(f"no Docker Engine answers ({reason})", hint=ENGINE_HINT) from None
    return docker_client


def _ping() -> None:
    """Raise EngineUnavailable naming the engine's address if nothing answers there."""
    with contextlib.suppress(OSError, wire.ApiError):  # it answers: the SDK's reason stands
        wire.send(wire.endpoint(), "GET", "/_ping", timeout=10).close()


def info() -> EngineInfo:
    """Version and capabilities of the running engine."""
    c = client()
    ver = c.version()
    data = c.info()
    return EngineInfo(
        version=ver.get("Version", "?"),
        api_version=ver.get("ApiVersion", "?"),
        runtimes=tuple(sorted((data.get("Runtimes") or {}).keys())),
        root_dir=data.get("DockerRootDir", ""),
        os=data.get("OperatingSystem", ""),
    )


def image(ref: str) -> ImageInfo | None:
    """The image with this tag or id, or None when the engine has none."""
    try:
        attrs = wire.call(wire.endpoint(), "GET", f"/images/{ref}/json")
    except wire.ApiError as exc:
        if exc.status == 404:
            return None
        raise UserError(f"the engine cannot inspect {ref}: {exc.message}") from None
    return _image_info(attrs)


def images(label: str) -> list[ImageInfo]:
    """Every image carrying `label` (a key, or key=value)."""
    return [_image_info(i.attrs) for i in client().images.list(filters={"label": label})]


def all_images() -> dict[str, tuple[str, ...]]:
    """Every image in the engine, untagged ones too: its id and its tags."""
    found = wire.call(wire.endpoint(), "GET", "/images/json", {"all": "1"}) or []
    return {
        str(i["Id"]): tuple(t for t in i.get("RepoTags") or () if t != "<none>:<none>")
        for i in found
    }


def discard_loaded(image_id: str, before: dict[str, tuple[str, ...]]) -> None:
    """Remove an image that a load or pull added, unless it was in `before` (`all_images()`
    taken first); a tag it took from an image of `before` goes back to that image."""
    found = image(image_id)
    if found is None:
        return
    for ref in found.tags:  # a `docker save NAME:TAG` archive moves NAME:TAG on load
        owner = next((i for i, tags in before.items() if ref in tags), None)
        if owner is not None and owner != image_id:
            tag(owner, ref)
    if image_id not in before:  # the user's own image is never removed
        remove_image(image_id)


def import_rootfs(tarball: Path, repository: str, tag: str, changes: list[str]) -> ImageInfo:
    """Import a root filesystem tarball as an image, applying Dockerfile `changes` (LABEL, CMD)."""
    c = client()
    c.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
    found = image(f"{repository}:{tag}")
    if found is None:
        raise UserError(f"the engine did not keep the imported image {repository}:{tag}")
    return found


def run_once(ref: str, command: list[str], *, user: str = "") -> str:
    """Run a throwaway container and return its stdout (raises UserError on failure)."""
    out: list[bytes] = []
    err: list[bytes] = []
    spec = ContainerSpec(ref, tuple(command), (), {}, "", user, None)
    ended = run_container(
        spec, {"io.toolkit.probe": "1"}, on_stdout=out.append, on_stderr=err.append
    )
    if ended.interrupted:
        raise KeyboardInterrupt
    if ended.exit_code != 0:
        stderr = b"".join(err).decode(errors="replace")
        reason = ended.engine_error or f"exit {ended.exit_code}"
        raise UserError(f"command {command} failed in {ref} ({reason}): {stderr[-500:]}")
    return b"".join(out).decode(errors="replace")


def remove_image(ref: str) -> None:
    """Remove an image; a missing one is not an error."""
    from docker.errors import ImageNotFound

    with contextlib.suppress(ImageNotFound):
        client().images.remove(ref, force=True)


def _image_info(attrs: dict[str, Any]) -> ImageInfo:
    """An image from the engine's inspect answer (the SDK's `Image.attrs` is the same document)."""
    return ImageInfo(
        id=str(attrs["Id"]),
        tags=tuple(attrs.get("RepoTags") or ()),
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        size=int(attrs.get("Size", 0)),
        created=str(attrs.get("Created", "")),
    )


@dataclass(frozen=True)
class BuildOutcome:
    """The end of an engine build: the image id, or the error and the step that failed."""

    image_id: str | None
    error: str | None = None
    failed_step: str | None = None


def build(
    context: Path,
    tag: str,
    labels: dict[str, str],
    *,
    on_line: Callable[[str], None],
    no_cache: bool = False,
) -> BuildOutcome:
    """Build `context` (holding a Dockerfile) with no network, tagging only on success.

    The classic builder tags at the very end, so an interrupted or failed build leaves any
    previous image with that tag untouched.
    """
    stream = client().api.build(
        path=str(context),
        tag=tag,
        labels=labels,
        network_mode="none",
        rm=True,
        forcerm=True,
        pull=False,
        nocache=no_cache,
        decode=True,
    )
    image_id: str | None = None
    step: str | None = None
    try:
        for event in stream:
            if "error" in event:
                return BuildOutcome(None, str(event["error"]).strip(), step)
            text = event.get("stream")
            if text:
                for line in text.rstrip("\n").splitlines():
                    if line.startswith("Step "):
                        step = line
                    on_line(line)
            aux = event.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = aux["ID"]
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
    if image_id is None:
        found = image(tag)
        image_id = found.id if found else None
    return BuildOutcome(image_id, None if image_id else "the engine reported no image id", step)


def prune_dangling(label: str) -> int:
    """Remove untagged images carrying `label` (a finished build's first stage); bytes freed."""
    result = client().images.prune(filters={"dangling": True, "label": label})
    return int(result.get("SpaceReclaimed") or 0)


def save(ref: str, write: Callable[[bytes], object]) -> None:
    """Stream `docker save` of `ref` (an image id saves without tags) to `write`."""
    for chunk in client().images.get(ref).save(chunk_size=4 * 1024 * 1024, named=False):
        write(chunk)


def load(source: IO[bytes]) -> str:
    """Load a `docker save` archive; returns the id of the image it held."""
    loaded = client().images.load(source)
    if not loaded:
        raise UserError("the archive held no image")
    return str(loaded[0].id)


def tag(image_id: str, ref: str) -> None:
    """Point `ref` (repository:tag) at an image."""
    from docker.errors import APIError

    repository, _, name = ref.rpartition(":")
    try:
        client().images.get(image_id).tag(repository, name)
    except APIError as exc:  # an invalid name: "repository name must be lowercase"
        raise UserError(f"cannot tag the image as {ref}: {exc.explanation or exc}") from None


def untag(ref: str) -> None:
    """Remove the tag `ref`, never an image: a tag that is its image's only name stays."""
    found = image(ref)
    if found is not None and len(found.tags) > 1:
        wire.call(wire.endpoint(), "DELETE", f"/images/{ref}", {"noprune": "1"})


@dataclass(frozen=True)
class Mount:
    """A host path bound into a container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerExit:
    """How a container ended: its exit code, or why there is none."""

    exit_code: int | None
    interrupted: bool = False
    engine_error: str | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """Everything a container is started with."""

    image: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...]
    env: dict[str, str]
    workdir: str
    user: str  # uid:gid
    gpus: str | None  # "all", a count, or device ids; None: no GPU
    network: bool = True  # False: no network at all (`--network none`), loopback only


def run_container(
    spec: ContainerSpec,
    labels: dict[str, str],
    *,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    started: Callable[[], None] = lambda: None,
    on_stop: Callable[[str], None] = lambda said: None,
) -> ContainerExit:
    """Run a command in a new container, streaming its output; Ctrl-C (or SIGTERM, SIGHUP)
    stops the container.

    The calls `docker run --rm` makes, over the engine's socket (`wire`): create, attach, wait
    for removal, start; then the output is read until the container ends. `started` is called
    once the engine has started the container: work beside the start would compete with the
    engine for the CPU (its start took 10-20 ms longer with them beside it, on 2 cores).
    """
    where = wire.endpoint()
    # Ctrl-C (SIGTERM, SIGHUP alike) is held for the container's whole life, and acted on
    # between short waits: a KeyboardInterrupt could land anywhere, a second one inside the
    # handling of the first, and leave a container nobody knows, or one that runs on unstopped.
    with interrupt.held() as pressed:
        try:
            reader = _started(where, spec, labels, on_stdout, on_stderr, started, pressed)
        except _NotStarted as exc:  # the engine failed on the way: no container is left
            return ContainerExit(None, engine_error=str(exc))
        try:
            reader.start()
            while not reader.wait(0.2):
                if pressed.is_set():
                    return ContainerExit(_stop(where, reader, pressed, on_stop), interrupted=True)
            if reader.error is not None:
                raise reader.error
            ended = reader.waiting.json() or {}
        except (OSError, ValueError) as exc:
            return ContainerExit(None, engine_error=_reason(exc))
        finally:
            reader.returned = True
            reader.close()
            _close(reader.attached, reader.waiting)
    if (ended.get("Error") or {}).get("Message"):
        return ContainerExit(None, engine_error=str(ended["Error"]["Message"])[:300])
    return ContainerExit(int(ended.get("StatusCode", -1)))


_Sinks = dict[int, Callable[[bytes], None]]


class _NotStarted(Exception):
    """The engine failed while the container was being started (it was removed)."""


class _Output(Pump):
    """A started container's output, read on a thread (what the experiment prints while
    Ctrl-C stops it is still shown and logged), with the container's answers."""

    def __init__(
        self, container: str, attached: wire.Response, waiting: wire.Response, sinks: _Sinks
    ) -> None:
        frames = ((sinks.get(kind, sinks[wire.STDOUT]), chunk) for kind, chunk in attached.frames())
        super().__init__(frames, "toolkit-output")
        self.container, self.attached, self.waiting = container, attached, waiting


def _started(
    where: wire.Endpoint,
    spec: ContainerSpec,
    labels: dict[str, str],
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    started: Callable[[], None],
    pressed: interrupt.Presses,
) -> _Output:
    """The calls `docker run --rm` makes: create, attach, wait for removal, start."""
    try:
        created = wire.call(where, "POST", "/containers/create", body=_create_body(spec, labels))
    except wire.ApiError as exc:
        raise _refused("the engine refused the container", exc) from None
    container = f"/containers/{created['Id']}"
    attached = waiting = None
    try:
        if pressed.is_set():  # before the start began: no run (raised once Ctrl-C is let go)
            raise KeyboardInterrupt
        attached = wire.send(
            where,
            "POST",
            f"{container}/attach",
            {"stream": "1", "stdout": "1", "stderr": "1"},
            upgrade=True,
            timeout=None,
        )
        # The engine answers a wait's head once the waiter is registered: the exit is never missed.
        waiting = wire.send(
            where, "POST", f"{container}/wait", {"condition": "removed"}, timeout=None
        )
        wire.call(where, "POST", f"{container}/start", timeout=None)
        started()
    except BaseException as exc:  # no container is left behind
        _close(attached, waiting)
        _remove(where, container)
        if isinstance(exc, wire.ApiError):
            raise _refused("the container did not start", exc) from None
        if isinstance(exc, (OSError, UserError)):
            raise _NotStarted(_reason(exc)) from None
        raise
    return _Output(container, attached, waiting, {wire.STDOUT: on_stdout, wire.STDERR: on_stderr})


# How Ctrl-C stops a container: each signal, and how long it has before the next. SIGINT first,
# as Ctrl-C on a terminal and for a native run (proc._stop_group): Python raises
# KeyboardInterrupt and unwinds, so buffered files are flushed and `finally` blocks and atexit
# hooks run (the runtime's report among them). `docker stop`'s SIGTERM, which Python does not
# handle, ended it on the spot and lost the metrics and checkpoint it had not flushed. SIGTERM
# 10 s later (what `docker stop` gives a program to save) for one that ignores SIGINT or saves
# only on SIGTERM; SIGKILL 10 s after that, then the time the engine may take to remove it.
STOP_SIGNALS = (("SIGINT", 10.0), ("SIGTERM", 10.0), ("SIGKILL", 30.0))


def _stop(
    where: wire.Endpoint,
    reader: _Output,
    presses: interrupt.Presses,
    on_stop: Callable[[str], None],
) -> int | None:
    """Stop the container with STOP_SIGNALS (SIGINT, SIGTERM 10 s later, SIGKILL 10 s after
    that); Ctrl-C (or SIGTERM, SIGHUP) again, counted in `presses`, sends the next signal at
    once. Done once it is gone, its output (`reader`) all shown; its exit code (130 after
    KeyboardInterrupt), or None where the engine did not say."""
    import time

    for index, (sig, grace) in enumerate(STOP_SIGNALS):
        seen, deadline = presses.count, time.monotonic() + grace
        with contextlib.suppress(OSError, UserError, wire.ApiError):  # it has ended
            wire.call(where, "POST", f"{reader.container}/kill", {"signal": sig}, timeout=30)
        if index or not reader.wait(0.3):  # said unless it ended at once, as most do
            on_stop(interrupt.stopping(STOP_SIGNALS, index, presses.first))
        while presses.count == seen and time.monotonic() < deadline:
            if reader.wait(0.2):
                with contextlib.suppress(OSError, ValueError, TypeError):
                    # the wait for its removal answers: it is gone, and how it ended
                    return int((reader.waiting.json() or {})["StatusCode"])
                return None
    return None


def _refused(what: str, exc: wire.ApiError) -> UserError:
    hint = None
    if "capabilities: [[gpu]]" in exc.message:  # a GPU target on an engine without NVIDIA's hook
        hint = (
            "this engine cannot pass GPUs to containers: install the NVIDIA Container Toolkit "
            "and restart the engine (`toolkit doctor` checks it), or run with `--native`"
        )
    return UserError(f"{what}: {exc.message}", hint=hint)


def _create_body(spec: ContainerSpec, labels: dict[str, str]) -> dict[str, Any]:
    host_config: dict[str, Any] = {
        "Mounts": [
            {"Type": "bind", "Source": str(m.source), "Target": m.target, "ReadOnly": m.read_only}
            for m in spec.mounts
        ],
        "Init": True,  # signals reach the experiment; zombies of DataLoader workers are reaped
        "AutoRemove": True,
    }
    if not spec.network:
        host_config["NetworkMode"] = "none"
    gpus = spec.gpus
    if gpus:
        if gpus == "all" or gpus.isdigit():
            request: dict[str, Any] = {"Count": -1 if gpus == "all" else int(gpus)}
        else:
            request = {"DeviceIDs": gpus.split(",")}
        host_config["DeviceRequests"] = [{**request, "Capabilities": [["gpu"]]}]
    return {
        "Image": spec.image,
        "Cmd": list(spec.command),
        "Env": [f"{name}={value}" for name, value in spec.env.items()],
        "WorkingDir": spec.workdir,
        "User": spec.user,
        "Labels": labels,
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": host_config,
    }


def _close(*responses: wire.Response | None) -> None:
    for response in responses:
        if response is not None:
            response.close()


def _remove(where: wire.Endpoint, container: str) -> None:
    with contextlib.suppress(OSError, UserError, wire.ApiError):
        wire.call(where, "DELETE", container, {"force": "1"})


def _reason(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, UserError) else str(exc) or type(exc).__name__
    return text.splitlines()[0][:300] if text else type(exc).__name__


def push(image_id: str, repository: str, tag: str) -> str:
    """Tag and push an image; returns the registry digest (sha256:...). A failed push takes
    the tag away again (or gives it back to the image it named before)."""
    from docker.errors import APIError

    c = client()
    ref = f"{repository}:{tag}"
    previous = None
    with contextlib.suppress(UserError):  # a name the engine cannot parse: tagging says why
        previous = image(ref)
    tagged = False
    try:
        c.images.get(image_id).tag(repository, tag)
        tagged = True
        digest = None
        for event in c.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise UserError(f"push to {ref} failed: {event['error']}")
            aux = event.get("aux")
            if isinstance(aux, dict) and "Digest" in aux:
                digest = str(aux["Digest"])
        if digest is None:
            raise UserError(f"the registry reported no digest for {ref}")
    except BaseException as exc:
        if tagged:
            _retag(ref, image_id, previous.id if previous else None)
        if isinstance(exc, APIError):
            reason = str(exc.explanation or exc)
            hint = None
            if "reference format" in reason:  # the engine would not tag it so
                hint = "name a repository as [REGISTRY[:PORT]/]PATH, in lowercase: reg:5000/team/x"
            raise UserError(f"push to {ref} failed: {reason}", hint=hint) from None
        raise
    return digest


def _retag(ref: str, image_id: str, previous: str | None) -> None:
    """Undo `tag(image_id, ref)`: `ref` names `previous` again, or nothing."""
    if previous == image_id:  # the tag was there before the push: it stays
        return
    with contextlib.suppress(Exception):  # the push's own error is the one to show
        if previous is None:
            untag(ref)
        else:
            tag(previous, ref)


def pull(ref: str) -> str:
    """Pull an image by reference; returns its local image id."""
    from docker.errors import APIError, ImageNotFound, NotFound

    repository, _, digest = ref.partition("@")
    try:
        pulled = client().images.pull(repository, tag=digest or None)
    except (APIError, ImageNotFound, NotFound) as exc:
        reason = getattr(exc, "explanation", None) or exc
        raise UserError(f"cannot pull {ref}: {reason}") from None
    return str(pulled.id)


def run_interactive(spec: ContainerSpec) -> int:
    """An interactive terminal in a new container.

    The SDK has no terminal handling, so this hands the terminal to the docker CLI, with the
    same settings `run_container` gives the SDK.
    """
    import shutil
    import subprocess

    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise UserError(
            "an interactive shell needs the docker command-line client",
            hint="install it (Debian: docker.io), or pass a command: toolkit shell -- CMD",
        )
    argv = [docker_cli, "run", "--rm", "-it", "--init", "--user", spec.user]
    argv += ["--workdir", spec.workdir]
    if not spec.network:
        argv += ["--network", "none"]
    for m in spec.mounts:
        option = f"type=bind,source={m.source},target={m.target}"
        argv += ["--mount", option + (",readonly" if m.read_only else "")]
    for name, value in spec.env.items():
        argv += ["--env", f"{name}={value}"]
    gpus = spec.gpus
    if gpus:
        argv += ["--gpus", gpus if gpus == "all" or gpus.isdigit() else f'"device={gpus}"']
    argv += [spec.image, *spec.command]
    return subprocess.call(argv)
