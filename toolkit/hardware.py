"""The machine a run happens on: CPU model and ISA, cores, GPUs, driver (via nvidia-ml-py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_GiB = 1024**3
# Where a loaded NVIDIA driver shows (WSL2 exposes its GPUs through /dev/dxg instead): without
# one, NVML cannot answer, and loading nvidia-ml-py to hear that costs every run ~10 ms.
_NVIDIA_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg")
_ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "asimd", "sve")


@dataclass(frozen=True)
class Gpu:
    """One GPU as the driver reports it."""

    index: int
    name: str
    memory_gib: float
    compute_capability: str
    sm_count: int | None = None


@dataclass(frozen=True)
class GpuReport:
    """What nvidia-ml-py sees; `error` says why it sees nothing."""

    driver: str | None
    cuda_driver: str | None  # the newest CUDA version the driver supports, e.g. "13.0"
    gpus: tuple[Gpu, ...]
    error: str | None = None


def probe_gpus() -> GpuReport:
    """GPUs, driver and CUDA driver version through nvidia-ml-py; no GPU is a fact, not an error."""
    if not any(os.path.exists(p) for p in _NVIDIA_DRIVER_PATHS):
        return GpuReport(None, None, (), error="no NVIDIA driver (no /proc/driver/nvidia)")
    try:
        import pynvml
    except ImportError:
        return GpuReport(None, None, (), error="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return GpuReport(None, None, (), error=f"no NVIDIA driver ({exc})")
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total / _GiB
            name = _text(pynvml.nvmlDeviceGetName(handle))
            gpus.append(Gpu(i, name, round(memory, 1), f"{major}.{minor}", _sm_count(handle)))
        return GpuReport(driver, f"{cuda // 1000}.{cuda % 1000 // 10}", tuple(gpus))
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _sm_count(handle: Any) -> int | None:
    import pynvml

    try:
        return int(pynvml.nvmlDeviceGetAttributes(handle).multiprocessorCount)
    except Exception:  # not supported on every GPU and driver
        return None


def host_facts() -> dict[str, Any]:
    """CPU model, ISA extensions that change kernels, core count, OS: the hardware fingerprint."""
    model, flags = _cpuinfo()
    gpus = probe_gpus()
    uname = os.uname()  # what `platform` reads, without its ~1 ms import
    return {
        "machine": uname.machine,
        "cpu_model": model,
        "cpu_isa": [f for f in _ISA_FLAGS if f in flags],
        "cpu_count": os.cpu_count(),
        "os": f"{uname.sysname} {uname.release}",
        "hostname": uname.nodename,
        "gpu_driver": gpus.driver,
        "cuda_driver": gpus.cuda_driver,
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "memory_gib": g.memory_gib,
                "compute_capability": g.compute_capability,
                "sm_count": g.sm_count,
            }
            for g in gpus.gpus
        ],
    }


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        import platform

        return platform.processor() or "unknown", set()
    model, flags = "unknown", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags
