"""`toolkit doctor`: is this machine ready to lock, build and run the project?"""

from __future__ import annotations

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
    checks.append(_gpu_check(probe_gpus(), wants_gpu))
    checks.append(_disk_check(info))
    if info is not None:
        checks.extend(_base_checks(cfg))
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
    present = engine.images(base.LABEL_HASH)
    names = ", ".join(t for img in present for t in img.tags) or "none"
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
