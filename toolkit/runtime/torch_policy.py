"""The policy for torch, applied right after the user's code imports it; DataLoader forcing."""

from __future__ import annotations

import sys

from toolkit.runtime import alerts
from toolkit.runtime.apply import guarded
from toolkit.runtime.policy import Policy
from toolkit.runtime.report import APPLIED, FAILED, NOT_APPLICABLE, Report, current

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

# Where torch >= 2.9 spells TF32 as fp32_precision. cudnn.conv/rnn are left out on purpose:
# setting them to "ieee" makes every later read of torch.backends.cudnn.allow_tf32 raise
# (torch 2.13: "a mix of the legacy and new APIs"), which would break user code that reads it;
# allow_tf32 = False already leaves them at "none", torch's own mapping of "no TF32".
FP32_PRECISION = ("cuda.matmul", "mkldnn", "mkldnn.matmul", "mkldnn.conv", "mkldnn.rnn")
FP32_READ_ONLY = ("cudnn.conv", "cudnn.rnn")

# The key of state() that reads back each setting the policy applies (overridden() compares).
READ_BACK = {
    "torch.backends.cudnn.deterministic": "cudnn.deterministic",
    "torch.backends.cudnn.benchmark": "cudnn.benchmark",
    "torch.backends.cuda.matmul.allow_tf32": "cuda.matmul.allow_tf32",
    "torch.backends.cudnn.allow_tf32": "cudnn.allow_tf32",
    "torch.set_float32_matmul_precision": "float32_matmul_precision",
    "torch.set_num_threads": "num_threads",
    "torch.set_num_interop_threads": "num_interop_threads",
    "torch.backends.mkldnn.deterministic": "mkldnn.deterministic",
    "torch.backends.mkldnn.enabled": "mkldnn.enabled",
    "torch.utils.deterministic.fill_uninitialized_memory": "fill_uninitialized_memory",
    **{
        f"torch.backends.{path}.fp32_precision": f"{path}.fp32_precision"
        for path in (*FP32_PRECISION, *FP32_READ_ONLY)
    },
}
# Where the runtime only reads fp32_precision back, either of these means "no TF32".
READ_ONLY = {f"torch.backends.{path}.fp32_precision" for path in FP32_READ_ONLY}
NO_TF32 = ("ieee", "none")


def apply(torch: ModuleType, policy: Policy, report: Report) -> None:
    """The torch part of the checklist, each item recorded with the value read back."""
    alerts.install(report)
    seed = policy.seed
    guarded(report, "torch.manual_seed", seed, lambda: torch.manual_seed(seed))
    guarded(
        report,
        "torch.cuda.manual_seed_all",
        seed,
        lambda: torch.cuda.manual_seed_all(seed),
        "queued by torch until CUDA initializes",
    )
    deterministic_algorithms(torch, policy, report)
    backends = torch.backends
    set_attr(report, "torch.backends.cudnn.deterministic", backends.cudnn, "deterministic", True)
    set_attr(report, "torch.backends.cudnn.benchmark", backends.cudnn, "benchmark", False)
    set_attr(
        report, "torch.backends.cuda.matmul.allow_tf32", backends.cuda.matmul, "allow_tf32", False
    )
    set_attr(report, "torch.backends.cudnn.allow_tf32", backends.cudnn, "allow_tf32", False)
    fp32_precision(torch, report)
    guarded(
        report,
        "torch.set_float32_matmul_precision",
        "highest",
        lambda: torch.set_float32_matmul_precision("highest"),
    )
    threads(torch, policy, report)
    set_attr(report, "torch.backends.mkldnn.deterministic", backends.mkldnn, "deterministic", True)
    deterministic = getattr(torch.utils, "deterministic", None)
    set_attr(
        report,
        "torch.utils.deterministic.fill_uninitialized_memory",
        deterministic,
        "fill_uninitialized_memory",
        True,
    )
    if policy.cpu == "portable":
        set_attr(report, "torch.backends.mkldnn.enabled", backends.mkldnn, "enabled", False)
        cpu_capability(torch, report)
    report.facts["torch"] = lambda final: facts(torch, final)
    report.checks.append(lambda found: overridden(found.get("torch"), report))
    data = sys.modules.get("torch.utils.data")
    if data is not None:
        patch_dataloader(data, policy, report)


def set_attr(report: Report, name: str, owner: object, attr: str, value: object) -> None:
    """Set a flag and read it back; a flag this torch lacks is recorded as not applicable."""
    if owner is None or not hasattr(owner, attr):
        report.setting(name, value, NOT_APPLICABLE, "not in this torch version")
        return
    try:
        setattr(owner, attr, value)
        found = getattr(owner, attr)
    except Exception as exc:
        report.setting(name, value, FAILED, f"{type(exc).__name__}: {exc}")
        return
    if found == value:
        report.setting(name, value, APPLIED)
    else:
        report.setting(name, value, FAILED, f"reads back {found!r}")


def deterministic_algorithms(torch: ModuleType, policy: Policy, report: Report) -> None:
    """torch.use_deterministic_algorithms(True, warn_only=not strict), without its 0.9 s import.

    The public function imports torch._inductor.config just to set one flag there; the runtime
    sets the same core flag directly and sets inductor's flag when (if ever) inductor loads
    (TORCHINDUCTOR_DETERMINISTIC=1 sets it too).
    """
    warn_only = not policy.strict
    name = "torch.use_deterministic_algorithms"
    core = getattr(torch._C, "_set_deterministic_algorithms", None)
    try:
        if core is not None and "torch._inductor.config" not in sys.modules:
            core(True, warn_only=warn_only)
            detail = "torch._inductor.config.deterministic is set when inductor loads"
        else:
            torch.use_deterministic_algorithms(True, warn_only=warn_only)
            detail = ""
        enabled = torch.are_deterministic_algorithms_enabled()
        warns = torch.is_deterministic_algorithms_warn_only_enabled()
    except Exception as exc:
        report.setting(name, True, FAILED, f"{type(exc).__name__}: {exc}")
        return
    value = {"mode": True, "warn_only": warn_only}
    if enabled and warns == warn_only:
        report.setting(name, value, APPLIED, detail)
    else:
        report.setting(name, value, FAILED, f"reads back mode={enabled}, warn_only={warns}")


def fp32_precision(torch: ModuleType, report: Report) -> None:
    """The newer TF32 switch: "ieee" wherever setting it leaves the legacy flags readable."""
    for path in FP32_PRECISION:
        owner = _lookup(torch.backends, path)
        set_attr(report, f"torch.backends.{path}.fp32_precision", owner, "fp32_precision", "ieee")
    for path in FP32_READ_ONLY:
        owner = _lookup(torch.backends, path)
        name = f"torch.backends.{path}.fp32_precision"
        found = getattr(owner, "fp32_precision", None)
        if found is None:
            report.setting(name, None, NOT_APPLICABLE, "not in this torch version")
        elif found in ("ieee", "none"):
            detail = "set through allow_tf32 = False (see FP32_READ_ONLY)"
            report.setting(name, found, APPLIED, detail)
        else:
            report.setting(name, found, FAILED, "TF32 still on after allow_tf32 = False")


def threads(torch: ModuleType, policy: Policy, report: Report) -> None:
    """Fix intra- and inter-op thread counts; a later user call for interop cannot crash."""
    count = policy.threads
    guarded(report, "torch.set_num_threads", count, lambda: torch.set_num_threads(count))
    name = "torch.set_num_interop_threads"
    try:
        torch.set_num_interop_threads(count)
    except RuntimeError as exc:
        # torch allows one call per process, before any inter-op work has started.
        found = torch.get_num_interop_threads()
        status = APPLIED if found == count else FAILED
        report.setting(name, count, status, f"torch refused ({exc}); it reads {found}")
    else:
        report.setting(name, count, APPLIED)
    original = torch.set_num_interop_threads
    if getattr(original, "_toolkit_wrapped", False):
        return

    def set_num_interop_threads(value: int) -> None:
        # The runtime's own call used torch's only chance: a second call would raise.
        if value != count:
            found = torch.get_num_interop_threads()
            reporter = current()
            if reporter is not None:
                reporter.force(f"torch.set_num_interop_threads {value} -> {found} (policy)")

    set_num_interop_threads._toolkit_wrapped = True  # type: ignore[attr-defined]
    set_num_interop_threads.__doc__ = original.__doc__
    torch.set_num_interop_threads = set_num_interop_threads  # type: ignore[attr-defined]


def cpu_capability(torch: ModuleType, report: Report) -> None:
    """In portable mode torch must dispatch its baseline CPU kernels (ATEN_CPU_CAPABILITY)."""
    name = "torch cpu capability"
    try:
        found = torch.backends.cpu.get_cpu_capability()
    except Exception as exc:
        report.setting(name, "DEFAULT", FAILED, f"{type(exc).__name__}: {exc}")
        return
    if found == "DEFAULT":
        report.setting(name, found, APPLIED)
    else:
        detail = "ATEN_CPU_CAPABILITY=default was not set when torch loaded"
        report.setting(name, "DEFAULT", FAILED, f"torch dispatches {found}: {detail}")


def facts(torch: ModuleType, final: bool) -> dict[str, object]:
    """torch's versions, hardware and flags as they are now (for the run record)."""
    cuda = torch.cuda
    devices = []
    # Querying devices initializes CUDA; do it only once the user did, or at exit, and never
    # in a child forked after its parent initialized CUDA (torch raises there).
    forked = _read(getattr(cuda, "_is_in_bad_fork", lambda: False)) is True
    initialized = _read(cuda.is_initialized) is True
    if not forked and (initialized or (final and _read(cuda.is_available) is True)):
        for index in range(cuda.device_count()):
            props = cuda.get_device_properties(index)
            devices.append(
                {
                    "name": props.name,
                    "capability": f"{props.major}.{props.minor}",
                    "sm_count": props.multi_processor_count,
                    "total_memory": props.total_memory,
                }
            )
    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": _read(torch.backends.cudnn.version),
        "cpu_capability": _read(torch.backends.cpu.get_cpu_capability),
        "devices": devices,
        "state": state(torch),
    }


def state(torch: ModuleType) -> dict[str, object]:
    """The flags the policy sets, read back now: user code may have changed them since."""
    backends = torch.backends
    flags: dict[str, Callable[[], object]] = {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled,
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled,
        "cudnn.deterministic": lambda: backends.cudnn.deterministic,
        "cudnn.benchmark": lambda: backends.cudnn.benchmark,
        "cuda.matmul.allow_tf32": lambda: backends.cuda.matmul.allow_tf32,
        "cudnn.allow_tf32": lambda: backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision,
        "num_threads": torch.get_num_threads,
        "num_interop_threads": torch.get_num_interop_threads,
        "mkldnn.enabled": lambda: backends.mkldnn.enabled,
        "mkldnn.deterministic": lambda: getattr(backends.mkldnn, "deterministic", None),
        "fill_uninitialized_memory": lambda: torch.utils.deterministic.fill_uninitialized_memory,
    }
    found = {name: _read(read) for name, read in flags.items()}
    for path in (*FP32_PRECISION, *FP32_READ_ONLY):
        owner = _lookup(backends, path)
        found[f"{path}.fp32_precision"] = getattr(owner, "fp32_precision", None)
    return found


def overridden(torch_facts: object, report: Report) -> list[dict[str, object]]:
    """Each applied setting whose value torch reads back differently now: the program set it
    again after the policy (torch.set_num_threads(8), cudnn.benchmark = True, ...)."""
    found = torch_facts.get("state") if isinstance(torch_facts, dict) else None
    if not isinstance(found, dict):
        return []
    changed: list[dict[str, object]] = []
    for entry in list(report.settings.values()):
        name, policy = str(entry["name"]), entry["value"]
        if entry["status"] != APPLIED:
            continue  # never took: the settings list says so already
        if name == "torch.use_deterministic_algorithms":
            now: object = {
                "mode": found.get("deterministic_algorithms"),
                "warn_only": found.get("deterministic_warn_only"),
            }
        elif name in READ_BACK:
            now = found.get(READ_BACK[name])
        else:
            continue
        if (now in NO_TF32) if name in READ_ONLY else (now == policy):
            continue
        changed.append({"name": name, "policy": policy, "found": now})
    return changed


def patch_dataloader(data: ModuleType, policy: Policy, report: Report) -> None:
    """Force every DataLoader's workers, generator and worker seeding to the policy."""
    from toolkit.runtime import dataloader

    dataloader.patch(data.DataLoader, policy, report)


def _lookup(root: object, path: str) -> object:
    for part in path.split("."):
        root = getattr(root, part, None)
    return root


def _read(read: Callable[[], object]) -> object:
    try:
        return read()
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"
