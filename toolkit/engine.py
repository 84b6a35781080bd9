"""The one module that talks to the Docker Engine (through the `docker` SDK, imported lazily)."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
