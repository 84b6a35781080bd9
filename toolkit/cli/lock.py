"""`toolkit lock`: hash-pinned lockfiles per target, drift gate (--check), parity report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.app import app, options, output
from toolkit.errors import ConfigError

if TYPE_CHECKING:
    from toolkit.lock import Parity


@app.command("lock")
def lock_command(
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Target(s) to lock; default: every target."),
    ] = None,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", "-U", help="Re-resolve every package to its newest.")
    ] = False,
    upgrade_package: Annotated[
        list[str] | None,
        typer.Option("--upgrade-package", "-P", help="Re-resolve only this package (repeatable)."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Only check: exit 1 if a lockfile is stale, missing or off parity."
        ),
    ] = False,
) -> None:
    """Pin requirements.in per target with hashes (pip-tools); --check is CI's drift gate."""
    from toolkit import lock

    cfg = options().load()
    names = lock.select_targets(cfg, target)
    if check:
        if upgrade or upgrade_package:
            raise ConfigError("--check writes nothing: it cannot be combined with --upgrade")
        report = lock.check(cfg, names)
        for st in report.statuses:
            where = _shown(st.lockfile, cfg.root)
            ok = st.state == "current"
            output.status_line(
                "ok" if ok else "fail",
                st.target,
                f"{where} {st.state}" + ("" if ok else f": {st.reason}"),
                None if ok else f"toolkit lock --target {st.target}",
            )
        _show_parity(report.parity, strict=True)
        if not report.ok:
            raise typer.Exit(1)
        return

    for name in names:
        with output.progress(f"locking {name} (pip-compile)") as update:
            done = lock.lock_target(
                cfg,
                name,
                upgrade=upgrade,
                upgrade_packages=upgrade_package or (),
                on_progress=update,
            )
        where = _shown(done.lockfile, cfg.root)
        state = "written" if done.changed else "unchanged"
        count = f"{done.packages} package{'' if done.packages == 1 else 's'}"
        if done.note:  # said as it went, which a terminal does not keep
            count = f"no packages: {_shown(cfg.requirements, cfg.root)} lists none"
        output.success(f"{name}: {where} {state} ({count}, {done.seconds:.1f}s)")
    _show_parity(lock.parity(cfg), strict=False)


def _shown(path: Path, root: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else path


def _show_parity(parity: Parity, *, strict: bool) -> None:
    if len(parity.targets) < 2:
        return
    targets = ", ".join(parity.targets)
    if parity.ok:
        line = f"{parity.shared} packages pinned identically across {targets}"
        if strict:
            output.status_line("ok", "parity", line)
        else:
            output.success(f"parity: {line}")
        return
    fix = "pin the package in requirements.in, then run `toolkit lock`"
    if parity.stale:
        relock = " ".join(f"--target {name}" for name in parity.stale)
        fix = (
            f"re-lock the stale target{'s' if len(parity.stale) > 1 else ''} first: "
            f"`toolkit lock {relock}` (if they still differ, pin the package in requirements.in)"
        )
    for mismatch in parity.mismatches:
        if strict:
            output.status_line("fail", "parity", mismatch.describe(), fix)
        else:
            output.warn(f"parity: {mismatch.describe()}")
    if not strict:
        output.warn(f"parity: {fix} (`toolkit lock --check` fails until then)")
