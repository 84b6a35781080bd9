"""The one module that runs pip-tools and pip: host trust settings kept, host package sources not.

Every pip call toolkit makes (pip-compile here, `pip download` for the wheelhouse) takes its
environment from `pip_environment()` and its package sources from `target_sources()`:

- The host's pip configuration (config files and PIP_* variables) keeps only trust and network
  settings (certificate bundle, client certificate, proxy, timeouts, retries, trusted hosts).
  Package sources (index-url, extra-index-url, find-links, constraints, no-index) are dropped, so a
  target resolves from what toolkit.yaml declares and nothing else.
- Mirrors: a per-machine map from a declared source URL to a mirror (an index URL, or a directory
  of wheels), read from TOOLKIT_MIRRORS, `.toolkit/mirrors.toml` and ~/.config/toolkit/mirrors.toml.
  Mirrors change where pip looks, never what a lockfile says.

Run as `python -m toolkit.piptools ARGS...` it is pip-compile in that environment, with one fix:
hashes come from the index's `#sha256=` link fragments when the index gives them, instead of
downloading every file of every platform to hash it (pip-tools does that whenever an index's JSON
API does not match its links: gigabytes for torch and the nvidia-* wheels).
"""

from __future__ import annotations

import ast
import functools
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from toolkit import proc
from toolkit.errors import BuildError, ConfigError

if TYPE_CHECKING:
    from toolkit.config import Config, IndexConfig, TargetConfig

PYPI = "https://pypi.org/simple"
MIRRORS_ENV = "TOOLKIT_MIRRORS"
MIRRORS_FILE = "mirrors.toml"  # in <project>/.toolkit/ and in ~/.config/toolkit/

# pip options about reaching and trusting an index (and local caching), never which packages exist
_TRUST_OPTIONS = (
    "cert",
    "client-cert",
    "proxy",
    "timeout",
    "retries",
    "resume-retries",
    "trusted-host",
    "keyring-provider",
    "cache-dir",
    "no-cache-dir",
    "disable-pip-version-check",
    "no-input",
)
_ALIASES = {"default-timeout": "timeout"}
# besides PIP_<trust option>: pip-tools' own cache location
_KEEP_ENV = ("PIP_TOOLS_CACHE_DIR",)
# config sections pip reads for `pip install` (what pip-tools runs), lowest precedence first
_SECTIONS = ("global", "install", ":env:")


@dataclass(frozen=True)
class HostSettings:
    """The host pip configuration, split into what toolkit keeps and what it drops."""

    kept: tuple[tuple[str, str], ...] = ()  # (option, value), e.g. ("cert", "/etc/ssl/...")
    dropped: tuple[str, ...] = ()  # "section.option" entries ignored, e.g. "global.find-links"

    def describe(self) -> str:
        kept = ", ".join(f"{name}={value}" for name, value in self.kept) or "none"
        dropped = ", ".join(self.dropped) or "none"
        return f"host pip settings kept: {kept}; ignored (package sources and the rest): {dropped}"


def parse_pip_config(text: str) -> HostSettings:
    """Split the output of `pip config list` into kept trust settings and dropped ones."""
    found: dict[str, tuple[int, str]] = {}
    dropped: list[str] = []
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if not sep or "." not in key:
            continue
        section, _, name = key.strip().rpartition(".")
        name = _ALIASES.get(name, name)
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        if name not in _TRUST_OPTIONS or section not in _SECTIONS:
            dropped.append(key.strip())
            continue
        rank = _SECTIONS.index(section)
        if name not in found or rank >= found[name][0]:
            found[name] = (rank, str(value))
    kept = tuple(sorted((name, value) for name, (_, value) in found.items()))
    return HostSettings(kept, tuple(dropped))


@functools.cache
def host_settings() -> HostSettings:
    """This machine's pip trust settings, read once per process by pip itself (a quick child)."""
    text = proc.output([sys.executable, "-m", "toolkit.piptools", "--pip-config"])
    return parse_pip_config(text if text is not None else _env_config_list(os.environ))


def _pip_config_text() -> str:
    """`pip config list` in pip's precedence order (global, user, site, env file, variables).

    pip's own command sorts by file name, which loses which file overrides which.
    """
    try:
        from pip._internal.configuration import Configuration

        configuration = Configuration(isolated=False)
        configuration.load()
        return "\n".join(
            f"{key}={value!r}"
            for _, values in configuration.items()
            for key, value in values.items()
        )
    except Exception:  # an unreadable config file (pip stops on it too): the variables still count
        return _env_config_list(os.environ)


def _env_config_list(environ: Mapping[str, str]) -> str:
    # what `pip config list` shows for PIP_* variables alone (when the config files cannot be read)
    return "\n".join(
        f":env:.{name[4:].lower().replace('_', '-')}={value!r}"
        for name, value in environ.items()
        if name.startswith("PIP_")
    )


def pip_environment(
    settings: HostSettings | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for every pip and pip-tools process: host trust settings, no host sources."""
    settings = host_settings() if settings is None else settings
    env = {
        name: value
        for name, value in (os.environ if base is None else base).items()
        if not name.startswith("PIP_") or name in _KEEP_ENV
    }
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no global, user or site config file
    for name, value in settings.kept:
        env["PIP_" + ("DEFAULT_TIMEOUT" if name == "timeout" else _env_name(name))] = value
    return env


def _env_name(option: str) -> str:
    return option.upper().replace("-", "_")


# --- mirrors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mirror:
    """One per-machine replacement for a declared source."""

    source: str  # normalised declared URL
    target: str  # an index URL, or an absolute directory of wheels
    origin: str  # where it was set, for messages

    @property
    def is_directory(self) -> bool:
        return not _is_url(self.target)


@dataclass(frozen=True)
class Mirrors:
    """Declared source URL -> mirror, for this machine only (never written into a lockfile)."""

    entries: tuple[Mirror, ...] = ()

    def get(self, source: str) -> Mirror | None:
        key = normalise_url(source)
        return next((m for m in self.entries if m.source == key), None)


def normalise_url(url: str) -> str:
    """A source URL for comparison: lowercase scheme and host, no trailing slash."""
    parts = urlsplit(url.strip())
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, "")
    )


def parse_mirror_map(
    items: Mapping[str, object] | Sequence[tuple[str, object]], origin: str
) -> list[Mirror]:
    """Check `source -> mirror` pairs: a source is a URL, a mirror a URL or an absolute folder."""
    pairs = items.items() if isinstance(items, Mapping) else items
    mirrors = []
    for source, target in pairs:
        if not isinstance(target, str) or not target.strip():
            raise ConfigError(f"{origin}: mirror for {source!r} must be a URL or a folder path")
        if not _is_url(source):
            raise ConfigError(
                f"{origin}: {source!r} is not a URL",
                hint="map a source URL declared in toolkit.yaml, e.g. https://pypi.org/simple=...",
            )
        target = target.strip()
        if not _is_url(target):
            folder = Path(target).expanduser()
            if not folder.is_absolute():
                raise ConfigError(
                    f"{origin}: mirror folder {target!r} for {source} must be an absolute path"
                )
            if not folder.is_dir():
                raise ConfigError(f"{origin}: mirror folder {folder} for {source} does not exist")
            target = str(folder)
        mirrors.append(Mirror(normalise_url(source), target, origin))
    return mirrors


def parse_mirrors_env(value: str) -> list[Mirror]:
    """TOOLKIT_MIRRORS: whitespace-separated SOURCE=MIRROR pairs."""
    pairs = []
    for item in value.split():
        source, sep, target = item.partition("=")
        if not sep:
            raise ConfigError(
                f"{MIRRORS_ENV}: {item!r} is not SOURCE=MIRROR",
                hint=f"e.g. {MIRRORS_ENV}='https://download.pytorch.org/whl/cpu=/opt/wheels'",
            )
        pairs.append((source, target))
    return parse_mirror_map(pairs, MIRRORS_ENV)


def load_mirrors(root: Path, env: Mapping[str, str] | None = None) -> Mirrors:
    """This machine's mirrors: TOOLKIT_MIRRORS over .toolkit/mirrors.toml over the user's file."""
    env = os.environ if env is None else env
    config_home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    by_source: dict[str, Mirror] = {}
    for path in (config_home / "toolkit" / MIRRORS_FILE, root / ".toolkit" / MIRRORS_FILE):
        for mirror in _read_mirrors_file(path):
            by_source[mirror.source] = mirror
    for mirror in parse_mirrors_env(env.get(MIRRORS_ENV, "")):
        by_source[mirror.source] = mirror
    return Mirrors(tuple(by_source.values()))


def _read_mirrors_file(path: Path) -> list[Mirror]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    table = data.get("mirrors", data)  # a [mirrors] table or top-level keys
    if not isinstance(table, dict):
        raise ConfigError(f'{path}: expected `"SOURCE URL" = "MIRROR"` lines')
    return parse_mirror_map(table, str(path))


def _is_url(text: str) -> bool:
    return bool(re.match(r"^(https?|file)://", text.strip()))


# --- sources ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where pip looks for one declared source, after mirrors."""

    declared: str  # as in toolkit.yaml (PyPI when the target names no index url)
    key: str  # toolkit.yaml key path, e.g. targets.cpu.index.url
    kind: Literal["index", "links"]
    location: str  # URL or absolute folder pip is given
    mirror: Mirror | None = None


@dataclass(frozen=True)
class Sources:
    """A target's package sources as pip arguments."""

    items: tuple[Source, ...]

    def pip_args(self) -> list[str]:
        """--index-url/--extra-index-url/--find-links (or --no-index) for pip or pip-compile."""
        indexes = [s.location for s in self.items if s.kind == "index"]
        links = [s.location for s in self.items if s.kind == "links"]
        # pip gives --index-url and --extra-index-url equal standing, so the first is arbitrary
        args = ["--index-url", indexes[0]] if indexes else ["--no-index"]
        for url in indexes[1:]:
            args += ["--extra-index-url", url]
        for link in links:
            args += ["--find-links", link]
        return args

    def for_host(self, host: str) -> list[Source]:
        """The sources whose location or declaration is on `host`."""
        host = host.lower()
        return [
            s
            for s in self.items
            if urlsplit(s.location).hostname == host or urlsplit(s.declared).hostname == host
        ]


def target_sources(target: str, index: IndexConfig, root: Path, mirrors: Mirrors) -> Sources:
    """Where a target's packages come from: its declared index settings with mirrors applied."""
    declared: list[tuple[str, str, Literal["index", "links"]]] = [
        (index.url or PYPI, f"targets.{target}.index.url", "index")
    ]
    declared += [
        (url, f"targets.{target}.index.extra_urls[{i}]", "index")
        for i, url in enumerate(index.extra_urls)
    ]
    declared += [
        (link, f"targets.{target}.index.find_links[{i}]", "links")
        for i, link in enumerate(index.find_links)
    ]
    items = []
    for source, key, kind in declared:
        mirror = mirrors.get(source) if _is_url(source) else None
        if mirror is not None:
            location = mirror.target
            if mirror.is_directory:
                kind = "links"
        elif kind == "links" and not _is_url(source):
            location = str((root / source).resolve())
        else:
            location = source
        items.append(Source(source, key, kind, location, mirror))
    return Sources(tuple(items))


# --- pip-compile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompileResult:
    """How one pip-compile run ended, with every line it printed."""

    ok: bool
    returncode: int
    lines: tuple[str, ...]


def compile_args(
    requirements: str,
    output_file: Path,
    sources: Sources,
    *,
    cache_dir: Path,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
) -> list[str]:
    """pip-compile arguments for a hash-pinned, portable lockfile (no header, no sources in it)."""
    args = [
        "--verbose",  # progress lines to follow and a useful log
        "--no-config",  # no [tool.pip-tools] from the project's pyproject.toml
        "--no-header",  # toolkit writes its own header
        "--generate-hashes",
        "--allow-unsafe",
        "--strip-extras",
        "--no-emit-index-url",
        "--no-emit-find-links",
        "--no-emit-trusted-host",
        "--no-emit-options",
        "--cache-dir",
        str(cache_dir),
        *sources.pip_args(),
        "--output-file",
        str(output_file),
    ]
    if upgrade:
        args.append("--upgrade")
    for package in upgrade_packages:
        args += ["--upgrade-package", package]
    return [*args, requirements]


def pip_compile(
    args: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    on_line: Callable[[str], None] | None = None,
) -> CompileResult:
    """Run pip-compile through this module's launcher (which applies pip_environment() itself)."""
    launcher = [sys.executable, "-m", "toolkit.piptools", *args]
    return _run(launcher, cwd, log, os.environ, on_line)


def _run(
    argv: Sequence[str],
    cwd: Path,
    log: Path,
    env: Mapping[str, str],
    on_line: Callable[[str], None] | None = None,
) -> CompileResult:
    lines: list[str] = []

    def collect(line: str) -> None:
        lines.append(line)
        if network_failure(line, final_only=True):
            # pip would skip the source after its retries and resolve from the others: a CPU
            # target whose torch index is down would silently get PyPI's CUDA torch
            raise _SourceFailed(line)
        if on_line:
            on_line(line)

    try:
        result = proc.run(argv, log=log, env=env, cwd=cwd, on_line=collect, die_with_parent=True)
    except _SourceFailed:
        with log.open("a", encoding="utf-8") as handle:
            handle.write("# toolkit: stopped pip: a package source failed (line above)\n")
        return CompileResult(False, -1, tuple(lines))
    return CompileResult(result.ok, result.returncode, tuple(lines))


class _SourceFailed(Exception):
    """pip reported a source it cannot reach; stop rather than resolve without it."""


def download_wheels(
    config: Config, target: TargetConfig, lockfile: Path, dest: Path, log: Path
) -> None:
    """Download every wheel a lockfile pins into `dest`, checked against its hashes (host side)."""
    sources = target_sources(target.name, target.index, config.root, load_mirrors(config.root))
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
        "--progress-bar=off",
        "--dest",
        str(dest),
        "--requirement",
        str(lockfile),
        *sources.pip_args(),
    ]
    if f"{sys.version_info.major}.{sys.version_info.minor}" != config.python:
        argv += ["--python-version", config.python]
    dest.mkdir(parents=True, exist_ok=True)
    result = _run(argv, config.root, log, pip_environment())
    if not result.ok:
        failure = explain(result.lines, target.name)
        message, hint = failure.message, failure.hint or unreachable_hint(failure, sources)
        if failure.kind == "not-found" and failure.requirement:
            # The lock found this pin, so what is missing is a wheel (the build takes nothing else).
            message, hint = _no_wheel(
                failure.requirement, failure.versions, target.name, config.python
            )
        raise BuildError(
            f"downloading the wheels of {lockfile.name} failed: {message}", hint=hint, log=log
        )


def _no_wheel(requirement: str, versions: str | None, target: str, python: str) -> tuple[str, str]:
    message = (
        f"no wheel of {requirement} for Python {python} on this platform (builds install wheels "
        "only): the target's sources have only a source distribution of it, or nothing for "
        "this platform"
    )
    with_wheels = f" (versions with a wheel: {versions})" if versions else ""
    hint = (
        f"pin a version that has wheels in requirements.in{with_wheels}, or build a wheel with "
        f"Python {python} (`pip wheel --no-deps -w wheels {requirement}`) and add that folder to "
        f"targets.{target}.index.find_links; then `toolkit lock --target {target}`"
    )
    return message, hint


def unreachable_hint(failure: Failure, sources: Sources) -> str | None:
    """For an unreachable host: which declared source it is and how to map it to a mirror."""
    if failure.kind != "unreachable":
        return None
    matched = sources.for_host(failure.host) if failure.host else []
    source = matched[0] if matched else None
    if source is not None and source.mirror is not None:
        return (
            f"{source.location} is the mirror for {source.declared} (set in "
            f"{source.mirror.origin}): check it, or change the mirror"
        )
    if source is None:
        return (
            "check the network, proxy and certificate settings; a source reached only through "
            f"a mirror can be mapped to it: {MIRRORS_ENV}='SOURCE_URL=MIRROR'"
        )
    return (
        f"if this machine reaches {source.declared} ({source.key} in toolkit.yaml) only through "
        f"a mirror, map it: {MIRRORS_ENV}='{source.declared}=/path/to/wheels' (a folder of "
        f"wheels or an index URL), or the same in .toolkit/{MIRRORS_FILE}; otherwise check the "
        "network, proxy and certificate settings"
    )


# --- reading pip's failures -------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """What went wrong in pip-compile, in a line or two."""

    kind: Literal["unreachable", "invalid", "conflict", "not-found", "hash", "other"]
    message: str
    hint: str | None = None
    host: str | None = None  # for "unreachable"
    requirement: str | None = None  # for "not-found": what pip could not satisfy, e.g. x==1.0
    versions: str | None = None  # for "not-found": the versions pip did find, comma-separated


# (text in pip's output, reason, whether retrying can help)
_NETWORK = (
    ("NameResolutionError", "host name not resolved", False),
    ("Name or service not known", "host name not resolved", False),
    ("Temporary failure in name resolution", "host name not resolved", False),
    ("Connection refused", "connection refused", False),
    ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted", False),
    ("SSLError", "TLS error", False),
    ("ProxyError", "proxy error", False),
    ("Tunnel connection failed", "proxy error", False),
    ("Network is unreachable", "network unreachable", False),
    ("No route to host", "no route to host", False),
    ("ConnectTimeoutError", "connection timed out", True),
    ("Read timed out", "read timed out", True),
    ("Connection reset", "connection reset", True),
    ("Failed to establish a new connection", "connection failed", True),
    ("RemoteDisconnected", "connection closed by the server", True),
)


def network_failure(line: str, *, final_only: bool = False) -> str | None:
    """The reason when a pip output line reports a package source it cannot reach.

    With `final_only`, transient errors count only once pip has no retries left.
    """
    if "Retrying" not in line and "connection" not in line.lower() and "Error" not in line:
        return None
    for needle, reason, transient in _NETWORK:
        if needle in line:
            if final_only and transient and "Retry(total=0" not in line:
                return None
            return reason
    return None


def explain(lines: Sequence[str], target: str = "<target>") -> Failure:
    """Turn pip-compile's output (tracebacks included) into a short explanation (`target`: the
    one being locked or built, for the commands a hint gives)."""
    unreachable = _unreachable(lines)
    if unreachable:
        return unreachable
    for i, line in enumerate(lines):
        if "DO NOT MATCH THE HASHES" in line:
            pins = [
                m.group(1)
                for m in (re.match(r"^\s+(\S+==\S+) from ", x) for x in lines[i + 1 :])
                if m
            ]
            named = list(dict.fromkeys(pins))
            # `toolkit lock` keeps a lockfile's hashes (pip-tools reuses them): only
            # --upgrade-package recomputes a package's, here at the version it has
            relock = (
                " ".join(f"--upgrade-package {pin}" for pin in named)
                or "--upgrade-package NAME==VERSION"
            )
            return Failure(
                "hash",
                "downloaded files do not match the hashes in the lockfile: "
                + (", ".join(named) or "see the log"),
                hint="the lockfile (edited by hand?) or a file on the index or mirror changed "
                "since the lock: find out which before trusting it; to record the index's "
                f"hashes for a change you expect: `toolkit lock --target {target} {relock}`",
            )
    for i, line in enumerate(lines):
        match = re.search(r"Invalid requirement: (.*)", line)
        if match:
            where = next(
                (m for m in (re.search(r"\(from line (\d+) of (.+)\)", x) for x in lines[i:]) if m),
                None,
            )
            text = re.sub(r"\s*\(from line \d+ of .+\)$", "", match.group(1))
            prefix = f"{where.group(2)} line {where.group(1)}: " if where else ""
            return Failure("invalid", f"{prefix}invalid requirement {text}")
    for i, line in enumerate(lines):
        match = re.search(r"ERROR: Cannot install (.+?) because these package versions", line)
        if match:
            causes: list[str] = []
            for later in lines[i + 1 :]:
                if "The conflict is caused by" in later:
                    continue
                if not later.strip() or later.strip().startswith(("To fix", "Additionally")):
                    if causes:
                        break
                    continue
                if later.startswith("    ") and not later.strip().startswith("File "):
                    causes.append(later.strip())
                elif causes:
                    break
            detail = "; ".join(causes) if causes else f"cannot install {match.group(1)}"
            return Failure(
                "conflict",
                f"conflicting requirements: {detail}",
                hint="loosen or change the pins in requirements.in",
            )
    for line in lines:
        match = re.search(
            r"Could not find a version that satisfies the requirement (\S+)(.*)", line
        )
        if match:
            versions = re.search(r"\(from versions: (.*)\)", match.group(2))
            found = versions.group(1) if versions else "none"
            return Failure(
                "not-found",
                f"no matching distribution for {match.group(1)} (versions found: {found})",
                hint="check the name and version in requirements.in, and that the target's "
                "index (or mirror) carries it for this Python and platform",
                requirement=match.group(1),
                versions=None if found == "none" else found,
            )
    for line in lines:
        match = re.search(r"No matching distribution found for (\S+)", line)
        if match:
            return Failure("not-found", f"no matching distribution for {match.group(1)}")
    if any("ResolutionImpossible" in line for line in lines):
        return Failure("conflict", "conflicting requirements (pip: ResolutionImpossible)")
    errors = [
        line.strip()
        for line in lines
        if line.strip().startswith(("ERROR:", "Error:"))
        or re.match(r"^[\w.]+(Error|Exception): ", line)
    ]
    last = (errors or [x.strip() for x in lines if x.strip()] or ["no output"])[-1]
    return Failure("other", re.sub(r"^(ERROR|Error): ", "", last)[:300])


def _unreachable(lines: Sequence[str]) -> Failure | None:
    for line in lines:
        reason = network_failure(line)
        if reason is None:
            continue
        host = re.search(r"host='([^']+)'", line) or re.search(r"https?://([^/:\s'\"]+)", line)
        name = host.group(1) if host else None
        where = name or "the package index"
        return Failure("unreachable", f"cannot reach {where}: {reason}", host=name)
    return None


# --- the launcher: `python -m toolkit.piptools` is pip-compile with index-provided hashes -----


def _patch_hashing() -> None:
    """Use the sha256 an index puts in its links instead of downloading the file to hash it."""
    try:
        from piptools.repositories.pypi import PyPIRepository
    except ImportError:  # pip-tools moved it: keep its own (slow but correct) hashing
        return
    original = getattr(PyPIRepository, "_get_file_hash", None)
    if original is None:
        return

    def get_file_hash(self: object, link: object) -> str:
        if getattr(link, "hash_name", None) == "sha256" and getattr(link, "hash", None):
            return f"sha256:{link.hash}"  # type: ignore[attr-defined]
        return original(self, link)  # type: ignore[no-any-return]

    PyPIRepository._get_file_hash = get_file_hash  # type: ignore[method-assign]


def _fast_deps_supported() -> bool:
    """Whether this pip reads wheel metadata by HTTP range requests (--use-feature=fast-deps)."""
    try:
        from pip._internal.cli import cmdoptions
    except ImportError:
        return False
    option = cmdoptions.use_new_feature()
    return "fast-deps" in (option.choices or ())


def _isolate_in_process() -> HostSettings:
    """Apply pip_environment() to this process (the launcher imports pip anyway: no extra child)."""
    settings = parse_pip_config(_pip_config_text())
    isolated = pip_environment(settings, os.environ)
    os.environ.clear()
    os.environ.update(isolated)
    return settings


def _launch(argv: list[str]) -> None:
    settings = _isolate_in_process()
    print(f"toolkit: {settings.describe()}", flush=True)
    _patch_hashing()
    if _fast_deps_supported() and "--pip-args" not in argv:
        # indexes without PEP 658 metadata: read METADATA by range request, not the whole wheel
        argv = ["--pip-args", "--use-feature=fast-deps", *argv]
    from piptools.scripts.compile import cli

    cli.main(args=argv, prog_name="pip-compile")


if __name__ == "__main__":
    if sys.argv[1:] == ["--pip-config"]:
        print(_pip_config_text())
    else:
        _launch(sys.argv[1:])
