"""`toolkit doctor`: is this machine ready to lock, build and run the project?"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from toolkit import base, engine
from toolkit.config import DEBIAN_BASE, Config
from toolkit.errors import EngineUnavailable
from toolkit.hardware import GpuReport, probe_gpus

Status = Literal["ok", "warn", "fail"]
_GiB = 1024**3


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str
    fix: str | None = None


def diagnose(cfg: Config | None) -> list[Check]:
    """Every check, in the order a person fixes them."""
    checks: list[Check] = []
    info = _engine_check(checks)
    wants_gpu = bool(cfg and any(t.gpus for t in cfg.targets.values()))
    checks.append(_runtime_check(info, wants_gpu))
    gpus = probe_gpus()
    checks.append(_gpu_check(gpus, wants_gpu))
    checks.append(_disk_check(info))
    if info is not None:
        checks.extend(_base_checks(cfg))
        checks.extend(_container_check())
    if cfg is not None:
        checks.extend(_lock_checks(cfg))
        checks.extend(_driver_checks(cfg, gpus))
        if info is not None:
            checks.extend(_image_checks(cfg))
    return checks


def as_json(checks: list[Check]) -> dict[str, Any]:
    """The versioned JSON form of a report."""
    worst = _worst(checks)
    return {"schema": "toolkit.doctor/1", "status": worst, "checks": [asdict(c) for c in checks]}


def _worst(checks: list[Check]) -> Status:
    for status in ("fail", "warn"):
        if any(c.status == status for c in checks):
            return status
    return "ok"


def _engine_check(checks: list[Check]) -> engine.EngineInfo | None:
    try:
        info = engine.info()
    except EngineUnavailable as exc:
        checks.append(Check("engine", "fail", exc.message, exc.hint))
        return None
    detail = f"Docker Engine {info.version} (API {info.api_version}) on {info.os}"
    checks.append(Check("engine", "ok", detail))
    return info


def _runtime_check(info: engine.EngineInfo | None, wants_gpu: bool) -> Check:
    if info is None:
        return Check("nvidia runtime", "warn", "unknown: the engine is not running")
    if "nvidia" in info.runtimes:
        return Check("nvidia runtime", "ok", "NVIDIA container runtime registered")
    fix = (
        "install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`;"
        " or run GPU targets with `toolkit run --native`"
    )
    status: Status = "warn" if wants_gpu else "ok"
    return Check("nvidia runtime", status, "not registered: containers cannot use GPUs", fix)


def _gpu_check(report: GpuReport, wants_gpu: bool) -> Check:
    if not report.gpus:
        status: Status = "warn" if wants_gpu else "ok"
        detail = f"no GPU: {report.error or 'the driver lists none'}"
        fix = "run gpu targets on a machine with an NVIDIA GPU" if wants_gpu else None
        return Check("gpu", status, detail, fix)
    names = ", ".join(
        f"{g.index}: {g.name} ({g.memory_gib} GiB, sm_{g.compute_capability})" for g in report.gpus
    )
    return Check("gpu", "ok", f"driver {report.driver}, CUDA {report.cuda_driver}; {names}")


def _disk_check(info: engine.EngineInfo | None) -> Check:
    where = Path(info.root_dir) if info and Path(info.root_dir).is_dir() else Path.cwd()
    free = shutil.disk_usage(where).free / _GiB
    detail = f"{free:.0f} GiB free on {where}"
    if free < 5:
        return Check("disk", "fail", detail, "free space: `docker system prune`, old runs/")
    if free < 20:
        return Check("disk", "warn", detail, "a GPU image needs about 15 GiB while building")
    return Check("disk", "ok", detail)


def _base_checks(cfg: Config | None) -> list[Check]:
    present = engine.images(base.LABEL_HASH)  # target images inherit the label: keep bases only
    names = (
        ", ".join(t for img in present for t in img.tags if t.startswith(base.REPOSITORY + ":"))
        or "none"
    )
    checks = [Check("base images", "ok", f"bootstrapped bases: {names}")]
    if cfg is None:
        return checks
    for target in cfg.targets.values():
        if target.base == DEBIAN_BASE:
            ref = f"{base.REPOSITORY}:{base.base_tag(cfg.base)}"
            if engine.image(ref) is None:
                checks.append(
                    Check(f"base for {target.name}", "warn", f"{ref} missing", "run `toolkit base`")
                )
            else:
                checks.append(Check(f"base for {target.name}", "ok", ref))
        elif not target.base_is_pinned:
            checks.append(
                Check(
                    f"base for {target.name}",
                    "warn",
                    f"{target.base} is not pinned by digest",
                    "use name@sha256:<digest> so every build starts from the same bytes",
                )
            )
        else:
            present_ref = engine.image(target.base) is not None
            checks.append(
                Check(
                    f"base for {target.name}",
                    "ok" if present_ref else "warn",
                    target.base + ("" if present_ref else " not pulled"),
                    None if present_ref else f"docker pull {target.base}",
                )
            )
    return checks


def _container_check() -> list[Check]:
    """Start a container as `toolkit run` does: an engine that answers may still fail to start
    one (a missing bridge network, a broken runtime). Tried from a base image; none, no try."""
    from toolkit.errors import UserError

    present = engine.images(base.LABEL_HASH)
    ref = next((t for img in present for t in img.tags if t.startswith(base.REPOSITORY + ":")), "")
    if not ref:
        return []
    try:
        engine.run_once(ref, ["true"])
    except UserError as exc:
        return [
            Check(
                "containers",
                "fail",
                f"the engine cannot start a container: {exc.message}",
                "restart the engine (`systemctl restart docker`, or stop dockerd and run "
                "`make engine`); its log says why",
            )
        ]
    return [Check("containers", "ok", f"started and ended one from {ref}")]


def _lock_checks(cfg: Config) -> list[Check]:
    from toolkit import lock
    from toolkit.errors import UserError

    checks = []
    for name in cfg.targets:
        try:
            found = lock.status(cfg, name)
        except UserError as exc:
            checks.append(Check(f"lock {name}", "warn", exc.message, exc.hint))
            continue
        rel = (
            found.lockfile.relative_to(cfg.root)
            if found.lockfile.is_relative_to(cfg.root)
            else found.lockfile
        )
        if found.state == "current":
            checks.append(Check(f"lock {name}", "ok", f"{rel} is current"))
        else:
            checks.append(
                Check(
                    f"lock {name}",
                    "warn",
                    f"{rel} {found.reason}",
                    f"run `toolkit lock --target {name}`",
                )
            )
    return checks


def _image_checks(cfg: Config) -> list[Check]:
    from toolkit import image
    from toolkit.errors import UserError

    checks = []
    for target in cfg.targets.values():
        try:
            ref = image.plan(cfg, target).ref
        except UserError as exc:
            checks.append(Check(f"image {target.name}", "warn", exc.message, exc.hint))
            continue
        if engine.image(ref) is not None:
            checks.append(Check(f"image {target.name}", "ok", f"{ref} is current"))
            continue
        older = [i for i in image.project_images(cfg) if i.target == target.name]
        detail = f"{ref} missing" + (f"; {len(older)} older image(s) present" if older else "")
        fix = f"`toolkit build --target {target.name}`, or `toolkit image import FILE` / `pull`"
        checks.append(Check(f"image {target.name}", "warn", detail, fix))
    return checks


def required_cuda(lock_text: str) -> str | None:
    """The CUDA version a lockfile's torch build needs (from +cuXYZ or the CUDA runtime wheel)."""
    local = re.search(r"^torch==[^+\s]+\+cu(\d+)(\d)\b", lock_text, re.MULTILINE)
    if local:
        return f"{local[1]}.{local[2]}"
    runtime = re.search(r"^nvidia-cuda-runtime(?:-cu\d+)?==(\d+)\.(\d+)", lock_text, re.MULTILINE)
    return f"{runtime[1]}.{runtime[2]}" if runtime else None


def _driver_checks(cfg: Config, gpus: GpuReport) -> list[Check]:
    checks = []
    for target in cfg.targets.values():
        if not target.gpus or not target.lockfile.is_file():
            continue
        needed = required_cuda(target.lockfile.read_text(encoding="utf-8"))
        if needed is None:
            continue
        name = f"driver {target.name}"
        if gpus.cuda_driver is None:
            checks.append(
                Check(
                    name,
                    "warn",
                    f"lockfile needs CUDA {needed}; no NVIDIA driver here",
                    "run this target on a GPU machine",
                )
            )
        elif _version(gpus.cuda_driver) >= _version(needed):
            checks.append(Check(name, "ok", f"driver supports CUDA {gpus.cuda_driver} >= {needed}"))
        else:
            status: Status = (
                "fail" if _version(gpus.cuda_driver)[0] < _version(needed)[0] else "warn"
            )
            checks.append(
                Check(
                    name,
                    status,
                    f"driver {gpus.driver} supports CUDA {gpus.cuda_driver}, "
                    f"the lockfile needs {needed}",
                    "update the NVIDIA driver, or lock an older CUDA build of torch",
                )
            )
    return checks


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))
