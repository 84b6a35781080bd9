"""`toolkit run`: the experiment in its image (or natively) under the determinism policy,
leaving a complete run record."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from toolkit import __version__, engine, image, interrupt, record
from toolkit.config import MAX_SEED, Config, DeterminismConfig, TargetConfig
from toolkit.errors import ConfigError, RecordNotWritten, UserError
from toolkit.paths import STATE_DIR

if TYPE_CHECKING:
    from toolkit import metrics

CONTAINER_PROJECT = "/project"
CONTAINER_RUN_DIR = "/toolkit/run"
CONTAINER_RUNTIME = "/toolkit/runtime"
OUTPUTS = "outputs"
FAILED = "failed facts"  # in the gathered facts: why each one missing could not be read
PATCH = "code.diff"  # the run's uncommitted changes (`git diff HEAD`), beside its record
PATCH_KEPT = 10 * 1024 * 1024  # a bigger one (a changed binary file) is not kept
_LOG_TAIL = 256 * 1024  # what a failed run's stderr is searched for a strict-mode stop
# How Python's socket, urllib, requests and httpx, and curl, git, wget and ssh say that there
# is no network to reach
_OFFLINE_SIGNS = (
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "NameResolutionError",
    "Failed to resolve",
    "Could not resolve host",  # curl, git
    "unable to resolve host address",  # wget
    "Could not resolve hostname",  # ssh
)
# A shell session's and a terminal's own variables, and toolkit's: no program's input
_SESSION_VARIABLE = re.compile(
    r"PWD|OLDPWD|SHLVL|_|TERM|TERM_\w+|COLORTERM|LS_COLORS|PS[1-4]|PROMPT_COMMAND|HIST\w*"
    r"|SSH_\w+|DISPLAY|WINDOWID|XDG_SESSION_\w+|XDG_VTNR|XDG_SEAT|DBUS_SESSION_BUS_ADDRESS|MAIL"
    r"|TMUX\w*|STY|WINDOW|GPG_TTY|LINES|COLUMNS|VSCODE_\w+|TOOLKIT_\w+|INVOCATION_ID"
    r"|JOURNAL_STREAM|PYTEST_\w+|KITTY_\w+|GNOME_\w+|KONSOLE_\w+|ITERM_\w+|WT_\w+|VTE_VERSION"
    r"|ALACRITTY_\w+|WEZTERM_\w+|TERMINATOR_\w+|DESKTOP_SESSION|SESSION_MANAGER|XAUTHORITY"
    r"|WAYLAND_DISPLAY|STARSHIP_\w+|BASH_FUNC_\S+"
)
# A name that may hold a secret: recorded as set, never as a value or a hash of one (a weak
# password's hash is guessed back from a list)
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASS|PWD|(?:^|_)PW(?:_|$)|(?:^|_)PAT(?:_|$)|KEY|CREDENTIAL|AUTH|COOKIE"
    r"|SESSION|PRIVATE|CERT|SIGNATURE|SALT|ACCESS|DSN|URL|URI",
    re.I,
)
# A value that carries credentials whatever its name: a URL's user:password@, a DSN's password=
_SECRET_VALUE = re.compile(r"://[^/\s@]*:[^/\s@]*@|(?:password|passwd|pwd)\s*=", re.I)
# Kept as it is: numbers and lists of them (1e-3, 0,1), words of letters (offline, INFO), and
# locales (C.UTF-8, en_US.UTF-8@euro)
_NUMBER = r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?"
_PLAIN_VALUE = re.compile(
    rf"{_NUMBER}(?:,{_NUMBER})*|[A-Za-z_.-]{{1,24}}|[A-Za-z_]+\.[A-Za-z0-9-]+(?:@\w+)?"
)
SECRET_SET = "(set: not recorded)"
IN_OUTPUT = "in_output"  # an op a failed run's output names: the runtime never saw it raised
# torch's "<op> does not have a deterministic implementation", after whatever prefix a log adds
_OP_IN_OUTPUT = re.compile(r"(?:^|[\s:'\"])([A-Za-z_][\w.]*) does not have a deterministic impl")
_PACKAGES_SCRIPT = (
    "import json, importlib.metadata as m; "
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


@dataclass(frozen=True)
class RunRequest:
    """What to run and under which policy (toolkit.yaml values with command-line overrides)."""

    target: TargetConfig
    command: tuple[str, ...]
    policy: DeterminismConfig | None  # None: the libraries' defaults, a baseline to compare with
    native: bool = False


@dataclass(frozen=True)
class RunResult:
    """Where the record is and how the experiment ended."""

    id: str
    path: Path
    status: str  # succeeded | failed | interrupted | engine_lost
    exit_code: int | None
    primary: str | None
    primary_value: float | None
    nondeterministic_ops: tuple[str, ...]
    incomplete: tuple[str, ...] = ()  # what the record lacks (see record.FACTS, "outputs")
    stopped: bool = False  # Ctrl-C while the record was written skipped what was left
    engine_error: str | None = None  # why the engine stopped answering (status engine_lost)
    warnings: tuple[str, ...] = ()  # where the record says less than it seems to
    ops_in_output: tuple[str, ...] = ()  # named by a failed run's output, not seen raised


def request(
    cfg: Config,
    target: str,
    command: list[str] | None,
    *,
    seed: int | None = None,
    threads: int | None = None,
    workers: int | None = None,
    strict: bool | None = None,
    cpu: str | None = None,
    native: bool = False,
    apply_policy: bool = True,
) -> RunRequest:
    """Combine toolkit.yaml with command-line overrides into a run request."""
    tgt = cfg.target(target)
    if command:
        argv = tuple(command)
    elif cfg.experiment is not None:
        argv = tuple(shlex.split(cfg.experiment.command))
    else:
        raise ConfigError(
            f"{cfg.path}: no experiment.command and no command given",
            hint="add `experiment: {command: python train.py}` or run `toolkit run -- CMD ...`",
        )
    if cpu not in (None, "fixed", "portable"):
        raise ConfigError(f"--cpu must be 'fixed' or 'portable', got {cpu!r}")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be an integer from 0 to {MAX_SEED}, got {seed}")
    overrides = {"--seed": seed, "--threads": threads, "--workers": workers, "--cpu": cpu}
    ignored = [name for name, value in overrides.items() if value is not None]
    if not apply_policy and (ignored or strict is not None):
        raise ConfigError(
            f"--no-policy runs with the libraries' defaults: {', '.join(ignored) or '--no-strict'}"
            " would have no effect",
            hint="drop --no-policy to run under the policy, or drop the other options",
        )
    base = cfg.determinism
    policy = DeterminismConfig(
        seed=base.seed if seed is None else seed,
        threads=base.threads if threads is None else threads,
        dataloader_workers=base.dataloader_workers if workers is None else workers,
        strict=base.strict if strict is None else strict,
        cpu=base.cpu if cpu is None else cpu,  # type: ignore[arg-type]  # checked above
    )
    return RunRequest(tgt, argv, policy if apply_policy else None, native)


def identity(cfg: Config, req: RunRequest) -> dict[str, Any]:
    """What makes runs one experiment, as their records hold it (`_record` writes these, and
    reprocheck.identity_of reads them back)."""
    return {
        "project": cfg.name,
        "command": list(req.command),
        "determinism policy": dataclasses.asdict(req.policy) if req.policy else None,
    }


def execute(
    cfg: Config,
    req: RunRequest,
    *,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    on_note: Callable[[str], None] = lambda message: None,
    on_start: Callable[[], None] = lambda: None,
) -> RunResult:
    """Run the experiment and write its record; the record is written whatever the outcome.
    `on_start` is called once everything it needs is there, just before it starts."""
    experiment = cfg.experiment
    workdir_rel = experiment.workdir if experiment else "."
    workdir = cfg.root / workdir_rel
    if not workdir.is_dir():
        raise ConfigError(f"{cfg.path}: experiment.workdir {workdir_rel!r} is not a folder")
    image_ref, image_info = (None, None) if req.native else image.current_image(cfg, req.target)
    # What the record says about code, data, host and packages is gathered while the
    # experiment runs, once it has started: off the critical path, and not in the way of the
    # engine, whose start of a container takes ~200 ms of CPU.
    # the code is read while the run is under way: what it writes from now on is not code
    begun = time.time()
    facts = _Background(lambda found: _facts(cfg, req, image_info, found, begun))
    # Until the experiment starts, Ctrl-C is held, then acted on: a KeyboardInterrupt raised
    # while a module loads can be swallowed by importlib (CPython 3.11), or leave its lock
    # taken, and the run would then hang, or end and leave its program running. What the start
    # needs is loaded here.
    with interrupt.held() as pressed:
        run_id, run_dir = record.new_run_dir(cfg.root, req.target.name)
        try:
            runtime_dir = runtime_bundle(cfg.root)
            env = policy_environment(req.policy, os.environ if req.native else None)
            outputs_dir = run_dir / OUTPUTS
            outputs_dir.mkdir()
            if req.native:
                from toolkit import proc  # noqa: F401  # for _run_native
        except BaseException:
            _discard(run_dir)
            raise
    if pressed.is_set():  # before the start began: no run to keep
        _discard(run_dir)
        raise KeyboardInterrupt
    try:
        declared = cfg.experiment.declared_outputs() if cfg.experiment else []
        before: dict[str, bytes] = {}  # a native run's metrics file as it was
        started = time.time()
        stdout_log, stderr_log = run_dir / "stdout.log", run_dir / "stderr.log"
        # Unbuffered: each chunk is in the log as soon as it is shown, and a log that cannot be
        # written any more (disk full) holds nothing back to fail again when it is closed.
        with (
            stdout_log.open("wb", buffering=0) as out_file,
            stderr_log.open("wb", buffering=0) as err_file,
        ):
            tee_out = _tee(out_file, on_stdout, on_note)
            tee_err = _tee(err_file, on_stderr, on_note)
            on_start()

            if req.native:
                earlier = _output_files(workdir, declared)
                before = _contents(workdir, experiment.metrics.file if experiment else None)
                facts.start()
                ended_as = _run_native(
                    req, workdir, run_dir, runtime_dir, env, tee_out, tee_err, on_note
                )
            else:
                assert image_ref is not None
                ended_as = _run_in_container(
                    cfg,
                    req,
                    image_ref,
                    workdir_rel,
                    run_dir,
                    runtime_dir,
                    env,
                    declared,
                    tee_out,
                    tee_err,
                    facts.start,
                    on_note,
                )
    except (UserError, KeyboardInterrupt) as exc:
        # A UserError means the experiment never started (command not found, container
        # refused); so does Ctrl-C before its start began: no run to keep. Ctrl-C while it
        # was starting is recorded as an interrupted run.
        if isinstance(exc, UserError) or not facts.started:
            _discard(run_dir)
            raise
        ended_as = engine.ContainerExit(None, interrupted=True)
    ended = time.time()

    # From here on the run is over and its record must be written: Ctrl-C only skips what
    # is slow (facts still being gathered, copying and hashing big outputs).
    with _ctrl_c_skips(on_note) as finishing:
        # the run's own products first: they matter most to a diff
        copied_from = (workdir, earlier) if req.native else None
        outputs = _outputs(outputs_dir, declared, copied_from, finishing.check)
        gathered = _gathered(facts, on_note, finishing)
        _keep_patch(run_dir, gathered)
        from toolkit import metrics

        metrics_files = metrics.read_run_files(
            run_dir, experiment.metrics.file if experiment else None
        )
        doc = _record(
            cfg,
            req,
            run_id,
            run_dir,
            image_ref,
            image_info,
            ended_as,
            started,
            ended,
            env,
            outputs,
            gathered,
            metrics_files,
        )
        try:
            record.write_record(run_dir, doc)
        except OSError as exc:
            code = doc["exit_code"] or (130 if doc["status"] == "interrupted" else 1)
            raise RecordNotWritten(
                f"{run_id} {doc['status']}, but its record could not be written: "
                f"{exc.strerror or exc}",
                hint=f"its logs and outputs are in {run_dir}, as far as they could be written: "
                "free disk space or make the folder writable, and run again",
                exit_code=code,
            ) from None
    found_ops = doc["determinism"]["nondeterministic_ops"]
    ops = tuple(o["op"] for o in found_ops if o["mode"] != IN_OUTPUT)
    return RunResult(
        run_id,
        run_dir,
        doc["status"],
        doc["exit_code"],
        doc["metrics"]["primary"],
        doc["metrics"]["primary_final"],
        ops,
        tuple(doc["incomplete"]),
        finishing.pressed,
        doc["engine_error"],
        tuple(_warnings(cfg, doc, metrics_files, run_dir)) + tuple(_appended(before, outputs_dir)),
        tuple(o["op"] for o in found_ops if o["mode"] == IN_OUTPUT),
    )


def _discard(run_dir: Path) -> None:
    """Remove the folder of a run that never started."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


def _tee(
    log: BinaryIO, show: Callable[[bytes], None], on_note: Callable[[str], None]
) -> Callable[[bytes], None]:
    """A sink that logs each chunk and shows it; a log that cannot be written any more (disk
    full) is said once, and the output goes on to the terminal."""
    broken = False

    def sink(chunk: bytes) -> None:
        nonlocal broken
        if not broken:
            try:
                log.write(chunk)
            except OSError as exc:
                broken = True
                on_note(f"cannot write {log.name}: {exc.strerror or exc}; the rest is not logged")
        show(chunk)

    return sink


# --- running -----------------------------------------------------------------------------------


def policy_environment(
    policy: DeterminismConfig | None, current: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment that carries the policy: its variables and TOOLKIT_POLICY itself.

    With no policy, TOOLKIT_POLICY=null alone: the runtime applies nothing and records the
    libraries' own settings (and torch's devices), so a baseline says what it ran with.
    """
    from toolkit.runtime.policy import OBSERVE, POLICY_VAR, Policy, environment

    if policy is None:
        return {POLICY_VAR: OBSERVE}

    runtime_policy = Policy(
        seed=policy.seed,
        threads=policy.threads,
        dataloader_workers=policy.dataloader_workers,
        strict=policy.strict,
        cpu=policy.cpu,
    )
    env = environment(runtime_policy, current)
    env[POLICY_VAR] = runtime_policy.to_json()
    return env


def container_spec(
    cfg: Config,
    image_ref: str,
    req: RunRequest,
    workdir_rel: str,
    run_dir: Path,
    runtime_dir: Path,
    env: dict[str, str],
) -> engine.ContainerSpec:
    """The project, the run folder and the runtime mounted; the policy in the environment."""
    return engine.ContainerSpec(
        image=image_ref,
        command=req.command,
        mounts=(
            engine.Mount(cfg.root, CONTAINER_PROJECT),
            engine.Mount(run_dir, CONTAINER_RUN_DIR),
            engine.Mount(runtime_dir, CONTAINER_RUNTIME, read_only=True),
        ),
        env={
            **env,
            "TOOLKIT_RUN_DIR": CONTAINER_RUN_DIR,
            "PYTHONPATH": CONTAINER_RUNTIME,
            "HOME": "/tmp",  # the host uid may have no home in the image
            # Ctrl-C reaches every process of the command, as on a terminal: with a shell
            # between (`sh -c "python train.py; ..."`), docker's init would signal the shell
            # alone, which waits, and Python would be killed 20 s later, its files unflushed
            "TINI_KILL_PROCESS_GROUP": "1",
        },
        workdir=f"{CONTAINER_PROJECT}/{workdir_rel}".rstrip("/.") or CONTAINER_PROJECT,
        user=f"{os.getuid()}:{os.getgid()}",
        gpus=req.target.gpus,
        network=cfg.experiment.network if cfg.experiment else True,
    )


def _run_in_container(
    cfg: Config,
    req: RunRequest,
    image_ref: str,
    workdir_rel: str,
    run_dir: Path,
    runtime_dir: Path,
    env: dict[str, str],
    declared: list[str],
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    started: Callable[[], None],
    on_note: Callable[[str], None],
) -> engine.ContainerExit:
    spec = container_spec(cfg, image_ref, req, workdir_rel, run_dir, runtime_dir, env)
    mounts = list(spec.mounts)
    # Each run's outputs land in its own folder, bound over the paths the experiment writes to,
    # so two runs at once never overwrite each other's checkpoints or metrics.
    workdir = cfg.root / workdir_rel
    for rel in declared:
        host_side = run_dir / OUTPUTS / rel
        in_project = workdir / rel
        if rel.endswith("/") or in_project.is_dir() or not Path(rel).suffix:
            host_side.mkdir(parents=True, exist_ok=True)
            in_project.mkdir(parents=True, exist_ok=True)
        else:
            host_side.parent.mkdir(parents=True, exist_ok=True)
            host_side.touch()
            in_project.parent.mkdir(parents=True, exist_ok=True)
            in_project.touch()
        mounts.append(engine.Mount(host_side, f"{spec.workdir}/{rel.rstrip('/')}"))
    return engine.run_container(
        dataclasses.replace(spec, mounts=tuple(mounts)),
        {"io.toolkit.project": cfg.name, "io.toolkit.run": run_dir.name},
        on_stdout=on_stdout,
        on_stderr=on_stderr,
        started=started,
        on_stop=on_note,
    )


def shell(
    cfg: Config,
    req: RunRequest,
    *,
    interactive: bool,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
) -> int:
    """A shell (or one command) in the target's image, set up exactly as `run` sets it up."""
    from toolkit.runtime.policy import SHELL_VAR

    image_ref, _ = image.current_image(cfg, req.target)
    workdir_rel = cfg.experiment.workdir if cfg.experiment else "."
    scratch = cfg.root / STATE_DIR / "shell"
    scratch.mkdir(parents=True, exist_ok=True)
    env = {**policy_environment(req.policy), SHELL_VAR: "1"}
    spec = container_spec(cfg, image_ref, req, workdir_rel, scratch, runtime_bundle(cfg.root), env)
    if interactive:
        return engine.run_interactive(spec)
    labels = {"io.toolkit.project": cfg.name, "io.toolkit.shell": "1"}
    ended = engine.run_container(spec, labels, on_stdout=on_stdout, on_stderr=on_stderr)
    if ended.engine_error:
        raise UserError(f"the engine failed during the shell: {ended.engine_error}")
    return 130 if ended.interrupted else int(ended.exit_code or 0)


def _run_native(
    req: RunRequest,
    workdir: Path,
    run_dir: Path,
    runtime_dir: Path,
    env: dict[str, str],
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    on_note: Callable[[str], None],
) -> engine.ContainerExit:
    from toolkit import proc
    from toolkit.runtime.policy import UNSET

    native_env = dict(os.environ)
    for name in UNSET:
        native_env.pop(name, None)
    native_env.update(env)
    native_env["TOOLKIT_RUN_DIR"] = str(run_dir)
    existing = native_env.get("PYTHONPATH")
    native_env["PYTHONPATH"] = str(runtime_dir) + (os.pathsep + existing if existing else "")
    try:
        code, interrupted = proc.stream(
            list(req.command),
            env=native_env,
            cwd=workdir,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_stop=on_note,
        )
    except FileNotFoundError:
        raise UserError(
            f"command not found: {req.command[0]}", hint="check experiment.command"
        ) from None
    return engine.ContainerExit(code, interrupted)


def runtime_bundle(root: Path) -> Path:
    """The runtime package laid out for mounting, rebuilt when toolkit's runtime changes."""
    source = Path(__file__).parent / "runtime"
    digest = hashlib.sha256()
    for path in sorted(source.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    key = f"{__version__}-{digest.hexdigest()[:12]}"
    dest = root / STATE_DIR / "runtime" / key
    if not (dest / "sitecustomize.py").is_file():
        import shutil

        from toolkit.runtime.bundle import write_bundle

        partial = dest.with_name(dest.name + f".{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        write_bundle(partial)
        try:
            partial.rename(dest)
        except OSError:  # another run made it first
            shutil.rmtree(partial, ignore_errors=True)
    return dest


def _output_files(workdir: Path, declared: list[str]) -> dict[str, tuple[int, int, int]]:
    """The files now at the declared output paths, each with its (mtime, size, inode)."""
    found = {}
    for rel in declared:
        top = workdir / rel
        for path in sorted(top.rglob("*")) if top.is_dir() else [top]:
            with contextlib.suppress(OSError):
                if path.is_file():
                    stat = path.stat()
                    found[path.relative_to(workdir).as_posix()] = (
                        stat.st_mtime_ns,
                        stat.st_size,
                        stat.st_ino,
                    )
    return found


def _outputs(
    outputs_dir: Path,
    declared: list[str],
    copied_from: tuple[Path, dict[str, tuple[int, int, int]]] | None,
    check: Callable[[], None],
) -> dict[str, Any] | None:
    """The run's outputs hashed (a native run's first copied from its workdir, as
    `_copy_outputs` does); None when Ctrl-C skipped them."""
    from toolkit import fingerprint

    try:
        if copied_from is not None:
            _copy_outputs(copied_from[0], outputs_dir, declared, copied_from[1], check)
        found = fingerprint.fingerprint(outputs_dir, tuple(declared), check=check)
    except _Skipped:
        return None
    return {"digest": found.digest, "files": found.files}


def _copy_outputs(
    workdir: Path,
    outputs_dir: Path,
    declared: list[str],
    earlier: dict[str, tuple[int, int, int]],
    check: Callable[[], None],
) -> None:
    """Copy what the run wrote at the declared paths: files new or changed since it started.

    A native run shares its workdir with earlier runs: an output left there by one of them (a
    metrics file, a checkpoint) is not this run's, even when this run failed before writing it.
    """
    import shutil

    for rel, stat in _output_files(workdir, declared).items():
        check()
        if earlier.get(rel) != stat:
            dest = outputs_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(workdir / rel, dest)


def _appended(before: dict[str, bytes], outputs_dir: Path) -> list[str]:
    """A metrics file that still starts with what it held before this native run: the program
    appends to it, so the record has earlier runs' lines too (a container's starts empty)."""
    found = []
    for rel, old in before.items():
        with contextlib.suppress(OSError):
            now = (outputs_dir / rel).read_bytes()
            if old and len(now) > len(old) and now.startswith(old):
                lines = old.count(b"\n")
                found.append(
                    f"{rel} held {lines} line{'' if lines == 1 else 's'} before this run and "
                    "still starts with them: if "
                    "the program appends to it, this record has earlier runs' metrics too; "
                    "open it with 'w', or remove it between native runs"
                )
    return found


def _contents(workdir: Path, metrics_file: str | None) -> dict[str, bytes]:
    """The metrics file as it is before a native run (up to 64 MB), by its path as declared."""
    path = workdir / metrics_file if metrics_file else None
    with contextlib.suppress(OSError):
        if path is not None and path.is_file() and path.stat().st_size <= 64 * 1024 * 1024:
            return {path.relative_to(workdir).as_posix(): path.read_bytes()}
    return {}


# --- the record --------------------------------------------------------------------------------


def _record(
    cfg: Config,
    req: RunRequest,
    run_id: str,
    run_dir: Path,
    image_ref: str | None,
    image_info: engine.ImageInfo | None,
    ended_as: engine.ContainerExit,
    started: float,
    ended: float,
    env: dict[str, str],
    outputs: dict[str, Any] | None,
    facts: dict[str, Any],
    metrics_files: Mapping[str, metrics.Parsed],
) -> dict[str, Any]:
    from toolkit import metrics

    exp = cfg.experiment
    reports = _runtime_reports(run_dir)
    series = metrics.merge(
        *(parsed.series for parsed in metrics_files.values()),
        metrics.from_stdout(
            (run_dir / "stdout.log").read_text(errors="replace").splitlines(),
            exp.metrics.patterns if exp else (),
        ),
    )
    primary = exp.metrics.primary if exp else None
    experiment = identity(cfg, req)  # what repro-check compares runs from elsewhere by
    return {
        "schema": record.SCHEMA,
        "id": run_id,
        "project": experiment["project"],
        "target": req.target.name,
        "status": _status(ended_as),
        "exit_code": ended_as.exit_code,
        "engine_error": ended_as.engine_error,
        "command": experiment["command"],
        "started": _iso(started),
        "ended": _iso(ended),
        "duration_s": round(ended - started, 3),
        "native": req.native,
        "network": _network(cfg, req),
        "toolkit_version": __version__,
        "image": None
        if image_info is None
        else {
            "ref": image_ref,
            "id": image_info.id,
            "content_hash": image_info.labels.get(f"{image.LABEL}.content-hash"),
            "lock_hash": image_info.labels.get(f"{image.LABEL}.lock-hash"),
            "base_digest": image_info.labels.get(f"{image.LABEL}.base-digest"),
        },
        "lockfile": facts.get("lockfile"),
        "code": facts.get("code"),
        "data": facts.get("data"),
        "determinism": {
            "policy": experiment["determinism policy"],
            "environment": env,
            "applied": _merged_settings(reports),
            "forced": _merged_forced(reports),
            "overridden": _merged_overridden(reports),
            "nondeterministic_ops": _merged_ops(reports)
            or (_ops_in_log(run_dir / "stderr.log") if _status(ended_as) == "failed" else []),
        },
        "python": next((r["python"] for r in reports if r.get("python")), None),
        "processes": [{k: r.get(k) for k in ("pid", "ppid", "argv", "python")} for r in reports],
        "host": facts.get("host"),
        "host_environment": inherited_environment(os.environ, env) if req.native else None,
        "accelerator": next((r["torch"] for r in reports if r.get("torch")), None),
        "libraries": next((r["libraries"] for r in reports if r.get("libraries")), {}),
        "packages": facts.get("packages", {}),
        "package_drift": facts.get("package_drift", [])
        + (_unlocked(req, reports) if "package_drift" in facts else []),
        "incomplete": [name for name in record.FACTS if name not in facts]
        + ([] if outputs is not None else ["outputs"]),
        "metrics": {
            "primary": primary,
            "file": exp.metrics.file if exp else None,
            "primary_final": metrics.final(series, primary),
            "series": {name: [[s, v] for s, v in points] for name, points in series.items()},
        },
        "outputs": outputs,
        "logs": {"stdout": "stdout.log", "stderr": "stderr.log"},
    }


class _Skipped(Exception):
    """Ctrl-C while the record is written: the rest of a slow step is skipped."""


class _Finishing:
    """While a run's record is written, Ctrl-C sets `pressed` instead of raising; the slow
    steps call `check` between blocks of work, which then raises _Skipped."""

    def __init__(self, pressed: interrupt.Presses) -> None:
        self._pressed = pressed

    @property
    def pressed(self) -> bool:
        return self._pressed.is_set()

    def check(self) -> None:
        if self.pressed:
            raise _Skipped


@contextlib.contextmanager
def _ctrl_c_skips(on_note: Callable[[str], None]) -> Iterator[_Finishing]:
    """The record being written; after a second, the user hears why it takes a while."""
    note = "finishing the record: hashing outputs, reading code, packages and data"
    timer = threading.Timer(1.0, on_note, [f"{note} (Ctrl-C skips the rest)"])
    timer.daemon = True
    with interrupt.held() as pressed:
        timer.start()
        try:
            yield _Finishing(pressed)
        finally:
            timer.cancel()


def _gathered(
    facts: _Background, on_note: Callable[[str], None], finishing: _Finishing
) -> dict[str, Any]:
    """The facts for the record, waited for until Ctrl-C; the record lists those it lacks."""
    while not facts.wait(0.1) and not finishing.pressed:
        pass
    found = dict(facts.found)
    for reason in found.pop(FAILED, []):  # a fact that cannot be read: said, the rest kept
        on_note(f"the record is incomplete: {reason}")
    if facts.error is not None:  # a fact that cannot be read must not cost the run its record
        on_note(f"the record is incomplete: {type(facts.error).__name__}: {facts.error}")
    return found


def _keep_patch(run_dir: Path, facts: dict[str, Any]) -> None:
    """The uncommitted changes the run ran with (new files included), as `git apply` takes
    them, kept in the run folder and named in the record's code (`patch`)."""
    patch = facts.pop(PATCH, b"")
    if facts.get("code") is None:
        return
    kept = None
    if patch and len(patch) <= PATCH_KEPT:
        with contextlib.suppress(OSError):  # the record matters more; it says none was kept
            (run_dir / PATCH).write_bytes(patch)  # as git wrote it: CRLF, any encoding
            kept = PATCH
    facts["code"] = {**facts["code"], "patch": kept}


class _Background:
    """Gathers the record's facts on a thread once `start`ed, into `found` as each is known.

    `typing` is imported before the thread starts: a dataclass defined while another thread is
    half-way through importing `typing` fails ("partially initialized module 'typing' has no
    attribute 'ClassVar'"), as two native runs at once showed.
    """

    def __init__(self, work: Callable[[dict[str, Any]], None]) -> None:
        self._work = work
        self.found: dict[str, Any] = {}
        self.error: BaseException | None = None  # what stopped the thread early
        self._thread = threading.Thread(target=self._run, name="toolkit-facts", daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        if not self.started:
            import typing  # noqa: F401  # see above; free when already imported

            self._thread.start()

    def _run(self) -> None:
        try:
            self._work(self.found)
        except BaseException as exc:  # reported by whoever writes the record
            self.error = exc

    def wait(self, seconds: float) -> bool:
        """Whether every fact is in (or the thread stopped) after waiting at most `seconds`."""
        self.start()  # not started when the experiment never was
        self._thread.join(seconds)
        return not self._thread.is_alive()


def _facts(
    cfg: Config,
    req: RunRequest,
    image_info: engine.ImageInfo | None,
    found: dict[str, Any],
    begun: float | None = None,
) -> None:
    """What the record says about the run's inputs, each put in `found` once known (in the
    order of `record.FACTS`: reading every data file, a full read the first time, comes last)."""
    # metrics reads the run's files for the record once it has ended: loaded beside the run
    from toolkit import fingerprint, hardware, metrics  # noqa: F401
    from toolkit.source import source_state

    exp = cfg.experiment
    workdir = cfg.root / (exp.workdir if exp else ".")
    lockfile = req.target.lockfile
    lock_bytes = lockfile.read_bytes() if lockfile.is_file() else b""
    failed = found.setdefault(FAILED, [])

    def gather(name: str, read: Callable[[], Any]) -> None:
        """One fact; one that cannot be read costs the record that one alone."""
        try:
            found[name] = read()
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")

    gather(
        "lockfile",
        lambda: {
            "path": str(lockfile.relative_to(cfg.root))
            if lockfile.is_relative_to(cfg.root)
            else str(lockfile),
            "sha256": hashlib.sha256(lock_bytes).hexdigest() if lock_bytes else None,
            **_lock_state(cfg, req.target.name),
        },
    )

    def code() -> dict[str, object]:
        state = source_state(cfg.root, cfg.not_code(), written_before=begun)
        found[PATCH] = state.patch  # kept beside the record: what an uncommitted change was
        return state.record()

    gather("code", code)
    gather("host", hardware.host_facts)
    gather("packages", lambda: _packages(cfg.root, req, image_info, workdir))
    if "packages" in found:
        found["package_drift"] = (
            _drift(lock_bytes.decode(errors="replace"), found["packages"]) if req.native else []
        )

    def data() -> dict[str, Any]:
        known = cfg.root / STATE_DIR / "data-hashes.json"
        prints = fingerprint.fingerprint(workdir, exp.data if exp else (), known=known)
        return {"digest": prints.digest, "files": prints.files, "missing": list(prints.missing)}

    gather("data", data)


def _lock_state(cfg: Config, target: str) -> dict[str, str]:
    """Whether the lockfile still matches requirements.in and toolkit.yaml (`toolkit lock`)."""
    from toolkit import lock

    try:
        found = lock.status(cfg, target)
    except UserError as exc:  # requirements.in unreadable: what the lock came from is unknown
        return {"state": "unknown", "reason": exc.message}
    except Exception as exc:  # the facts after this one must still be gathered
        return {"state": "unknown", "reason": f"{type(exc).__name__}: {exc}"}
    return {"state": found.state, "reason": found.reason}


def _warnings(
    cfg: Config, doc: dict[str, Any], metrics_files: Mapping[str, metrics.Parsed], run_dir: Path
) -> list[str]:
    """Where the record says less than it seems to: inputs it cannot see, an environment that
    is not the one declared, metrics it could not read."""
    from toolkit import metrics

    found = [
        f"experiment.data {path!r} does not exist, so it is not in the record's data "
        "fingerprint and a change to it goes unseen: is the path in toolkit.yaml right?"
        for path in (doc.get("data") or {}).get("missing", [])
    ]
    lockfile = doc.get("lockfile") or {}
    if lockfile.get("state") == "stale":
        used = (
            "the record's package drift is measured against the old lock"
            if doc["native"]
            else "this run used the packages of the old lock"
        )
        after = "" if doc["native"] else ", then `toolkit build`"
        found.append(
            f"lockfile {lockfile['path']}: {lockfile['reason']}, so {used}: run "
            f"`toolkit lock --target {doc['target']}`{after}"
        )
    skipping = _runtime_skipped(doc["command"])
    if skipping:
        found.append(
            f"the command runs Python with {skipping}, which skips toolkit's runtime (PYTHONPATH "
            "and sitecustomize), so that process applied and recorded no determinism setting: "
            "run it without it"
        )
    elif doc["status"] == "succeeded" and not doc["processes"]:
        found.append(
            "no Python process of this run loaded toolkit's runtime, so no determinism setting "
            "was applied or recorded: if the experiment runs Python, the command replaced "
            "PYTHONPATH, whose first entry toolkit sets (extend it: PYTHONPATH=src:$PYTHONPATH), "
            "or Python ignored it (python -I or -E)"
        )
    if lockfile.get("state") == "missing" and doc["native"]:
        found.append(
            f"no lockfile {lockfile['path']}, so the record cannot tell whether the installed "
            f"packages are the ones the project pins: run `toolkit lock --target {doc['target']}`"
        )
    code = doc.get("code")
    if code is not None and code.get("commit") is None:
        found.append(
            "the project is not in a git repository with a commit, so the record cannot tell "
            "one version of the code from another: `git init` and commit it"
        )
    python = doc.get("python")
    if python and not python.startswith(f"{cfg.python}."):
        found.append(f"the experiment ran on Python {python}; toolkit.yaml says {cfg.python}")
    drift = doc.get("package_drift") or []
    if drift:
        shown = ", ".join(drift_text(d) for d in drift[:5])
        more = f" and {len(drift) - 5} more" if len(drift) > 5 else ""
        found.append(
            f"{len(drift)} packages differ from the lockfile: {shown}{more} "
            "(all of them in the record's package_drift)"
        )
    overridden = (doc.get("determinism") or {}).get("overridden") or []
    if overridden:
        changes = ", ".join(
            f"{o['name']} {_short(o.get('policy'))} -> {_short(o.get('found'))}" for o in overridden
        )
        found.append(
            f"the program changed settings after toolkit applied them: {changes}; its results "
            "depend on them (the record has them under determinism.overridden)"
        )
    forced = (doc.get("determinism") or {}).get("forced") or []
    dropped = [f for f in forced if f.startswith("DataLoader worker_init_fn")]
    for change in dropped if doc["status"] == "failed" else ():  # most only seed: no news
        found.append(
            f"{change}: the loader ran in the main process, where torch never calls it; if the "
            "failure comes from that (a file it opens), set the policy's dataloader_workers "
            "(or --workers) to the loader's count"
        )
    if doc["native"] and cfg.experiment is not None and not cfg.experiment.network:
        found.append(
            "experiment.network is false, but a native run has this machine's network: what "
            "the experiment downloads is not in the record (the record says network: host)"
        )
    offline = (
        _offline_failure(run_dir)
        if doc["network"] == "none" and doc["status"] == "failed"
        else None
    )
    if offline:
        found.append(
            f"the run has no network (experiment.network: false in toolkit.yaml) and its output "
            f"says {offline!r}: put what it downloads in the project and list it in "
            "experiment.data (its content is then in the record), or set experiment.network: "
            "true (what it downloads is then not in the record)"
        )
    if doc["status"] == "succeeded":  # a stopped run's torn last line is no news
        found += metrics.run_warnings(metrics_files, doc["metrics"])
    return found


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."  # an unreadable flag's long error


def _runtime_skipped(command: list[str]) -> str | None:
    """The interpreter option (-I, -S or -E) with which a `python ...` command skips the
    runtime, or None."""
    words = iter(command)
    for program in words:  # `env A=1 python ...` runs python too
        if Path(program).name != "env" and "=" not in program:
            break
    else:
        return None
    if not _is_python(program):
        return None
    for word in words:
        if not word.startswith("-") or word.startswith("--") or word == "-":
            return None  # the script: what follows are its own arguments
        for at, letter in enumerate(word[1:], start=2):
            if letter in "ISE":
                return f"-{letter}"
            if letter in "cm":  # -c CODE, -m MODULE: the rest is the program's
                return None
            if letter in "WX":  # takes a value: the rest of the word, or the next word
                if at == len(word):
                    next(words, None)
                break
    return None


def _status(ended: engine.ContainerExit) -> str:
    if ended.interrupted:
        return "interrupted"
    if ended.engine_error:
        return "engine_lost"
    return "succeeded" if ended.exit_code == 0 else "failed"


def _runtime_reports(run_dir: Path) -> list[dict[str, Any]]:
    from collections import Counter

    reports = []
    for path in sorted((run_dir / "runtime").glob("*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    # The main process first (its settings stand for the run's), then its children, level by
    # level: a parent is found by pid, as pids may wrap and give a child a lower one. Of the
    # top-level processes, the one with children first (not a re-parented resource tracker).
    parents = {r.get("pid"): r.get("forked_from") or r.get("ppid") for r in reports}
    children = Counter(parents.values())

    def depth(pid: Any) -> int:
        level, seen = 0, {pid}
        while parents.get(pid) in parents and parents[pid] not in seen:
            pid = parents[pid]
            seen.add(pid)
            level += 1
        return level

    reports.sort(key=lambda r: (depth(r.get("pid")), -children[r.get("pid")], r.get("pid", 0)))
    return reports


def _merged_settings(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The main process's settings (the first report), which its children repeat, with what a
    child did differently: a setting that failed there, or a library only the child loaded
    (a launcher script that runs `python train.py`)."""
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        for entry in report.get("settings", []):
            name, status = str(entry.get("name")), entry.get("status")
            known = merged.get(name)
            if known is None:
                merged[name] = dict(entry)
            elif (status == "failed" and known.get("status") != "failed") or (
                known.get("status") == "not_applicable" and status not in (None, "not_applicable")
            ):
                where = f"in process {report.get('pid')} ({_program(report)})"
                detail = entry.get("detail")
                merged[name] = {**entry, "detail": f"{where}: {detail}" if detail else where}
    # "torch was not imported by this process": not so of the run when another process applied
    # torch's settings
    return [
        entry
        for name, entry in merged.items()
        if entry.get("status") != "not_applicable"
        or not any(other.startswith(f"{name}.") for other in merged)
    ]


def _merged_forced(reports: list[dict[str, Any]]) -> list[str]:
    """Every value the policy overrode, in any process (a child's DataLoader too), once."""
    return list(dict.fromkeys(str(change) for r in reports for change in r.get("forced", [])))


def _merged_overridden(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Settings the program changed after the policy applied them: each once, as the first
    process that did (the main one first) found it, with that process's pid."""
    seen: dict[str, dict[str, Any]] = {}
    for report in reports:
        for entry in report.get("overridden") or []:
            seen.setdefault(str(entry.get("name")), {**entry, "pid": report.get("pid")})
    return list(seen.values())


def _program(report: dict[str, Any]) -> str:
    argv = report.get("argv") or []
    return " ".join(str(word) for word in argv[:2])[:80] or "?"


def _merged_ops(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for report in reports:
        for entry in report.get("nondeterministic_ops", []):
            seen.setdefault(str(entry.get("op")), entry)
    return list(seen.values())


def _ops_in_log(log: Path) -> list[dict[str, Any]]:
    """Ops a failed run's last output names, as torch words it: a program that caught the
    error and exited (Hydra logs it and exits 1) never lets the runtime see it raised. Named,
    not proven: the run may have failed for another reason after catching it."""
    found = dict.fromkeys(m.group(1) for m in _OP_IN_OUTPUT.finditer(_log_tail(log)))
    return [{"op": op, "mode": IN_OUTPUT} for op in found]


def _log_tail(log: Path) -> str:
    """The end of a run's log ("" when it cannot be read)."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - _LOG_TAIL))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def inherited_environment(current: Mapping[str, str], policy: Mapping[str, str]) -> dict[str, str]:
    """The variables a native run inherits from this machine, which its program may read (a
    container run has only its image's and the policy's): a shell session's own left out, one
    whose name may hold a secret, or whose value carries credentials, only said to be set,
    and a value other than a number, a word or a locale (a path, an id) kept as its hash."""
    from toolkit.runtime.policy import UNSET  # what a native run takes out of its environment

    kept = {}
    for name, value in sorted(current.items()):
        if name in policy or name in UNSET or _SESSION_VARIABLE.fullmatch(name):
            continue
        if _SECRET_NAME.search(name) or _SECRET_VALUE.search(value):
            kept[name] = SECRET_SET
        elif _PLAIN_VALUE.fullmatch(value):
            kept[name] = value
        else:  # a path, a URL, an id: its hash tells a change, and keeps it private
            kept[name] = "sha256:" + hashlib.sha256(value.encode(errors="replace")).hexdigest()[:12]
    return kept


def _network(cfg: Config, req: RunRequest) -> str:
    """The network the run had: none (experiment.network: false), the engine's default bridge,
    or the host's own (native: toolkit cannot take it away)."""
    if req.native:
        return "host"
    return "bridge" if cfg.experiment is None or cfg.experiment.network else "none"


def _offline_failure(run_dir: Path) -> str | None:
    """What in a failed run's output says that it tried to reach the network, or None."""
    tail = _log_tail(run_dir / "stderr.log") + _log_tail(run_dir / "stdout.log")
    return next((sign for sign in _OFFLINE_SIGNS if sign in tail), None)


def _packages(
    root: Path, req: RunRequest, image_info: engine.ImageInfo | None, workdir: Path
) -> dict[str, str]:
    """Installed distributions: read once per image (cached), or from the native interpreter
    (the run's command starts in `workdir`)."""
    if image_info is not None:
        cache = root / STATE_DIR / "packages" / f"{image_info.id.replace(':', '-')}.json"
        if cache.is_file():
            return dict(json.loads(cache.read_text()))
        found = json.loads(engine.run_once(image_info.id, ["python", "-c", _PACKAGES_SCRIPT]))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(found, sort_keys=True))
        return dict(found)
    from toolkit import proc

    text = proc.output([native_python(req.command, workdir), "-c", _PACKAGES_SCRIPT])
    return dict(json.loads(text)) if text else {}


def native_python(command: Sequence[str], cwd: Path) -> str:
    """The interpreter a native run's Python most likely is, found as its shell finds it from
    `cwd`: the command itself (`python3.11 train.py`), the `#!` interpreter of a script
    (`./train.py`, torchrun, accelerate), else `python` on PATH (`sh -c ...`, `make train`)."""
    import shutil

    program = str(cwd / command[0]) if command and "/" in command[0] else command[0]
    first = shutil.which(program) if command else None
    if first and _is_python(command[0]):
        return first
    words: list[str] = []
    if first:
        with contextlib.suppress(OSError), open(first, "rb") as script:
            line = script.readline(512)
            if line.startswith(b"#!"):
                words = line[2:].decode(errors="replace").split()
    if words and Path(words[0]).name == "env":  # #!/usr/bin/env python3
        words = [w for w in words[1:] if not w.startswith("-")]
        found = shutil.which(words[0]) if words else None
        if found and _is_python(found):
            return found
    elif words and _is_python(words[0]):
        return words[0]
    return shutil.which("python") or shutil.which("python3") or sys.executable


def _is_python(program: str) -> bool:
    """Whether a program (a name or a path) is a Python interpreter: python, python3.11."""
    return re.fullmatch(r"python[\d.]*", Path(program).name) is not None


def _drift(lock_text: str, packages: dict[str, str]) -> list[dict[str, str | None]]:
    """Where a native environment differs from the lockfile."""
    from toolkit.wheelhouse import normalise, read_pins

    installed = {normalise(k): v for k, v in packages.items()}
    drift: list[dict[str, str | None]] = []
    for pin in read_pins(lock_text):
        have = installed.get(pin.name)
        if have != pin.version:
            drift.append({"package": pin.name, "locked": pin.version, "installed": have})
    return drift


def drift_text(drift: Mapping[str, Any]) -> str:
    """One package's drift: "numpy 2.4.5 (locked 2.4.6)", "torch 2.13.0 (not in the lockfile)"."""
    locked = drift.get("locked")
    return f"{drift.get('package')} {drift.get('installed') or 'not installed'} " + (
        f"(locked {locked})" if locked else "(not in the lockfile)"
    )


def _unlocked(req: RunRequest, reports: list[dict[str, Any]]) -> list[dict[str, str | None]]:
    """Libraries a native run imported that its lockfile does not pin (torch from the machine's
    own environment): drift as much as a version that differs. A container has only what the
    lockfile installs; without a lockfile, that is said on its own."""
    lockfile = req.target.lockfile
    if not req.native or not lockfile.is_file():
        return []
    from toolkit.wheelhouse import normalise, read_pins

    pinned = {pin.name for pin in read_pins(lockfile.read_text(errors="replace"))}
    libraries: dict[str, Any] = next((r["libraries"] for r in reports if r.get("libraries")), {})
    return [
        {"package": name, "locked": None, "installed": str(version)}
        for name, version in sorted(libraries.items())
        if normalise(name) not in pinned
    ]


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"
