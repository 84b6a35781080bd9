"""What a run's record says about its inputs (lockfile, code, host, installed packages, data),
read while the experiment runs: each fact on its own, so one that cannot be read costs the record
that one alone."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import engine
from toolkit.errors import UserError
from toolkit.paths import STATE_DIR

if TYPE_CHECKING:
    from toolkit.config import Config
    from toolkit.run import RunRequest

FAILED = "failed facts"  # in the gathered facts: why each one missing could not be read
PATCH = "code.diff"  # the run's uncommitted changes (`git diff HEAD`), beside its record
PATCH_KEPT = 10 * 1024 * 1024  # a bigger one (a changed binary file) is not kept
DATA_READ = "data read"  # in the gathered facts: the data's Fingerprint, as it was read

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

_PACKAGES_SCRIPT = (
    "import json, importlib.metadata as m; "
    "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
)


class Background:
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


def collect(
    cfg: Config,
    req: RunRequest,
    image_info: engine.ImageInfo | None,
    found: dict[str, Any],
    begun: float | None = None,
) -> None:
    """What the record says about the run's inputs, each put in `found` once known (in the
    order of `record.FACTS`: reading every data file, a full read the first time, comes last)."""
    # metrics reads the run's files for the record once it has ended, caveats warns of what it
    # says less than it seems to: loaded beside the run
    from toolkit import caveats, fingerprint, hardware, metrics  # noqa: F401
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
        paths, skip = (exp.data, exp.not_data()) if exp else ((), ())
        prints = fingerprint.fingerprint(workdir, paths, known=known, skip=skip, data=True)
        found[DATA_READ] = prints  # for `data_changed`, once the run has ended
        return {"digest": prints.digest, "files": prints.files, "missing": list(prints.missing)}

    gather("data", data)


def data_changed(
    cfg: Config, facts: dict[str, Any], check: Callable[[], None] = lambda: None
) -> None:
    """Name, in the record's data (`changed`), each data file the run changed, made or removed
    while it ran: its fingerprint may hold the file as it was before or after, and the next
    run reads other data."""
    from toolkit import fingerprint

    read = facts.pop(DATA_READ, None)
    exp = cfg.experiment
    if read is None or exp is None or facts.get("data") is None:
        return
    found = fingerprint.changed(cfg.root / exp.workdir, exp.data, read, exp.not_data(), check)
    if found:
        facts["data"]["changed"] = found


def keep_patch(run_dir: Path, facts: dict[str, Any]) -> None:
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
    if first and is_python(command[0]):
        return first
    words = (shebang(Path(first)) or "").split() if first else []
    if words and Path(words[0]).name == "env":  # #!/usr/bin/env python3
        words = [w for w in words[1:] if not w.startswith("-")]
        found = shutil.which(words[0]) if words else None
        if found and is_python(found):
            return found
    elif words and is_python(words[0]):
        return words[0]
    return shutil.which("python") or shutil.which("python3") or sys.executable


def shebang(script: Path) -> str | None:
    """What follows `#!` on a script's first line ("/usr/bin/env python3"), or None."""
    line = _first_line(script)
    return line[2:].decode(errors="replace").strip() if line.startswith(b"#!") else None


def dos_shebang(script: Path, program: str) -> tuple[str, str] | None:
    """What to say, and what to do, where a script's `#!` line ends in a carriage return
    (Windows line endings): the system, or env, then looks for an interpreter whose name ends
    in one, and finds none. None for any other script."""
    line = _first_line(script)
    if not (line.startswith(b"#!") and line.rstrip(b"\n").endswith(b"\r")):
        return None
    return (
        f"its #! line ends in a carriage return (Windows line endings): #!{shebang(script)}",
        f"convert it to Unix line endings (dos2unix {program}, or your editor's setting)",
    )


def _first_line(script: Path) -> bytes:
    with contextlib.suppress(OSError), script.open("rb") as file:
        return file.readline(512)
    return b""


def is_python(program: str) -> bool:
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


def unlocked(req: RunRequest, reports: list[dict[str, Any]]) -> list[dict[str, str | None]]:
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
