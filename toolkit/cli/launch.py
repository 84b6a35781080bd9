"""`toolkit run` with no Typer on its way: the common command line read here, and the run itself.

Starting Typer (with click, pydantic and rich) takes over 100 ms, a third of a short run in a
container (issue 5: `toolkit run` within 1.2x of `docker run`). `parse` reads the form
`toolkit [-c PATH] [--debug] run [OPTIONS] [-- CMD ...]`; any other command line (help, a
mistake, a command given without `--`, every other command) goes to the Typer app, whose `run`
calls the same `run` below. A unit test keeps the two parsers in agreement.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.cli import options, output

if TYPE_CHECKING:
    from toolkit.run import RunResult


@dataclass(frozen=True)
class RunArgs:
    """`toolkit run`'s command line, parsed."""

    config: Path | None = None
    debug: bool = False
    target: str | None = None
    seed: int | None = None
    threads: int | None = None
    workers: int | None = None
    no_strict: bool = False
    cpu: str | None = None
    native: bool = False
    build: bool = False
    no_policy: bool = False
    command: tuple[str, ...] = ()


_GLOBAL = {"--config": "config", "-c": "config"}
_VALUES = {
    "--target": "target",
    "-t": "target",
    "--seed": "seed",
    "--threads": "threads",
    "--workers": "workers",
    "--cpu": "cpu",
}
_FLAGS = {
    "--no-strict": "no_strict",
    "--native": "native",
    "--build": "build",
    "--no-policy": "no_policy",
}
_MINIMUM = {"seed": None, "threads": 1, "workers": 0}  # the integer options and their floors


def parse(argv: list[str]) -> RunArgs | None:
    """`toolkit run`'s arguments, or None where the Typer app should read the command line."""
    args = RunArgs()
    try:
        at = argv.index("run")
    except ValueError:
        return None
    found = _options(argv[:at], _GLOBAL, {"--debug": "debug"})
    if found is None:
        return None
    args = replace(args, **found)
    rest = argv[at + 1 :]
    cut = rest.index("--") if "--" in rest else len(rest)
    found = _options(rest[:cut], _VALUES, _FLAGS)
    if found is None:
        return None
    return replace(args, **found, command=tuple(rest[cut + 1 :]))


def _options(
    argv: list[str], values: dict[str, str], flags: dict[str, str]
) -> dict[str, Any] | None:
    """Options as fields (the last of a repeated one wins); None at anything else."""
    found: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        name, eq, inline = argv[i].partition("=")
        if name in flags and not eq:
            found[flags[name]] = True
            i += 1
            continue
        if name not in values or (eq and not name.startswith("--")):  # click reads -t=x as "=x"
            return None
        if eq:
            text = inline
        elif i + 1 < len(argv):
            text = argv[i + 1]
            i += 1
        else:
            return None
        i += 1
        field = values[name]
        if field == "config":
            found[field] = Path(text)
        elif field in _MINIMUM:
            floor = _MINIMUM[field]
            try:
                number = int(text)
            except ValueError:
                return None
            if floor is not None and number < floor:
                return None
            found[field] = number
        else:
            found[field] = text
    return found


# What the shell's (or the container's init's) exit codes for a command that never ran, or
# that was killed, mean.
_EXIT_HINTS = {
    126: "exit 126: the command is a folder, or a file that is not executable: name the "
    "program to run, chmod +x it, or run it with its interpreter (python x.py)",
    127: "exit 127: the command was not found: check its name and PATH, or that its package "
    "is in requirements.in",
    137: "exit 137: killed (SIGKILL): out of memory, or stopped from outside, e.g. docker kill",
}


def run(args: RunArgs) -> int:
    """Run the experiment and print where its record is; returns the exit code."""
    from toolkit import interrupt
    from toolkit import run as runner
    from toolkit.errors import RecordNotWritten

    cfg = options().load()
    name = cfg.target(args.target).name
    req = runner.request(
        cfg,
        name,
        list(args.command) or None,
        seed=args.seed,
        threads=args.threads,
        workers=args.workers,
        strict=False if args.no_strict else None,
        cpu=args.cpu,
        native=args.native,
        apply_policy=not args.no_policy,
    )
    if args.build and not args.native:
        from toolkit.cli.build import build_targets

        build_targets([name], stderr=True)  # stdout is the experiment's

    where = "natively" if args.native else f"in the {name} image"
    if not args.native and cfg.experiment is not None and not cfg.experiment.network:
        where += " with no network"
    p = req.policy
    settings = (
        f"seed {p.seed}, {_count(p.threads, 'thread')}, "
        f"{_count(p.dataloader_workers, 'loader worker')}, "
        f"{'strict' if p.strict else 'warn'}, cpu {p.cpu}"
        if p
        else "no determinism policy: the libraries' defaults"
    )
    # toolkit's own lines go to stderr: stdout is the experiment's alone, as with `docker run`
    # (`toolkit run -- python make_table.py > table.csv`).
    try:
        result = runner.execute(
            cfg,
            req,
            on_stdout=output.passthrough(sys.stdout),
            on_stderr=output.passthrough(sys.stderr),
            on_note=output.note,
            on_start=lambda: output.note(f"run {shlex.join(req.command)} {where} ({settings})"),
            # the run is over and recorded: a signal now would only cut the summary short
            on_recorded=interrupt.settle,
        )
    except RecordNotWritten as exc:  # a run whose record is lost did not succeed either
        exc.exit_code = _exit_code(exc.status, exc.run_exit_code, interrupt.exit_code())
        raise
    hint = None
    ended = _as_shell(result.exit_code) if result.exit_code is not None else None
    if result.status == "failed" and req.native and ended == 137:  # no `docker kill` there
        hint = "exit 137: killed (SIGKILL): out of memory, or stopped from outside (kill -9)"
    if result.status == "failed" and result.exit_code == 127:
        from toolkit import outcome

        program = req.command[0]
        workdir = cfg.root / (cfg.experiment.workdir if cfg.experiment else ".")
        why = outcome.shebang_failure(result.path, program, workdir)
        hint = f"exit 127: {why}" if why else None
    return _report(cfg.root, result, hint)


def _report(root: Path, result: RunResult, hint: str | None = None) -> int:
    """What a finished run says: its warnings, how it ended, where its record is, what to do
    about a failure (`hint`, where toolkit knows more than the exit code says); returns the
    exit code."""
    from toolkit import interrupt

    rel = result.path.relative_to(root) if result.path.is_relative_to(root) else result.path
    for warning in result.warnings:
        output.warn(warning)
    if result.incomplete:
        output.warn(f"the record is incomplete, without: {', '.join(result.incomplete)}")
    ended = interrupt.said() if result.status == "interrupted" else result.status
    summary = f"{result.id}: {ended}"
    if result.primary and result.primary_value is not None:
        summary += f", {result.primary}={result.primary_value:.6g}"
    if result.status == "succeeded":
        if result.nondeterministic_ops:  # --no-strict: it ran, and may not run the same again
            output.warn(
                f"ops without a deterministic implementation ran: "
                f"{', '.join(result.nondeterministic_ops)}; results may vary between runs"
            )
        output.success(f"{summary} (record: {rel}/record.json)", stderr=True)
        return 0
    code = _exit_code(result.status, result.exit_code, interrupt.exit_code())
    output.error(
        f"{summary}{_exited(result.exit_code)} (record: {rel}/record.json)",
        # not for a run toolkit stopped: its SIGKILL is no out-of-memory
        hint=(hint or _EXIT_HINTS.get(code)) if result.status == "failed" else None,
    )
    fix = (
        "rerun with --no-strict to record every such op and finish the run (results may then "
        "vary between runs), or replace the op"
    )
    if result.nondeterministic_ops:
        ops = ", ".join(result.nondeterministic_ops)
        output.error(f"no deterministic implementation for: {ops}", hint=fix)
    elif result.ops_in_output:
        ops = ", ".join(result.ops_in_output)
        output.error(
            f"its output names an op with no deterministic implementation: {ops}",
            hint=f"if that is what stopped it: {fix}",
        )
    if result.status == "engine_lost":
        output.error(
            f"the Docker Engine stopped answering during the run: {result.engine_error}",
            hint=f"the experiment may still be running (`docker ps`), and what is in {rel} may "
            "not be its final output; start the engine again (`toolkit doctor` says how) and rerun",
        )
    return code


def _exit_code(status: str, exit_code: int | None, stopped: int) -> int:
    """What `toolkit run` exits with after a run that did not succeed; `stopped`: the code of
    the signal that interrupted it (130 for Ctrl-C)."""
    if status == "interrupted":
        return stopped
    return _as_shell(exit_code) if exit_code else 1


def _as_shell(code: int) -> int:
    """A program's exit code as a shell (and a container) says it: a native program a signal
    ended has -N, a shell says 128 + N (137 for SIGKILL)."""
    return 128 - code if code < 0 else code


def _exited(code: int | None) -> str:
    """How the program ended, as a shell says it: " (exit 3)", " (exit 130: SIGINT)"."""
    if not code:
        return ""
    import signal

    shown = _as_shell(code)
    if shown > 128 and shown - 128 in signal.valid_signals():
        return f" (exit {shown}: {signal.Signals(shown - 128).name})"
    return f" (exit {shown})"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
