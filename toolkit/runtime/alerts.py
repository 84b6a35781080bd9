"""Name the ops that have no deterministic implementation: raised (strict) or warned (warn mode)."""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings

from toolkit.runtime.policy import SHELL_VAR
from toolkit.runtime.report import Report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

PHRASE = "does not have a deterministic implementation"
# torch's message starts with the op ("put_ does not have ..."); re-raised from a DataLoader
# worker it sits on its own line after "RuntimeError: ".
_OP = re.compile(r"^[ \t]*(?:[\w.]+(?:Error|Exception): )?(?P<op>[^\n]+?) " + PHRASE, re.MULTILINE)

HINT = (
    "toolkit: {op} has no deterministic implementation, so strict mode stopped the run.\n"
    "toolkit: rerun with --no-strict to let it run and record it (results may then vary),\n"
    "toolkit: or replace the op in the code; the run record names it."
)


def op_name(message: str) -> str | None:
    """The op named by torch's 'has no deterministic implementation' message, or None."""
    match = _OP.search(message)
    return match.group("op").strip() if match else None


def ops_in(exc: BaseException | None) -> list[str]:
    """Ops named anywhere in an exception's chain (cause and context)."""
    found: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = op_name(str(exc))
        if name is not None and name not in found:
            found.append(name)
        exc = exc.__cause__ or exc.__context__
    return found


def install(report: Report) -> None:
    """Record such ops from uncaught exceptions (any thread) and from warnings."""
    previous_hook = sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        names = _record_raised(report, exc)
        previous_hook(kind, exc, tb)
        _hint(names)

    previous_thread_hook = threading.excepthook

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        names = _record_raised(report, args.exc_value)
        previous_thread_hook(args)
        _hint(names)

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    _watch_warnings(report)


def _record_raised(report: Report, exc: BaseException | None) -> list[str]:
    try:
        names = ops_in(exc)
        for name in names:
            report.op(name, "raised")
        if names:
            report.write()
        return names
    except Exception as error:
        report.error("recording a nondeterministic op", error)
        return []


def _hint(names: list[str]) -> None:
    """Under `toolkit run` the launcher gives the hint once the run has ended (from the
    record); under `toolkit shell` nobody else would."""
    if not os.environ.get(SHELL_VAR):
        return
    for name in names:
        sys.stderr.write(HINT.format(op=name) + "\n")


def _watch_warnings(report: Report) -> None:
    # warnings._showwarnmsg is the one funnel every displayed warning goes through, including
    # those under logging.captureWarnings() or catch_warnings(record=True), which replace
    # showwarning. Warnings the user's filters ignore never get here and are not recorded.
    name = "_showwarnmsg" if hasattr(warnings, "_showwarnmsg") else "showwarning"
    previous = getattr(warnings, name)

    def show(*args: object, **kwargs: object) -> object:
        try:
            message = args[0] if args else kwargs.get("message", kwargs.get("msg"))
            text = str(getattr(message, "message", message))
            op = op_name(text) if PHRASE in text else None
            if op is not None and report.op(op, "warned"):
                report.write()
        except Exception as error:
            report.error("recording a nondeterministic op warning", error)
        return previous(*args, **kwargs)

    setattr(warnings, name, show)
