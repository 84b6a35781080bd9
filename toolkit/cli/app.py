"""The Typer app: every command parses its arguments here, calls the domain, prints, and picks
its exit code (`toolkit.cli.main` runs it)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer

from toolkit import __version__
from toolkit.cli import options, output

__all__ = ["TargetOption", "TargetsOption", "app", "errors_exit", "options", "output"]
from toolkit.errors import ToolkitError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="toolkit",
    help="Reproducible ML experiments: lock, build, run, diff.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


TargetOption = Annotated[
    str | None, typer.Option("--target", "-t", help="Target from toolkit.yaml; default: the first.")
]
TargetsOption = Annotated[
    list[str] | None,
    typer.Option("--target", "-t", help="Target(s) from toolkit.yaml; default: the first one."),
]


def _version(value: bool) -> None:
    if value:
        output.info(f"toolkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Path to toolkit.yaml.", show_default=False),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Reproducible ML experiments: lock, build, run, diff."""
    options().config = config
    options().debug = debug


def errors_exit(code: int) -> Callable[[F], F]:
    """Decorate a command so any toolkit error exits with `code` (diff, repro-check: 2)."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except ToolkitError as exc:
                exc.exit_code = code
                raise

        return cast(F, wrapper)

    return decorate


# Each module registers its commands on `app`.
from toolkit.cli import base, build, ci, diff, doctor, init, lock, resolved, run  # noqa: E402, F401
