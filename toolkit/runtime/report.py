"""Each process's own record of what the runtime applied: $TOOLKIT_RUN_DIR/runtime/<pid>.json."""

from __future__ import annotations

import _thread
import os
import sys
import time

from toolkit.runtime import jsonlite
from toolkit.runtime.policy import UNSET, Policy, environment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    # A provider of facts for the report (e.g. torch's hardware); True at exit.
    Facts = Callable[[bool], dict[str, object]]
    # Given the facts just collected: the settings the program changed after the policy.
    Check = Callable[[dict[str, object]], list[dict[str, object]]]

SCHEMA = 1
APPLIED = "applied"
NOT_APPLICABLE = "not_applicable"
FAILED = "failed"

# Libraries the policy knows; each one's settings apply only if the process imports it.
LIBRARIES = ("random", "numpy", "torch", "tensorflow", "jax")
VERSIONED = ("numpy", "torch", "tensorflow", "keras", "jax", "jaxlib")


class Report:
    """What this process applied, forced and ran into; written atomically as JSON.

    With no policy (a --no-policy baseline) nothing is applied; the facts are still recorded.
    """

    def __init__(self, policy: Policy | None, run_dir: str | None) -> None:
        self.policy = policy
        self.run_dir = run_dir
        self.pid = os.getpid()
        self.forked_from: int | None = None
        # This process is the fork_index-th fork of forked_from; `forks` counts its own.
        self.fork_index: int | None = None
        self.forks = 0
        # What Python's global random generator is seeded with here: the policy seed, and in a
        # forked child "<parent's>/<fork index>" (see apply.reseed_after_fork).
        self.random_seed: int | str | None = policy.seed if policy else None
        # Set once a fork hook reseeds random in children; that hook then writes their report.
        self.reseeds_random = False
        # A child that subprocess forked to run a preexec_fn and exec: it leaves no report.
        self.execs = False
        self.dataloader_worker: dict[str, int] | None = None
        self.settings: dict[str, dict[str, object]] = {}
        self.forced: list[str] = []
        self.ops: list[dict[str, str]] = []
        self.errors: list[str] = []
        self.hooked: set[str] = set()
        self.facts: dict[str, Facts] = {}
        self.checks: list[Check] = []
        # _thread, not threading: the latter costs an import at every process start.
        self.lock = _thread.RLock()
        self._printed: set[str] = set()

    def setting(self, name: str, value: object, status: str, detail: str = "") -> None:
        """Record one checklist item; a later record of the same name replaces it."""
        with self.lock:
            self.settings[name] = {"name": name, "value": value, "status": status, "detail": detail}

    def force(self, change: str) -> None:
        """Record a value the policy overrode in user code: 'DataLoader num_workers 2 -> 0'."""
        with self.lock:
            if change not in self.forced:
                self.forced.append(change)

    def op(self, name: str, mode: str) -> bool:
        """Record an op with no deterministic implementation; False if already recorded."""
        with self.lock:
            if any(entry["op"] == name and entry["mode"] == mode for entry in self.ops):
                return False
            self.ops.append({"op": name, "mode": mode})
            return True

    def error(self, where: str, exc: BaseException) -> None:
        """Record an internal failure and warn once on stderr: the user's program goes on."""
        message = f"{where}: {type(exc).__name__}: {exc}"
        with self.lock:
            self.errors.append(message)
            if message in self._printed:
                return
            self._printed.add(message)
        # A closed stderr must not break the user's program either (and contextlib.suppress
        # would cost every process ~2 ms of imports).
        try:  # noqa: SIM105
            sys.stderr.write(f"toolkit runtime: warning: {message} (the run goes on)\n")
        except Exception:
            pass

    def after_fork(self, execs: bool = False) -> None:
        """In a forked child: same settings (inherited), its own pid and its own findings."""
        self.lock = _thread.RLock()
        self.forked_from = self.pid
        self.pid = os.getpid()
        self.fork_index = self.forks
        self.forks = 0
        if self.random_seed is not None:
            self.random_seed = f"{self.random_seed}/{self.fork_index}"
        self.execs = execs
        self.forced = []
        self.ops = []
        self.errors = []
        self.dataloader_worker = None

    def to_dict(self, final: bool = False) -> dict[str, object]:
        """The report as JSON-ready data; `final` lets fact providers do costlier lookups."""
        settings = list(self.settings.values())
        for library in LIBRARIES if self.policy else ():
            if library not in self.hooked:
                settings.append(
                    {
                        "name": library,
                        "value": None,
                        "status": NOT_APPLICABLE,
                        "detail": f"{library} was not imported by this process",
                    }
                )
        facts: dict[str, object] = {}
        for name, provider in self.facts.items():
            try:
                facts[name] = provider(final)
            except Exception as exc:
                self.error(f"collecting {name} facts", exc)
        overridden: list[dict[str, object]] = []
        for check in self.checks:
            try:
                overridden.extend(check(facts))
            except Exception as exc:
                self.error("comparing settings with the policy", exc)
        names = [*environment(self.policy or Policy()), *UNSET]
        return {
            "schema": SCHEMA,
            "pid": self.pid,
            "ppid": os.getppid(),
            "forked_from": self.forked_from,
            "fork_index": self.fork_index,
            "dataloader_worker": self.dataloader_worker,
            "argv": list(getattr(sys, "argv", None) or ()),  # None while Python shuts down
            "executable": sys.executable,
            "python": sys.version.split()[0],
            "policy": self.policy.as_dict() if self.policy else None,
            "settings": settings,
            "forced": list(self.forced),
            "nondeterministic_ops": list(self.ops),
            "overridden": overridden,
            "libraries": _versions(),
            **facts,
            "env": {name: os.environ.get(name) for name in names},
            "errors": list(self.errors),
            "final": final,
            "written_at": time.time(),
        }

    def path(self) -> str | None:
        """Where this process's report goes, or None when the run has no run directory."""
        if not self.run_dir:
            return None
        return os.path.join(self.run_dir, "runtime", f"{self.pid}.json")

    def write(self, final: bool = False) -> None:
        """Replace this process's report atomically (temp file + rename); never raises. Not
        once Python is shutting down (a fork from a __del__ then): its builtins are gone."""
        if self.execs or sys.is_finalizing():
            return
        try:
            with self.lock:
                path = self.path()
                if path is None:
                    return
                data = jsonlite.dumps(self.to_dict(final))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.tmp"
                with open(tmp, "w", encoding="utf-8") as handle:
                    handle.write(data + "\n")
                os.replace(tmp, path)
        except Exception as exc:
            self.error("writing the runtime report", exc)


def _versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None)
        if isinstance(version, str):
            versions[name] = version
    return versions


_current: Report | None = None


def current() -> Report | None:
    """This process's report, once the runtime has started."""
    return _current


def start(policy: Policy | None, run_dir: str | None) -> Report:
    """Create this process's report; forked children keep it under their own pid."""
    global _current
    _current = Report(policy, run_dir)
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork)
    return _current


def _before_fork() -> None:
    if _current is not None and not _forks_to_exec():
        _current.forks += 1


def _after_fork() -> None:
    if _current is None:
        return
    _current.after_fork(_forks_to_exec())
    # Written now: a child that ends with os._exit (every multiprocessing fork worker does)
    # runs no atexit. When a later fork hook reseeds random, that one writes instead.
    if not _current.reseeds_random:
        _current.write()


def _forks_to_exec() -> bool:
    """Whether the fork under way is subprocess's for a preexec_fn (the only subprocess fork
    that runs fork hooks): its child execs another program right after."""
    try:
        # 0: this function, 1: the fork hook, 2: the code that forks.
        code = sys._getframe(2).f_code
    except ValueError:
        return False
    return code.co_name == "_execute_child" and code.co_filename.endswith("subprocess.py")
