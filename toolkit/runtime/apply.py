"""Apply the policy inside this process: environment check, then each library as it loads."""

from __future__ import annotations

import atexit
import os

from toolkit.runtime import hooks
from toolkit.runtime import report as reports
from toolkit.runtime.policy import (
    OBSERVE,
    POLICY_VAR,
    RUN_DIR_VAR,
    UNSET,
    Policy,
    env_matches,
    environment,
    from_environ,
)
from toolkit.runtime.report import APPLIED, FAILED, Report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping
    from types import ModuleType

# Read once, as the interpreter starts; the rest matter as long as they are set before the
# library that reads them loads, which the runtime runs ahead of.
READ_AT_STARTUP = ("PYTHONHASHSEED",)


def start(environ: MutableMapping[str, str] = os.environ) -> Report | None:
    """Apply the policy in TOOLKIT_POLICY to this process (TOOLKIT_POLICY=null: only record
    the libraries' own settings); None when there is no such variable."""
    policy = from_environ(environ)
    observe = environ.get(POLICY_VAR, "").strip() == OBSERVE
    if policy is None and not observe:
        return None
    report = reports.start(policy, environ.get(RUN_DIR_VAR) or None)
    if policy is None:
        hooks.install(_observers(report), report.error)
    else:
        check_environment(policy, report, environ)
        hooks.install(_callbacks(policy, report), report.error)
    atexit.register(report.write, True)
    if not report.run_dir:
        report.error("recording", RuntimeError(f"{RUN_DIR_VAR} is not set: nothing is recorded"))
    # Written now too: a process ended by a signal it does not handle (SIGTERM, which `docker
    # stop` sends and a third Ctrl-C does, or SIGKILL) runs no atexit, and would leave no
    # report of what it applied.
    report.write()
    return report


def check_environment(policy: Policy, report: Report, environ: MutableMapping[str, str]) -> None:
    """Record each policy variable as found; fix the ones still missing for what loads later."""
    for name, expected in environment(policy, environ).items():
        actual = environ.get(name)
        if env_matches(name, expected, actual):
            report.setting(f"env {name}", actual, APPLIED)
            continue
        # The launcher sets these before the process starts; getting here means something in
        # between (a wrapper script, a subprocess with its own env) dropped or changed them.
        environ[name] = expected
        if name in READ_AT_STARTUP:
            detail = f"was {actual!r} at startup; set for child processes only"
            report.setting(f"env {name}", actual, FAILED, detail)
        else:
            report.setting(f"env {name}", expected, APPLIED, f"was {actual!r}; set by the runtime")
    for name in UNSET:
        if name in environ:
            report.setting(f"env {name}", None, APPLIED, f"removed (was {environ.pop(name)!r})")
        else:
            report.setting(f"env {name}", None, APPLIED, "unset")


def _callbacks(policy: Policy, report: Report) -> dict[str, hooks.Callback]:
    def loaded(library: str, apply: hooks.Callback) -> hooks.Callback:
        def run(module: ModuleType) -> None:
            report.hooked.add(library)
            try:
                apply(module)
            finally:
                report.write()

        return run

    def torch_(module: ModuleType) -> None:
        from toolkit.runtime import torch_policy

        torch_policy.apply(module, policy, report)

    def dataloader(module: ModuleType) -> None:
        from toolkit.runtime import torch_policy

        torch_policy.patch_dataloader(module, policy, report)

    def inductor(module: ModuleType) -> None:
        module.deterministic = True  # type: ignore[attr-defined]
        report.setting("torch._inductor.config.deterministic", True, APPLIED)

    return {
        "random": loaded("random", lambda module: seed_random(module, report)),
        "numpy": loaded("numpy", lambda module: seed_numpy(module, policy, report)),
        "torch": loaded("torch", torch_),
        "torch.utils.data": dataloader,
        "torch._inductor.config": inductor,
        "tensorflow": loaded("tensorflow", lambda module: apply_tensorflow(module, policy, report)),
        "jax": loaded("jax", lambda module: apply_jax(module, report)),
    }


def _observers(report: Report) -> dict[str, hooks.Callback]:
    """With no policy: torch's versions, devices and flags as the process leaves them."""

    def torch_(module: ModuleType) -> None:
        from toolkit.runtime import torch_policy

        report.facts["torch"] = lambda final: torch_policy.facts(module, final)
        report.write()

    return {"torch": torch_}


def guarded(
    report: Report, name: str, value: object, action: Callable[[], object], detail: str = ""
) -> None:
    """Run one setting, recording it as applied, or failed with the reason."""
    try:
        action()
    except Exception as exc:
        report.setting(name, value, FAILED, f"{type(exc).__name__}: {exc}")
    else:
        report.setting(name, value, APPLIED, detail)


def seed_random(module: ModuleType, report: Report) -> None:
    """Seed Python's global random generator (with the policy seed, or in a forked child its
    report's random_seed), here and in each child forked from now on."""
    _seed_random(module, report)
    if not report.reseeds_random:
        # random registers its own hook as it loads, and reseeds every forked child from
        # os.urandom; hooks run in the order registered, so this one runs after it.
        os.register_at_fork(after_in_child=lambda: reseed_after_fork(module, report))
        report.reseeds_random = True


def reseed_after_fork(module: ModuleType, report: Report) -> None:
    """In a forked child: seed random from its parent's seed and its fork index, as Python
    gives each child its own sequence, but the same one in every run; then write its report."""
    try:
        if not report.execs:
            _seed_random(module, report)
    finally:
        report.write()


def _seed_random(module: ModuleType, report: Report) -> None:
    seed = report.random_seed
    detail = ""
    if report.fork_index is not None:
        # Python reseeds random in a forked child from os.urandom: a new sequence every run.
        detail = (
            f"forked child {report.fork_index}: its parent's seed + '/{report.fork_index}'"
            " (numpy and torch keep the state copied from the parent)"
        )
    guarded(report, "random.seed", seed, lambda: module.seed(seed), detail)


def seed_numpy(module: ModuleType, policy: Policy, report: Report) -> None:
    """Seed numpy's legacy global generator (np.random.default_rng() takes its own seed)."""
    guarded(
        report,
        "numpy.random.seed",
        policy.seed,
        lambda: module.random.seed(policy.seed % 2**32),
        "legacy global generator; np.random.default_rng() without a seed stays unseeded",
    )


def apply_tensorflow(tf: ModuleType, policy: Policy, report: Report) -> None:
    """Seed TensorFlow, turn on op determinism and fix its thread pools."""
    guarded(report, "tf.random.set_seed", policy.seed, lambda: tf.random.set_seed(policy.seed))
    guarded(
        report,
        "tf.config.experimental.enable_op_determinism",
        True,
        tf.config.experimental.enable_op_determinism,
    )
    threading = tf.config.threading
    guarded(
        report,
        "tf.config.threading.set_intra_op_parallelism_threads",
        policy.threads,
        lambda: threading.set_intra_op_parallelism_threads(policy.threads),
    )
    guarded(
        report,
        "tf.config.threading.set_inter_op_parallelism_threads",
        policy.threads,
        lambda: threading.set_inter_op_parallelism_threads(policy.threads),
    )


def apply_jax(jax: ModuleType, report: Report) -> None:
    """Full-precision matmuls in JAX (its RNG is explicit, so there is nothing to seed)."""
    guarded(
        report,
        "jax.config.jax_default_matmul_precision",
        "highest",
        lambda: jax.config.update("jax_default_matmul_precision", "highest"),
    )
