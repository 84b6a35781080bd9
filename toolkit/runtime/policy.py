"""The determinism policy a run applies, and the environment variables that carry it."""

from __future__ import annotations

from toolkit.runtime.jsonlite import loads_flat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

POLICY_VAR = "TOOLKIT_POLICY"
# TOOLKIT_POLICY=null: apply nothing, record what the libraries do by default (--no-policy).
OBSERVE = "null"
RUN_DIR_VAR = "TOOLKIT_RUN_DIR"
# Set by `toolkit shell`, where no launcher reads the record after a command to explain how it
# ended: the runtime then says itself what to do about a strict-mode stop.
SHELL_VAR = "TOOLKIT_SHELL"
CPU_LEVELS = ("fixed", "portable")

# Any of these left in the environment would turn TF32 back on behind the policy's back.
UNSET = ("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",)

XLA_DETERMINISTIC = "--xla_gpu_deterministic_ops=true"


class PolicyError(ValueError):
    """TOOLKIT_POLICY is not a valid policy."""


class Policy:
    """What the launcher asks every Python process of a run to apply."""

    # A hand-written frozen value rather than a dataclass: importing dataclasses (and with it
    # inspect) would add ~7 ms to the start of every Python process of the run.
    __slots__ = ("cpu", "dataloader_workers", "seed", "strict", "threads")
    FIELDS = ("seed", "threads", "dataloader_workers", "strict", "cpu")

    seed: int
    threads: int
    dataloader_workers: int
    strict: bool
    cpu: str

    def __init__(
        self,
        seed: int = 0,
        threads: int = 1,
        dataloader_workers: int = 0,
        strict: bool = True,
        cpu: str = "fixed",
    ) -> None:
        values = (seed, threads, dataloader_workers, strict, cpu)
        # Not zip(..., strict=True): the runtime runs on the image's Python, 3.8 and later.
        for index, name in enumerate(self.FIELDS):
            object.__setattr__(self, name, values[index])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Policy is frozen: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.as_dict().values()))

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.as_dict().items())
        return f"Policy({args})"

    def as_dict(self) -> dict[str, int | bool | str]:
        """Plain dict, as recorded in reports."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def to_json(self) -> str:
        """The TOOLKIT_POLICY value for this policy."""
        import json  # the launcher's side

        return json.dumps(self.as_dict(), sort_keys=True)


def parse(text: str) -> Policy:
    """Policy from its TOOLKIT_POLICY JSON; unknown keys are an error, missing ones default."""
    raw: object = loads_flat(text)  # the launcher's form, read without importing json
    if raw is None:
        import json

        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise PolicyError(f"{POLICY_VAR} is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise PolicyError(f"{POLICY_VAR} must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(Policy.FIELDS))
    if unknown:
        raise PolicyError(f"{POLICY_VAR} has unknown keys: {', '.join(unknown)}")
    for key in ("seed", "threads", "dataloader_workers"):
        value = raw.get(key, 0)
        # bool is an int subclass: {"threads": true} is a mistake, not 1.
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PolicyError(f"{POLICY_VAR}.{key} must be a non-negative integer, got {value!r}")
    if raw.get("threads", 1) < 1:
        raise PolicyError(f"{POLICY_VAR}.threads must be at least 1, got {raw['threads']!r}")
    if not isinstance(raw.get("strict", True), bool):
        raise PolicyError(f"{POLICY_VAR}.strict must be true or false, got {raw['strict']!r}")
    if raw.get("cpu", "fixed") not in CPU_LEVELS:
        raise PolicyError(f"{POLICY_VAR}.cpu must be one of {CPU_LEVELS}, got {raw['cpu']!r}")
    return Policy(**raw)


def from_environ(environ: Mapping[str, str]) -> Policy | None:
    """The policy in TOOLKIT_POLICY, or None when the variable is absent, empty or `null`."""
    text = environ.get(POLICY_VAR, "").strip()
    return parse(text) if text and text != OBSERVE else None


def environment(policy: Policy, current: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables to set before a process starts (read by libraries as they load).

    With `current`, XLA_FLAGS keeps the flags already there and gains the deterministic one.
    """
    threads = str(policy.threads)
    env = {
        "PYTHONHASHSEED": str(policy.seed),
        # The cuBLAS setting that makes its GEMMs deterministic (CUDA >= 10.2).
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "NVIDIA_TF32_OVERRIDE": "0",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        # AUTO: MKL's conditional numerical reproducibility on this CPU's own code path, so
        # results no longer depend on memory alignment, at no measurable cost. ",STRICT" would
        # also make a few BLAS calls independent of thread count; `fixed` fixes the thread count
        # instead, and `portable` pins everything to the baseline (COMPATIBLE).
        "MKL_CBWR": "AUTO" if policy.cpu == "fixed" else "COMPATIBLE",
        "ONEDNN_DEFAULT_FPMATH_MODE": "strict",
        "TORCHINDUCTOR_DETERMINISTIC": "1",
        "FLASH_ATTENTION_DETERMINISTIC": "1",
        "XLA_FLAGS": _xla_flags((current or {}).get("XLA_FLAGS", "")),
        "TF_DETERMINISTIC_OPS": "1",
    }
    if policy.cpu == "portable":
        env["ATEN_CPU_CAPABILITY"] = "default"
        # TensorFlow's counterpart of torch.backends.mkldnn.enabled = False.
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    return env


def env_matches(name: str, expected: str, actual: str | None) -> bool:
    """Whether the value found in the environment satisfies the policy's value."""
    if actual is None:
        return False
    if name == "XLA_FLAGS":
        return XLA_DETERMINISTIC in actual.split()
    return actual == expected


def _xla_flags(existing: str) -> str:
    flags = [
        flag for flag in existing.split() if not flag.startswith("--xla_gpu_deterministic_ops")
    ]
    return " ".join([*flags, XLA_DETERMINISTIC])
