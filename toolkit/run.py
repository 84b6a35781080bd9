"""`toolkit run`: the experiment in its image (or natively) under the determinism policy,
leaving a complete run record."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from toolkit import __version__, engine, facts, image, interrupt, outcome, outputs, record
from toolkit.config import MAX_SEED, Config, DeterminismConfig, TargetConfig
from toolkit.errors import ConfigError, RecordNotWritten, UserError
from toolkit.paths import OUTPUTS, STATE_DIR, hold, let_go

if TYPE_CHECKING:
    from toolkit import metrics

CONTAINER_PROJECT = "/project"
CONTAINER_RUN_DIR = "/toolkit/run"
CONTAINER_RUNTIME = "/toolkit/runtime"
RECORD_SPACE_BYTES = 4 * 1024 * 1024  # a record is ~20 kB; a long metrics series a few MB


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
    on_recorded: Callable[[], None] = lambda: None,
) -> RunResult:
    """Run the experiment and write its record; the record is written whatever the outcome.
    `on_start` is called once everything it needs is there, just before it starts;
    `on_recorded` once the record is written, while Ctrl-C is still held."""
    with _workdir_outputs_claimed(cfg, req) as workdir_lock:
        return _execute(
            cfg,
            req,
            workdir_lock,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_note=on_note,
            on_start=on_start,
            on_recorded=on_recorded,
        )


@contextlib.contextmanager
def _workdir_outputs_claimed(cfg: Config, req: RunRequest) -> Iterator[IO[str] | None]:
    """A native run writes its outputs in the workdir it shares with every other native run of
    the project: two at once would overwrite each other's, and each record could then hold the
    other's metrics and checkpoints. While one runs, another is refused. The lock is the
    system's (flock), held by toolkit and by the experiment (the file is yielded, to pass on):
    it goes when both have ended, even killed (an experiment whose toolkit was killed runs on,
    in a session of its own, and keeps it)."""
    declared = cfg.experiment.declared_outputs() if cfg.experiment else []
    if not req.native or not declared:  # nothing shared to claim
        yield None
        return
    path = cfg.root / STATE_DIR / "native-run.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.open("a+", encoding="utf-8")
    except OSError:  # a project toolkit cannot write to: the run folder says so next
        yield None
        return
    with lock:
        try:
            hold(lock, f"pid {os.getpid()}, started {time.strftime('%H:%M:%S')}")
            locked = True
        except BlockingIOError:  # held: another native run of the project is under way
            lock.seek(0)
            holder = lock.read().strip() or "a process"
            workdir = cfg.experiment.workdir if cfg.experiment else "."
            raise UserError(
                f"another native run of this project is under way ({holder}): both could write "
                f"{', '.join(declared)} in {workdir}, and each record could hold the other's",
                hint="wait for it to end (`toolkit runs` lists it as running; where its toolkit "
                "was killed, its program may run on until it next prints), run from a separate "
                "checkout, or run in the target's image (without --native), where each run's "
                "outputs are kept apart",
            ) from None
        except OSError:  # a file system without locks (Lustre without -o flock, NFS without
            locked = False  # lockd): the run goes on, as runs did before they were kept apart
        try:
            yield lock if locked else None
        finally:
            let_go(lock)  # from the program's hands too: a daemon it left has it


def _execute(
    cfg: Config,
    req: RunRequest,
    workdir_lock: IO[str] | None,
    *,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    on_note: Callable[[str], None],
    on_start: Callable[[], None],
    on_recorded: Callable[[], None],
) -> RunResult:
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
    background = facts.Background(lambda found: facts.collect(cfg, req, image_info, found, begun))
    # Until the experiment starts, Ctrl-C is held, then acted on: a KeyboardInterrupt raised
    # while a module loads can be swallowed by importlib (CPython 3.11), or leave its lock
    # taken, and the run would then hang, or end and leave its program running. What the start
    # needs is loaded here.
    with interrupt.held() as pressed:
        run_id, run_dir = record.new_run_dir(cfg.root, req.target.name)
        claimed = record.claim(run_dir, native=req.native)
        try:
            runtime_dir = runtime_bundle(cfg.root)
            env = policy_environment(req.policy, os.environ if req.native else None)
            outputs_dir = run_dir / OUTPUTS
            outputs_dir.mkdir()
            _reserve_record_space(run_dir)
            if req.native:
                from toolkit import proc  # noqa: F401  # for _run_native
        except BaseException:
            _discard(run_dir, claimed)
            raise
    if pressed.is_set():  # before the start began: no run to keep
        _discard(run_dir, claimed)
        raise KeyboardInterrupt
    try:
        declared = cfg.experiment.declared_outputs() if cfg.experiment else []
        before: dict[str, bytes] = {}  # a native run's metrics file as it was
        placeholders: dict[Path, int] = {}  # a container's mount points for declared files
        started = time.time()
        stdout_log, stderr_log = run_dir / "stdout.log", run_dir / "stderr.log"
        lost_logs: list[str] = []  # a log the run could not write to the end: said, and kept

        def said_of_logs(note: str) -> None:
            on_note(note)
            lost_logs.append(note)

        # Unbuffered: each chunk is in the log as soon as it is shown, and a log that cannot be
        # written any more (disk full) holds nothing back to fail again when it is closed.
        with (
            stdout_log.open("wb", buffering=0) as out_file,
            stderr_log.open("wb", buffering=0) as err_file,
        ):
            tee_out = _tee(out_file, on_stdout, said_of_logs)
            tee_err = _tee(err_file, on_stderr, said_of_logs)
            on_start()

            if req.native:
                earlier = outputs.present(workdir, declared)
                before = outputs.contents(workdir, experiment.metrics.file if experiment else None)
                background.start()
                # the experiment holds the run's locks too: a run whose toolkit is killed
                # is still running as long as its program is
                held = [f.fileno() for f in (claimed, workdir_lock) if f is not None]
                ended_as = _run_native(
                    req, workdir, run_dir, runtime_dir, env, tee_out, tee_err, on_note, held
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
                    placeholders,
                    tee_out,
                    tee_err,
                    background.start,
                    on_note,
                )
    except (UserError, KeyboardInterrupt) as exc:
        # A UserError means the experiment never started (command not found, container
        # refused); so does Ctrl-C before its start began: no run to keep. Ctrl-C while it
        # was starting is recorded as an interrupted run.
        if isinstance(exc, UserError) or not background.started:
            _discard(run_dir, claimed)
            raise
        ended_as = engine.ContainerExit(None, interrupted=True)
    ended = time.time()

    # From here on the run is over and its record must be written: Ctrl-C only skips what
    # is slow (facts still being gathered, copying and hashing big outputs).
    with _ctrl_c_skips(on_note) as finishing:
        # the run's own products first: they matter most to a diff
        copied_from = (workdir, earlier) if req.native else None
        outputs.drop_unwritten(placeholders)
        try:
            hashed: dict[str, Any] | None = outputs.hashed(
                outputs_dir, declared, copied_from, finishing.check
            )
        except _Skipped:
            hashed = None
        except OSError as exc:  # a native run's outputs copied onto a full disk
            on_note(f"the record is incomplete: outputs: {exc.strerror or exc}")
            hashed = None
        gathered = _gathered(background, on_note, finishing)
        facts.keep_patch(run_dir, gathered)
        try:
            facts.data_changed(cfg, gathered, finishing.check)
        except _Skipped:
            pass
        except Exception as exc:  # a check that cannot be made must not cost the record
            on_note(f"the data could not be looked at again: {type(exc).__name__}: {exc}")
        from toolkit import metrics

        metrics_files = metrics.read_run_files(
            run_dir,
            experiment.metrics.file if experiment else None,
            experiment.metrics.patterns if experiment else (),
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
            hashed,
            gathered,
            metrics_files,
        )
        # where the record says less than it seems to, kept with it for whoever reads it later
        from toolkit import caveats  # loaded beside the run (facts.collect), not before its start

        try:
            doc["warnings"] = (
                lost_logs
                + caveats.of(cfg, doc, metrics_files, run_dir)
                + outputs.appended(before, outputs_dir)
            )
        except Exception as exc:  # a check that cannot be made must not cost the record
            doc["warnings"] = [
                *lost_logs,
                f"the run could not be checked for warnings: {type(exc).__name__}: {exc}",
            ]
        try:
            (run_dir / record.RECORD_SPACE).unlink(missing_ok=True)  # the record's room, given back
            record.write_record(run_dir, doc)
            record.release(run_dir, claimed)
            on_recorded()
        except OSError as exc:
            let_go(claimed)  # its folder then says its toolkit ended
            hint = (
                f"its logs and outputs are in {run_dir}, as far as they could be written: "
                "free disk space or make the folder writable, and run again"
            )
            if not run_dir.is_dir():
                hint = f"its folder {run_dir} was removed while it ran: run again, and leave it"
            raise RecordNotWritten(
                f"{run_id} {doc['status']}, but its record could not be written: "
                f"{exc.strerror or exc}",
                hint=hint,
                status=doc["status"],
                run_exit_code=doc["exit_code"],
            ) from None
    found_ops = doc["determinism"]["nondeterministic_ops"]
    ops = tuple(o["op"] for o in found_ops if o["mode"] != outcome.IN_OUTPUT)
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
        tuple(w for w in doc["warnings"] if w not in lost_logs),  # those were said as they came
        tuple(o["op"] for o in found_ops if o["mode"] == outcome.IN_OUTPUT),
    )


def _reserve_record_space(run_dir: Path) -> None:
    """Room for the record, taken before the experiment starts and given back just before the
    record is written: an experiment that fills the disk (checkpoints, logs) does not cost the
    run its record. Allocated, not written: it takes no time."""
    path = run_dir / record.RECORD_SPACE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, RECORD_SPACE_BYTES)
    except (OSError, AttributeError):  # a full disk already; no fallocate (macOS): no room held
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _discard(run_dir: Path, claimed: IO[str] | None) -> None:
    """Remove the folder of a run that never started."""
    import shutil

    record.release(run_dir, claimed)

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
    placeholders: dict[Path, int],
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    started: Callable[[], None],
    on_note: Callable[[str], None],
) -> engine.ContainerExit:
    """The experiment in its container; each empty file made for a declared output's mount is
    put in `placeholders` with its mtime: one the run never wrote is no output of its."""
    spec = container_spec(cfg, image_ref, req, workdir_rel, run_dir, runtime_dir, env)
    mounts = list(spec.mounts)
    # Each run's outputs land in its own folder, bound over the paths the experiment writes to,
    # so two runs at once never overwrite each other's checkpoints or metrics.
    workdir = cfg.root / workdir_rel
    made: list[Path] = []  # mount targets the project did not have: taken away after the run
    touched: set[Path] = set()  # the empty files made for them
    for rel in declared:
        host_side = run_dir / OUTPUTS / rel
        in_project = workdir / rel
        made += outputs.missing_above(in_project, workdir)
        if outputs.is_folder(rel, workdir):
            host_side.mkdir(parents=True, exist_ok=True)
            in_project.mkdir(parents=True, exist_ok=True)
        else:
            host_side.parent.mkdir(parents=True, exist_ok=True)
            host_side.touch()
            placeholders[host_side] = host_side.stat().st_mtime_ns
            in_project.parent.mkdir(parents=True, exist_ok=True)
            if not in_project.exists():
                in_project.touch()
                touched.add(in_project)
        mounts.append(engine.Mount(host_side, f"{spec.workdir}/{rel.rstrip('/')}"))
    try:
        return engine.run_container(
            dataclasses.replace(spec, mounts=tuple(mounts)),
            {"io.toolkit.project": cfg.name, "io.toolkit.run": run_dir.name},
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            started=started,
            on_stop=on_note,
        )
    finally:
        # An empty file left in the project is new code to git, and to the next record. Not
        # while another run may have its outputs mounted on them: taking its mount target away
        # unmounts its outputs (the targets it found are left as they are, then).
        with contextlib.suppress(OSError):  # a folder it cannot look at: left as it is
            if made and not record.others_running(cfg.root, run_dir):
                outputs.remove_empty(made, touched)


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
    return interrupt.exit_code() if ended.interrupted else int(ended.exit_code or 0)


def _run_native(
    req: RunRequest,
    workdir: Path,
    run_dir: Path,
    runtime_dir: Path,
    env: dict[str, str],
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None],
    on_note: Callable[[str], None],
    held: list[int],
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
            pass_fds=held,
        )
    except OSError as exc:
        if exc.filename is None:  # not the start: an error while it ran (too many open files)
            raise
        raise _not_started(req.command[0], workdir, exc) from None
    return engine.ContainerExit(code, interrupted)


def _not_started(program: str, workdir: Path, exc: OSError) -> UserError:
    """Why a native run's command could not be started, as a shell would say it, with the
    shell's exit code: 127 not found, 126 found but not runnable."""
    import shutil

    if str(exc.filename) == str(workdir):  # the folder it starts in, not the program
        return UserError(
            f"cannot start the run in {workdir}: {exc.strerror or exc}",
            hint="check experiment.workdir in toolkit.yaml, and that the folder can be entered",
        )
    where = "the command (experiment.command in toolkit.yaml, or what follows --)"
    found = workdir / program if "/" in program else None
    if found is None and (on_path := shutil.which(program)):
        found = Path(on_path)
    if found is None or not (found.exists() or found.is_symlink()):
        error = UserError(
            f"command not found: {program}", hint=f"check the name and PATH of {where}"
        )
        error.exit_code = 127
        return error
    if found.is_dir():
        said, hint = "it is a folder", f"name a program or a script in {where}"
    elif isinstance(exc, FileNotFoundError):  # the file is there: its #! interpreter is not
        interpreter = facts.shebang(found)
        said = f"its interpreter is not found (#!{interpreter})" if interpreter else str(exc)
        hint = "fix the script's #! line, or run it with an interpreter (python script.py)"
        said, hint = facts.dos_shebang(found, program) or (said, hint)
    elif isinstance(exc, PermissionError):
        said = "permission denied"
        hint = f"make it executable (chmod +x {program}), or run it with its interpreter"
    else:  # ENOEXEC: a script without a #! line, a binary for another machine
        said = exc.strerror or str(exc)
        hint = "a script needs a #! line, or run it with its interpreter (python script.py)"
    error = UserError(f"cannot run {program}: {said}", hint=hint)
    error.exit_code = 126
    return error


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
    hashed: dict[str, Any] | None,
    gathered: dict[str, Any],
    metrics_files: Mapping[str, metrics.Parsed],
) -> dict[str, Any]:
    from toolkit import metrics

    exp = cfg.experiment
    reports = outcome.runtime_reports(run_dir)
    status = _status(ended_as)
    series = metrics.merge(*metrics_files.values())
    primary = exp.metrics.primary if exp else None
    experiment = identity(cfg, req)  # what repro-check compares runs from elsewhere by
    return {
        "schema": record.SCHEMA,
        "id": run_id,
        "project": experiment["project"],
        "target": req.target.name,
        "status": status,
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
        "lockfile": gathered.get("lockfile"),
        "code": gathered.get("code"),
        "data": gathered.get("data"),
        "determinism": {
            "policy": experiment["determinism policy"],
            "environment": env,
            "applied": outcome.merged_settings(reports),
            "forced": outcome.merged_forced(reports),
            "overridden": outcome.merged_overridden(reports),
            "nondeterministic_ops": outcome.merged_ops(reports)
            or (
                outcome.ops_in_log(run_dir / "stderr.log") if _status(ended_as) == "failed" else []
            ),
        },
        "python": next((r["python"] for r in reports if r.get("python")), None),
        "processes": [
            {k: r.get(k) for k in ("pid", "ppid", "argv", "python", "executable")} for r in reports
        ],
        "host": gathered.get("host"),
        "host_environment": facts.inherited_environment(os.environ, env) if req.native else None,
        "accelerator": next((r["torch"] for r in reports if r.get("torch")), None),
        "libraries": next((r["libraries"] for r in reports if r.get("libraries")), {}),
        "packages": gathered.get("packages", {}),
        "package_drift": gathered.get("package_drift", [])
        + (facts.unlocked(req, reports) if "package_drift" in gathered else []),
        "incomplete": [name for name in record.FACTS if name not in gathered]
        + ([] if hashed is not None else ["outputs"]),
        "metrics": {
            "primary": primary,
            "file": exp.metrics.file if exp else None,
            "patterns": dict(exp.metrics.patterns) if exp else {},
            "primary_final": metrics.final(series, primary),
            "series": {name: [[s, v] for s, v in points] for name, points in series.items()},
        },
        # with what toolkit.yaml declared: a path declared or left out changes what is hashed
        "outputs": None
        if hashed is None
        else {**hashed, "declared": list(exp.outputs) if exp else []},
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
    with interrupt.held() as pressed:  # first: a signal from here on cannot cost the record
        timer = threading.Timer(1.0, on_note, [f"{note} (Ctrl-C skips the rest)"])
        timer.daemon = True
        timer.start()
        try:
            yield _Finishing(pressed)
        finally:
            timer.cancel()


def _gathered(
    background: facts.Background, on_note: Callable[[str], None], finishing: _Finishing
) -> dict[str, Any]:
    """The facts for the record, waited for until Ctrl-C; the record lists those it lacks."""
    while not background.wait(0.1) and not finishing.pressed:
        pass
    found = dict(background.found)
    for reason in found.pop(facts.FAILED, []):  # a fact that cannot be read: said, the rest kept
        on_note(f"the record is incomplete: {reason}")
    if background.error is not None:  # a fact that cannot be read must not cost the record
        error = background.error
        on_note(f"the record is incomplete: {type(error).__name__}: {error}")
    return found


def _status(ended: engine.ContainerExit) -> str:
    if ended.interrupted:
        return "interrupted"
    if ended.engine_error:
        return "engine_lost"
    return "succeeded" if ended.exit_code == 0 else "failed"


def _network(cfg: Config, req: RunRequest) -> str:
    """The network the run had: none (experiment.network: false), the engine's default bridge,
    or the host's own (native: toolkit cannot take it away)."""
    if req.native:
        return "host"
    return "bridge" if cfg.experiment is None or cfg.experiment.network else "none"


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"
