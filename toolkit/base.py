"""Base images with no registry: debootstrap a minimal Debian with Python, tagged by its inputs."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolkit import engine
from toolkit.config import DEBIAN_BASE, BaseConfig, TargetConfig
from toolkit.errors import UserError

REPOSITORY = "toolkit-base"
LABEL_HASH = "io.toolkit.base.hash"
RECIPE_VERSION = "1"  # bump when the bootstrap steps below change what ends up in the image
_TRIM = ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "var/log")


@dataclass(frozen=True)
class BaseImage:
    """A base image in the engine and whether this call built it."""

    ref: str  # repository:tag
    id: str  # sha256:... (the digest builds pin)
    built: bool
    seconds: float


def base_tag(cfg: BaseConfig) -> str:
    """The content tag of the base that `cfg` describes: suite plus a hash of every input."""
    inputs = {
        "suite": cfg.suite,
        "mirror": cfg.effective_mirror,
        "packages": sorted(cfg.packages),
        "arch": _debian_arch(),
        "recipe": RECIPE_VERSION,
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return f"{cfg.suite}-{digest[:16]}"


def ensure_base(
    cfg: BaseConfig, *, log: Path, on_progress: Callable[[str], None] = lambda _: None
) -> BaseImage:
    """Reuse the base image for `cfg` when present; otherwise bootstrap and import it."""
    started = time.monotonic()
    tag = base_tag(cfg)
    ref = f"{REPOSITORY}:{tag}"
    existing = engine.image(ref)
    if existing is not None:
        return BaseImage(ref, existing.id, built=False, seconds=time.monotonic() - started)

    if os.geteuid() != 0:
        raise UserError(
            "bootstrapping a base image needs root (debootstrap creates device nodes and owners)",
            hint="run `sudo toolkit base`, or use a registry base pinned by digest in toolkit.yaml",
        )
    import shutil
    import tempfile

    from toolkit import proc

    debootstrap = proc.require("debootstrap", "apt-get install debootstrap  (or: make engine)")
    log.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="toolkit-base-", dir=_scratch_dir()))
    try:
        rootfs = work / "rootfs"
        on_progress(f"debootstrap {cfg.suite} from {cfg.effective_mirror} (about a minute)")
        result = proc.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(cfg.packages)}",
                cfg.suite,
                str(rootfs),
                cfg.effective_mirror,
            ],
            log=log,
            on_line=lambda line: on_progress(line[:100]) if line.startswith("I: ") else None,
        )
        if not result.ok:
            raise UserError(
                f"debootstrap failed (exit {result.returncode}): {_last_error(result.tail)}",
                hint=f"full log: {log}; check that {cfg.effective_mirror} is reachable",
            )
        for part in _TRIM:
            shutil.rmtree(rootfs / part, ignore_errors=True)
            (rootfs / part).mkdir(parents=True, exist_ok=True)
        on_progress("packing root filesystem")
        tarball = work / "rootfs.tar"
        tar = proc.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tarball), "."],
            log=log,
        )
        if not tar.ok:
            raise UserError(f"packing the root filesystem failed: {_last_error(tar.tail)}")
        on_progress(f"importing into the engine as {ref}")
        image = engine.import_rootfs(
            tarball,
            REPOSITORY,
            tag,
            changes=[
                f'LABEL {LABEL_HASH}="{tag}"',
                f'LABEL io.toolkit.base.suite="{cfg.suite}"',
                f'LABEL io.toolkit.base.packages="{" ".join(sorted(cfg.packages))}"',
                "ENV LANG=C.UTF-8",
                'CMD ["/bin/bash"]',
            ],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BaseImage(ref, image.id, built=True, seconds=time.monotonic() - started)


def base_ref(target: TargetConfig, cfg: BaseConfig) -> str:
    """The reference a target builds FROM; it names its content (an input hash or a digest)."""
    return f"{REPOSITORY}:{base_tag(cfg)}" if target.base == DEBIAN_BASE else target.base


def require_base(target: TargetConfig, cfg: BaseConfig) -> engine.ImageInfo:
    """The target's base image in the engine, or an error saying how to get it."""
    ref = base_ref(target, cfg)
    found = engine.image(ref)
    if found is not None:
        return found
    if target.base == DEBIAN_BASE:
        raise UserError(f"base image {ref} is missing", hint="run `toolkit base` first")
    raise UserError(
        f"base image {ref} (target {target.name}) is not in the engine",
        hint=f"`docker pull {ref}`, or set `base: debian` and run `toolkit base`",
    )


def _scratch_dir() -> str:
    # debootstrap needs a filesystem without nodev/noexec; /var/tmp is disk-backed, unlike /tmp
    import tempfile

    return "/var/tmp" if os.path.isdir("/var/tmp") else tempfile.gettempdir()


def _debian_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _last_error(tail: tuple[str, ...]) -> str:
    errors = [line for line in tail if line.startswith(("E:", "W:")) or "error" in line.lower()]
    return (errors or list(tail) or ["no output"])[-1][:300]
