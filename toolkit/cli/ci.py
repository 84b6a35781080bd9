"""`toolkit ci github|gitlab`: write a CI pipeline for the project."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from toolkit.cli.app import app, options, output

if TYPE_CHECKING:
    from toolkit.ci import CiOptions
    from toolkit.config import Config

ci_app = typer.Typer(
    help="Write a CI pipeline: lock drift gate, a run per target, repro-check across them.",
    no_args_is_help=True,
)
app.add_typer(ci_app, name="ci")

InstallOption = Annotated[
    str,
    typer.Option(
        "--install", help='How CI installs toolkit, e.g. "pip install -e ." in its own repo.'
    ),
]
GpuRunnerOption = Annotated[
    list[str] | None,
    typer.Option(
        "--gpu-runner",
        metavar="LABEL",
        help="Runner label (GitHub) or tag (GitLab) of GPU jobs; repeatable. "
        "Default: self-hosted, gpu (GitHub); gpu (GitLab).",
        show_default=False,
    ),
]
RtolOption = Annotated[
    float | None, typer.Option("--rtol", min=0, help="Relative tolerance for repro-check.")
]
AtolOption = Annotated[
    float | None, typer.Option("--atol", min=0, help="Absolute tolerance for repro-check.")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")]


@ci_app.command("github")
def github_command(
    install: InstallOption = "pip install repro-toolkit",
    gpu_runner: GpuRunnerOption = None,
    rtol: RtolOption = None,
    atol: AtolOption = None,
    force: ForceOption = False,
) -> None:
    """Write .github/workflows/toolkit.yml (GitHub Actions)."""
    _write("github", install, gpu_runner, rtol, atol, force)


@ci_app.command("gitlab")
def gitlab_command(
    install: InstallOption = "pip install repro-toolkit",
    gpu_runner: GpuRunnerOption = None,
    rtol: RtolOption = None,
    atol: AtolOption = None,
    force: ForceOption = False,
) -> None:
    """Write .gitlab-ci.yml (GitLab CI)."""
    _write("gitlab", install, gpu_runner, rtol, atol, force)


def _write(
    kind: Literal["github", "gitlab"],
    install: str,
    gpu_runner: list[str] | None,
    rtol: float | None,
    atol: float | None,
    force: bool,
) -> None:
    from toolkit import ci
    from toolkit.errors import ConfigError, UserError

    if not install.strip():
        raise ConfigError("--install is empty: give the command that installs toolkit in CI")
    from toolkit.compare.tolerance import Tolerance

    Tolerance(rtol or 0.0, atol or 0.0)  # checked as repro-check will: finite, >= 0
    if any(not label.strip() for label in gpu_runner or ()):
        raise ConfigError("--gpu-runner is empty: give a runner label (GitHub) or tag (GitLab)")
    cfg = options().load()
    ci.check_layout(cfg, kind)
    opts = ci.CiOptions(install.strip(), tuple(gpu_runner or ()), rtol, atol)
    if kind == "github":
        text, rel = ci.render_github(cfg, opts), ci.GITHUB_WORKFLOW
    else:
        text, rel = ci.render_gitlab(cfg, opts), ci.GITLAB_PIPELINE
    path = cfg.root / rel
    if path.exists() and not force:
        raise UserError(f"{path} exists", hint=f"toolkit ci {kind} --force overwrites it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    output.success(f"wrote {_shown(path)}")
    _describe(cfg, kind, opts)


def _describe(cfg: Config, kind: str, opts: CiOptions) -> None:
    from toolkit import ci

    default = ci.GITHUB_GPU_RUNNER if kind == "github" else ci.GITLAB_GPU_TAGS
    gpu = ", ".join(opts.gpu_runner or default)
    plain = ci.HOSTED_RUNNER if kind == "github" else "a privileged runner (Docker-in-Docker)"
    for target in cfg.targets.values():
        label = "labelled" if kind == "github" else "tagged"
        where = f"runners {label} {gpu}" if target.gpus else plain
        output.info(f"  {target.name}: runs on {where}")
    output.info(f"  repro-check: control {ci.control_target(cfg).name}, against every run")
    gpu_targets = [t.name for t in cfg.targets.values() if t.gpus]
    no_tolerance = opts.rtol is None and opts.atol is None
    if gpu_targets and no_tolerance and cfg.compare.rtol is None and cfg.compare.atol is None:
        output.warn(
            f"{', '.join(gpu_targets)} and {ci.control_target(cfg).name} compute in different "
            "orders and usually differ beyond float32 rounding: without tolerances the compare "
            "job fails on every push; regenerate with --rtol/--atol (or set compare: in "
            "toolkit.yaml) to what your experiment accepts"
        )


def _shown(path: Path) -> Path:
    cwd = Path.cwd()
    return path.relative_to(cwd) if path.is_relative_to(cwd) else path
