"""The policy value, its TOOLKIT_POLICY parsing, and the environment the launcher sets."""

from __future__ import annotations

import pytest

from toolkit.runtime.policy import (
    UNSET,
    Policy,
    PolicyError,
    env_matches,
    environment,
    from_environ,
    parse,
)

FIXED_ENV = {
    "PYTHONHASHSEED": "3",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    "NVIDIA_TF32_OVERRIDE": "0",
    "OMP_NUM_THREADS": "4",
    "MKL_NUM_THREADS": "4",
    "OPENBLAS_NUM_THREADS": "4",
    "MKL_CBWR": "AUTO",
    "ONEDNN_DEFAULT_FPMATH_MODE": "strict",
    "TORCHINDUCTOR_DETERMINISTIC": "1",
    "FLASH_ATTENTION_DETERMINISTIC": "1",
    "XLA_FLAGS": "--xla_gpu_deterministic_ops=true",
    "TF_DETERMINISTIC_OPS": "1",
}


def test_policy_round_trips_through_its_json() -> None:
    policy = Policy(seed=3, threads=4, dataloader_workers=2, strict=False, cpu="portable")
    assert parse(policy.to_json()) == policy
    assert policy.as_dict() == {
        "seed": 3,
        "threads": 4,
        "dataloader_workers": 2,
        "strict": False,
        "cpu": "portable",
    }


def test_missing_keys_take_defaults() -> None:
    assert parse('{"seed": 5}') == Policy(seed=5, threads=1, dataloader_workers=0, strict=True)


def test_policy_is_a_frozen_hashable_value() -> None:
    policy = Policy(seed=1)
    with pytest.raises(AttributeError):
        policy.seed = 2
    assert {policy, Policy(seed=1)} == {Policy(seed=1)}
    assert (
        repr(policy) == "Policy(seed=1, threads=1, dataloader_workers=0, strict=True, cpu='fixed')"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{seed: 1}", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"seed": 1, "colour": "red"}', "unknown keys: colour"),
        ('{"seed": -1}', "TOOLKIT_POLICY.seed must be a non-negative integer"),
        ('{"threads": true}', "TOOLKIT_POLICY.threads must be a non-negative integer"),
        ('{"threads": 0}', "TOOLKIT_POLICY.threads must be at least 1"),
        ('{"dataloader_workers": 1.5}', "TOOLKIT_POLICY.dataloader_workers must be"),
        ('{"strict": "yes"}', "TOOLKIT_POLICY.strict must be true or false"),
        ('{"cpu": "fast"}', "TOOLKIT_POLICY.cpu must be one of"),
    ],
)
def test_bad_policy_is_rejected_naming_the_key(text: str, says: str) -> None:
    with pytest.raises(PolicyError, match=says.replace(".", r"\.")):
        parse(text)


def test_no_policy_in_the_environment_means_none() -> None:
    assert from_environ({}) is None
    assert from_environ({"TOOLKIT_POLICY": "  "}) is None
    assert from_environ({"TOOLKIT_POLICY": '{"seed": 2}'}) == Policy(seed=2)


def test_fixed_environment_is_the_checklist() -> None:
    assert environment(Policy(seed=3, threads=4)) == FIXED_ENV


def test_portable_environment_pins_cpu_kernels_to_the_baseline() -> None:
    env = environment(Policy(seed=3, threads=4, cpu="portable"))
    assert env == {
        **FIXED_ENV,
        "MKL_CBWR": "COMPATIBLE",
        "ATEN_CPU_CAPABILITY": "default",
        "TF_ENABLE_ONEDNN_OPTS": "0",
    }


def test_xla_flags_keep_the_users_own_flags() -> None:
    current = {
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_gpu_deterministic_ops=false"
    }
    env = environment(Policy(), current)
    assert env["XLA_FLAGS"] == (
        "--xla_force_host_platform_device_count=8 --xla_gpu_deterministic_ops=true"
    )
    assert env_matches("XLA_FLAGS", env["XLA_FLAGS"], env["XLA_FLAGS"])
    assert not env_matches("XLA_FLAGS", env["XLA_FLAGS"], current["XLA_FLAGS"])


def test_tf32_override_is_to_be_unset() -> None:
    assert UNSET == ("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",)
    assert not set(UNSET) & set(environment(Policy(cpu="portable")))
