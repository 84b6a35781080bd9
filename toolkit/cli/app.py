"""The `toolkit` command: parses arguments, calls the domain, prints, picks exit codes."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from toolkit import __version__
from toolkit.cli import output
from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.config import Config

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="toolkit",
    help="Reproducible ML experiments: lock, build, run, diff.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Options:
    """Global options, shared with every command through the Typer context."""

    config: Path | None = None
    debug: bool = False

    def load(self) -> Config:
        from toolkit.config import load_config

        return load_config(self.config)

    def load_optional(self) -> Config | None:
        """The project config, or None without a toolkit.yaml (an explicit --config must exist)."""
        from toolkit.config import load_config, locate_config

        path = self.config or locate_config()
        return load_config(path) if path else None


_options = Options()

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
    _options.config = config
    _options.debug = debug


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


def options() -> Options:
    return _options


def main() -> None:
    """Entry point: run the app; turn our errors into messages and exit codes."""
    try:
        app()
    except ToolkitError as exc:
        if _options.debug:
            traceback.print_exc()
        output.error(exc.message, exc.hint)
        log = getattr(exc, "log", None)
        if log:
            output.error(f"full log: {log}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        output.error("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _options.debug:
            traceback.print_exc()
        output.error(
            f"internal error: {type(exc).__name__}: {exc}",
            hint="this is a toolkit bug; rerun with --debug and report the traceback",
        )
        sys.exit(70)


# Each module registers its commands on `app`.
from toolkit.cli import base, build, ci, diff, doctor, init, lock, resolved, run  # noqa: E402, F401
