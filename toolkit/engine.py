"""The one module that talks to the Docker Engine (through the `docker` SDK, imported lazily)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from toolkit.errors import EngineUnavailable, UserError

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
    except DockerException as exc:
        reason = str(exc).splitlines()[0][:200]
        raise EngineUnavailable(f"no Docker Engine answers ({reason})", hint=ENGINE_HINT) from None
    return docker_client


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
    from docker.errors import ImageNotFound

    try:
        return _image_info(client().images.get(ref))
    except ImageNotFound:
        return None


def images(label: str) -> list[ImageInfo]:
    """Every image carrying `label` (a key, or key=value)."""
    return [_image_info(i) for i in client().images.list(filters={"label": label})]


def import_rootfs(tarball: Path, repository: str, tag: str, changes: list[str]) -> ImageInfo:
    """Import a root filesystem tarball as an image, applying Dockerfile `changes` (LABEL, CMD)."""
    c = client()
    c.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
    found = image(f"{repository}:{tag}")
    if found is None:
        raise UserError(f"the engine did not keep the imported image {repository}:{tag}")
    return found


def run_once(ref: str, command: list[str], **options: Any) -> str:
    """Run a throwaway container and return its output (raises UserError on failure)."""
    from docker.errors import ContainerError

    try:
        out = client().containers.run(ref, command, remove=True, **options)
    except ContainerError as exc:
        stderr = exc.stderr.decode(errors="replace") if exc.stderr else ""
        raise UserError(
            f"command {command} failed in {ref} (exit {exc.exit_status}): {stderr[-500:]}"
        ) from None
    return out.decode(errors="replace") if isinstance(out, bytes) else str(out)


def remove_image(ref: str) -> None:
    """Remove an image; a missing one is not an error."""
    from docker.errors import ImageNotFound

    with contextlib.suppress(ImageNotFound):
        client().images.remove(ref, force=True)


def _image_info(img: Any) -> ImageInfo:
    attrs = img.attrs
    return ImageInfo(
        id=img.id,
        tags=tuple(img.tags),
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


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


def prune_dangling(label: str) -> int:
    """Remove untagged images carrying `label` (a finished build's first stage); bytes freed."""
    result = client().images.prune(filters={"dangling": True, "label": label})
    return int(result.get("SpaceReclaimed") or 0)


def save(ref: str, dest: Writable) -> None:
    """Write `docker save` of `ref` (an image id saves without tags) to a binary stream."""
    for chunk in client().images.get(ref).save(chunk_size=4 * 1024 * 1024, named=False):
        dest.write(chunk)


def load(source: IO[bytes]) -> str:
    """Load a `docker save` archive; returns the id of the image it held."""
    loaded = client().images.load(source)
    if not loaded:
        raise UserError("the archive held no image")
    return str(loaded[0].id)


def tag(image_id: str, ref: str) -> None:
    """Point `ref` (repository:tag) at an image."""
    repository, _, name = ref.rpartition(":")
    client().images.get(image_id).tag(repository, name)


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


def run_container(
    spec: ContainerSpec,
    labels: dict[str, str],
    *,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
) -> ContainerExit:
    """Run a command in a new container, streaming its output; Ctrl-C stops the container."""
    import threading

    import docker.types
    from docker.errors import APIError, DockerException
    from requests.exceptions import ConnectionError as RequestsConnectionError

    c = client()
    device_requests = []
    gpus = spec.gpus
    if gpus:
        count, ids = (-1, None) if gpus == "all" else (None, gpus.split(","))
        if ids and len(ids) == 1 and gpus.isdigit():
            count, ids = int(gpus), None
        device_requests.append(
            docker.types.DeviceRequest(count=count, device_ids=ids, capabilities=[["gpu"]])
        )
    try:
        container = c.containers.create(
            spec.image,
            list(spec.command),
            mounts=[
                docker.types.Mount(m.target, str(m.source), type="bind", read_only=m.read_only)
                for m in spec.mounts
            ],
            environment=spec.env,
            working_dir=spec.workdir,
            user=spec.user,
            labels=labels,
            device_requests=device_requests or None,
            init=True,  # signals reach the experiment; zombies of DataLoader workers are reaped
        )
    except APIError as exc:
        raise UserError(f"the engine refused the container: {exc.explanation or exc}") from None

    def pump(stdout: bool, sink: Callable[[bytes], None]) -> None:
        try:
            for chunk in c.api.logs(
                container.id, stdout=stdout, stderr=not stdout, stream=True, follow=True
            ):
                sink(chunk)
        except (DockerException, RequestsConnectionError, OSError):
            pass  # the engine went away; wait() below reports it

    try:
        container.start()
        pumps = [
            threading.Thread(target=pump, args=(True, on_stdout), daemon=True),
            threading.Thread(target=pump, args=(False, on_stderr), daemon=True),
        ]
        for thread in pumps:
            thread.start()
        try:
            result = container.wait()
        except KeyboardInterrupt:
            container.stop(timeout=10)
            for thread in pumps:
                thread.join(timeout=5)
            return ContainerExit(None, interrupted=True)
        for thread in pumps:
            thread.join(timeout=30)
        return ContainerExit(int(result.get("StatusCode", -1)))
    except (DockerException, RequestsConnectionError) as exc:
        return ContainerExit(None, engine_error=str(exc).splitlines()[0][:300])
    finally:
        with contextlib.suppress(DockerException, RequestsConnectionError):
            container.remove(force=True)


def push(image_id: str, repository: str, tag: str) -> str:
    """Tag and push an image; returns the registry digest (sha256:...)."""
    from docker.errors import APIError

    c = client()
    c.images.get(image_id).tag(repository, tag)
    digest = None
    try:
        for event in c.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise UserError(f"push to {repository}:{tag} failed: {event['error']}")
            aux = event.get("aux")
            if isinstance(aux, dict) and "Digest" in aux:
                digest = str(aux["Digest"])
    except APIError as exc:
        raise UserError(f"push to {repository}:{tag} failed: {exc.explanation or exc}") from None
    if digest is None:
        raise UserError(f"the registry reported no digest for {repository}:{tag}")
    return digest


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
