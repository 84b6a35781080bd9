"""`toolkit run`, `toolkit runs`, `toolkit show`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from toolkit.cli.app import TargetOption, app, options, output


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run_command(
    ctx: typer.Context,
    target: TargetOption = None,
    seed: Annotated[int | None, typer.Option(help="Override determinism.seed.")] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Override determinism.threads.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=0, help="Override determinism.dataloader_workers.")
    ] = None,
    no_strict: Annotated[
        bool,
        typer.Option(
            "--no-strict",
            help="Warn (and record) instead of failing on ops without a deterministic kernel.",
        ),
    ] = False,
    cpu: Annotated[str | None, typer.Option(help="CPU level: fixed or portable.")] = None,
    native: Annotated[
        bool, typer.Option("--native", help="Run without a container, in this environment.")
    ] = False,
    build: Annotated[
        bool, typer.Option("--build", help="Build the image first if needed.")
    ] = False,
    no_policy: Annotated[
        bool,
        typer.Option(
            "--no-policy",
            help="Run with the libraries' default settings, no determinism policy (recorded): "
            "a baseline to diff against.",
        ),
    ] = False,
) -> None:
    """Run the experiment in its image under the determinism policy; write runs/<id>/record.json.

    Give a command after `--` to run it instead of experiment.command.
    """
    from toolkit.cli import launch

    code = launch.run(
        launch.RunArgs(
            config=options().config,
            debug=options().debug,
            target=target,
            seed=seed,
            threads=threads,
            workers=workers,
            no_strict=no_strict,
            cpu=cpu,
            native=native,
            build=build,
            no_policy=no_policy,
            command=_command(ctx),
        )
    )
    if code:
        raise typer.Exit(code)


def _command(ctx: typer.Context) -> tuple[str, ...]:
    """The command given after `--` (or after the options). An option toolkit does not know (a
    typo: --no-stirct) is refused: taken as the command, it became a failed run of its own."""
    if ctx.args and ctx.args[0].startswith("-"):  # no program's name starts with a dash
        from toolkit.config import close_match
        from toolkit.errors import ConfigError

        known = [opt for param in ctx.command.params for opt in getattr(param, "opts", [])]
        close = close_match(ctx.args[0].split("=")[0], known)
        raise ConfigError(
            f"no such option: {ctx.args[0]}" + (f" (did you mean {close}?)" if close else ""),
            hint=f"`toolkit {ctx.command.name} --help` lists them; a command of your own goes "
            f"after --: toolkit {ctx.command.name} -- CMD ...",
        )
    return tuple(ctx.args)


runs_app = typer.Typer(help="List, export and import run records.")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs_command(ctx: typer.Context) -> None:
    """List run records: id, target, status, primary metric, when."""
    if ctx.invoked_subcommand is not None:
        return
    from toolkit.record import NO_RECORD, scan_runs

    cfg = options().load()
    rows, unreadable = scan_runs(cfg.root, unrecorded=True)
    for exc in unreadable:  # said, and the other runs listed all the same
        output.warn(f"not listed: {exc.message}")
    if not rows:
        output.info("no runs yet: `toolkit run`" if not unreadable else "no readable runs")
        return
    output.table(
        ["id", "target", "status", "primary", "started"],
        [
            [
                r.id,
                r.target + (" (native)" if r.native else ""),
                f"{r.status} (exit {r.exit_code})"
                if r.status == "failed" and r.exit_code
                else r.status,
                f"{r.primary}={r.primary_value:.6g}"
                + ("" if r.status == "succeeded" else " (last logged)")
                if r.primary and r.primary_value is not None
                else "-",
                r.started[:19].replace("T", " "),
            ]
            for r in rows
        ],
    )
    for why in dict.fromkeys(r.why for r in rows if r.status == NO_RECORD and r.why):
        output.note(f"{NO_RECORD}: {why}; `toolkit show ID` says where its logs are")


@runs_app.command("export")
def runs_export_command(
    items: Annotated[
        list[str], typer.Argument(metavar="RUN... FILE", help="Runs, then the bundle.")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Bundle run records (with outputs and logs) into one file for another machine or CI."""
    from pathlib import Path

    from toolkit.bundle import export_runs
    from toolkit.errors import ConfigError
    from toolkit.record import find_run

    if len(items) < 2:
        raise ConfigError("give at least one run and the bundle file: toolkit runs export RUN FILE")
    cfg = options().load()
    *refs, dest = items
    folders = [find_run(cfg.root, ref) for ref in refs]
    count = export_runs(folders, Path(dest), replace=force)
    output.success(f"wrote {dest} ({_count(count, 'run')})")
    from toolkit.source import ignored

    if Path(dest).resolve().is_relative_to(cfg.root.resolve()) and not ignored(Path(dest)):
        output.warn(
            f"{dest} is in the project, where git sees a new file: the next run's record "
            "counts it as code; export it outside the project, or add it to .gitignore"
        )


@runs_app.command("import")
def runs_import_command(
    bundle: Annotated[str, typer.Argument(help="A bundle from `toolkit runs export`.")],
) -> None:
    """Add the runs of a bundle to runs/ (validated; existing runs are never overwritten)."""
    from pathlib import Path

    from toolkit.bundle import import_runs
    from toolkit.record import runs_dir

    cfg = options().load()
    done = import_runs(Path(bundle), runs_dir(cfg.root), cfg.name)
    output.success(
        f"imported {_count(len(done.added), 'run')}"
        + (f": {', '.join(done.added)}" if done.added else "")
    )
    if done.projects:
        output.warn(
            f"{bundle} holds runs of {', '.join(done.projects)}, not of {cfg.name}: they are "
            f"listed and compared as {cfg.name}'s (repro-check leaves them out); was it the "
            "bundle you meant?"
        )
    if done.skipped:
        output.info(f"already present, left as they are: {', '.join(done.skipped)}")


@app.command("show")
def show_command(
    run_ref: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="Run id, id prefix, folder, or a bundle holding one run."
        ),
    ],
    json_output: Annotated[bool, typer.Option("--json", help="Print the whole record.")] = False,
) -> None:
    """Show one run record."""
    import tempfile
    from pathlib import Path

    from toolkit.record import portable
    from toolkit.runref import load_runs

    cfg = options().load_optional()
    with tempfile.TemporaryDirectory(prefix="toolkit-show-") as scratch:
        (run,) = load_runs(cfg.root if cfg else Path.cwd(), run_ref, Path(scratch), single=True)
    doc = run.record
    if json_output:
        output.as_json(portable(doc))  # valid JSON, as record.json itself is
        return
    output.table(["field", "value"], _show_rows(doc))


_NETWORK = {"none": "none (loopback only)", "host": "this machine's (native)"}


def _inherited(doc: dict[str, Any]) -> list[list[str]]:
    """A native run's inherited variables, counted: `show --json` has them."""
    from toolkit.facts import SECRET_SET

    found = doc.get("host_environment")
    if not isinstance(found, dict):
        return []
    secret = sum(value == SECRET_SET for value in found.values())
    return [
        [
            "environment",
            f"{_count(len(found), 'variable')} inherited ({secret} secret-named, not recorded)",
        ]
    ]


def _python(doc: dict[str, Any]) -> list[list[str]]:
    """The Python the experiment ran on; for a native run, which one (the first on PATH)."""
    if not doc.get("python"):
        return []
    processes = doc.get("processes") or [{}]
    where = processes[0].get("executable") if doc.get("native") else None
    return [["python", str(doc["python"]) + (f" ({where})" if where else "")]]


def _show_rows(doc: dict[str, Any]) -> list[list[str]]:
    import shlex

    det = doc.get("determinism") or {}
    applied = [a for a in det.get("applied", []) if a.get("status") == "applied"]
    code, data, outputs = doc.get("code"), doc.get("data"), doc.get("outputs")
    policy = det.get("policy")
    skipped = "not recorded"
    rows = [
        ["id", str(doc.get("id", "?"))],
        ["status", _status(doc)],
    ]
    if doc.get("engine_error"):
        rows.append(["engine error", str(doc["engine_error"])])
    rows += [
        ["target", str(doc.get("target", "?")) + (" (native)" if doc.get("native") else "")],
        ["command", shlex.join(str(arg) for arg in doc.get("command", []))],
        ["started", str(doc.get("started", "-"))],
        ["duration", f"{doc['duration_s']:.1f}s" if doc.get("duration_s") is not None else "-"],
        ["image", (doc.get("image") or {}).get("ref") or "-"],
        *(
            [["network", _NETWORK.get(doc["network"], doc["network"])]]
            if doc.get("network")
            else []
        ),
        *_inherited(doc),
        *_python(doc),
        [
            "code",
            f"{code.get('commit') or 'no git'}{' (dirty)' if code.get('dirty') else ''}"
            + (f", its uncommitted changes in {code['patch']}" if code.get("patch") else "")
            if code
            else skipped,
        ],
        ["data", (data.get("digest") or "-")[:16] if data else skipped],
        [
            "policy",
            ", ".join(f"{k}={v}" for k, v in policy.items())
            if policy
            else "none (--no-policy: the libraries' defaults)",
        ],
        ["applied", _count(len(applied), "setting")],
        [
            "nondeterministic ops",
            ", ".join(o.get("op", "?") for o in det.get("nondeterministic_ops", [])) or "none",
        ],
    ]
    if doc.get("native") or doc.get("package_drift"):
        rows.append(["package drift", _drift(doc)])
    rows += [
        ["primary", _primary(doc.get("metrics") or {})],
        [
            "outputs",
            f"{_count(len(outputs.get('files', {})), 'file')}, "
            f"{(outputs.get('digest') or '-')[:16]}"
            if outputs
            else skipped,
        ],
    ]
    # what the run was warned of as it ended (older records have none)
    rows += [["warning", str(text)] for text in doc.get("warnings") or []]
    return rows


def _status(doc: dict[str, Any]) -> str:
    exit_code = doc.get("exit_code")
    status = str(doc.get("status", "?"))
    return status + (f" (exit {exit_code})" if exit_code is not None else "")


def _primary(metrics: dict[str, Any]) -> str:
    name, value = metrics.get("primary"), metrics.get("primary_final")
    if not name:
        return "-"
    return f"{name}={'-' if value is None else value}"


def _drift(doc: dict[str, Any]) -> str:
    """Packages whose installed version differs from the lockfile (native runs)."""
    if "package_drift" in doc.get("incomplete", []):
        return "not recorded"
    drift = doc.get("package_drift") or []
    if not drift:
        return "none: the installed packages match the lockfile"
    from toolkit.facts import drift_text

    shown = [drift_text(d) for d in drift[:5]]
    more = f", and {len(drift) - 5} more (`toolkit show --json`)" if len(drift) > 5 else ""
    return ", ".join(shown) + more


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@app.command("shell", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def shell_command(
    ctx: typer.Context,
    target: TargetOption = None,
) -> None:
    """A shell in the target's image with the same mounts, user and settings as `run`.

    `toolkit shell -- CMD ...` runs one command instead, without a terminal (scripts, CI).
    """
    from toolkit import run

    command = list(_command(ctx))
    cfg = options().load()
    name = cfg.target(target).name
    interactive = not command and sys.stdin.isatty()
    req = run.request(cfg, name, command or ["bash"])

    code = run.shell(
        cfg,
        req,
        interactive=interactive,
        on_stdout=output.passthrough(sys.stdout),
        on_stderr=output.passthrough(sys.stderr),
    )
    raise typer.Exit(code)
