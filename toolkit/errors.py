"""One exception tree: a user's mistake prints a short message, our bug prints a traceback."""

from __future__ import annotations

from pathlib import Path


class ToolkitError(Exception):
    """Root of every error toolkit raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UserError(ToolkitError):
    """The user's input or environment is wrong: no traceback, a message that says what to do."""


class ConfigError(UserError):
    """toolkit.yaml or a command-line value is invalid."""

    exit_code = 2


class EngineUnavailable(UserError):
    """No Docker Engine answers."""


class LockError(UserError):
    """pip-tools could not produce or verify a lockfile."""


class BuildError(ToolkitError):
    """An image build failed; the full build log is kept."""

    def __init__(self, message: str, *, hint: str | None = None, log: Path | None = None) -> None:
        super().__init__(message, hint=hint)
        self.log = log


class RecordNotWritten(UserError):
    """A run ended, but its record could not be written (disk full, folder made read-only).
    `status` and `run_exit_code` say how the run ended: the command line exits as it would have
    after a run that did not succeed (scripts still see the experiment's code)."""

    def __init__(self, message: str, *, hint: str, status: str, run_exit_code: int | None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.run_exit_code = run_exit_code


class RunFailed(ToolkitError):
    """The experiment could not be run or did not finish."""
