"""toolkit.yaml: load, validate, and freeze the project file.

Every default lives in the dataclasses below; `toolkit config` prints the resolved file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from toolkit.errors import ConfigError
from toolkit.paths import STATE_DIR

CONFIG_FILE = "toolkit.yaml"
MAX_SEED = 2**32 - 1  # PYTHONHASHSEED takes no more
DEBIAN_BASE = "debian"  # a target's `base` that means "bootstrapped by `toolkit base`"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")

T = TypeVar("T")


@dataclass(frozen=True)
class IndexConfig:
    """Where a target's packages come from (only torch-family wheels should differ per target)."""

    url: str | None = None  # replaces PyPI, e.g. https://download.pytorch.org/whl/cpu
    extra_urls: tuple[str, ...] = ()  # searched beside `url` (or PyPI)
    find_links: tuple[str, ...] = ()  # local directories or pages of wheels


@dataclass(frozen=True)
class TargetConfig:
    """One image flavour: cpu, gpu, or any name the project picks."""

    name: str
    lockfile: Path  # absolute; default lockfiles/<name>.txt
    base: str = DEBIAN_BASE  # "debian" or a registry reference pinned by digest
    index: IndexConfig = field(default_factory=IndexConfig)
    gpus: str | None = None  # "all", a count, or device ids; None = no GPU

    @property
    def base_is_pinned(self) -> bool:
        return self.base == DEBIAN_BASE or bool(_DIGEST_RE.search(self.base))


@dataclass(frozen=True)
class BaseConfig:
    """How `toolkit base` bootstraps a base image from Debian packages."""

    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    snapshot: str | None = None  # e.g. 20261101T000000Z: use snapshot.debian.org at that time
    packages: tuple[str, ...] = ("python3", "python3-venv")

    @property
    def effective_mirror(self) -> str:
        if self.snapshot:
            return f"https://snapshot.debian.org/archive/debian/{self.snapshot}/"
        return self.mirror


@dataclass(frozen=True)
class MetricsConfig:
    """Where metrics come from; one of them is the primary metric."""

    file: str | None = None  # JSON or JSON-lines file the experiment writes, relative to workdir
    primary: str | None = None
    patterns: tuple[tuple[str, str], ...] = ()  # (metric, regex with one group) read from stdout


@dataclass(frozen=True)
class ExperimentConfig:
    """What `toolkit run` runs."""

    command: str
    workdir: str = "."  # relative to the project root
    data: tuple[str, ...] = ()  # fingerprinted apart from code
    outputs: tuple[str, ...] = ()  # hashed and compared by diff
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # False: the run's container has no network (`--network none`), so nothing it reads comes
    # from outside what the record fingerprints
    network: bool = True

    def declared_outputs(self) -> list[str]:
        """What the experiment writes, relative to its workdir: outputs and the metrics file."""
        found = list(self.outputs)
        if self.metrics.file and self.metrics.file not in found:
            found.append(self.metrics.file)
        return found

    def not_code(self) -> tuple[str, ...]:
        """Data and outputs, relative to the project root: fingerprinted apart from the code.

        A path that holds the workdir itself (`data: [.]`) is left out: it holds code too.
        """
        workdir = os.path.normpath(self.workdir)
        found = []
        for rel in (*self.data, *self.declared_outputs()):
            path = os.path.normpath(os.path.join(self.workdir, rel))
            if path != "." and path != workdir and not workdir.startswith(path + os.sep):
                found.append(path)
        return tuple(found)

    def not_data(self) -> tuple[str, ...]:
        """What a data path may hold that is no data, relative to the workdir: the declared
        outputs and metrics file (what the run writes), toolkit's own runs/ and .toolkit/, and
        git's .git/ (`data: [.]` at the project's root)."""
        from toolkit.paths import RUNS_DIR, STATE_DIR

        own = (os.path.relpath(name, self.workdir) for name in (RUNS_DIR, STATE_DIR, ".git"))
        return (
            *(os.path.normpath(rel) for rel in self.declared_outputs()),
            *(rel for rel in own if not rel.startswith("..")),
        )


@dataclass(frozen=True)
class DeterminismConfig:
    """The policy `toolkit run` applies inside the experiment's processes."""

    seed: int = 0
    threads: int = 4
    dataloader_workers: int = 0
    strict: bool = True  # torch.use_deterministic_algorithms(True) raises instead of warning
    cpu: Literal["fixed", "portable"] = "fixed"


@dataclass(frozen=True)
class CompareConfig:
    """Tolerances for diff and repro-check (defaults: torch.testing's per dtype)."""

    rtol: float | None = None  # replaces every default rtol
    atol: float | None = None
    tolerances: tuple[tuple[str, float, float], ...] = ()  # (glob on metric/tensor, rtol, atol)


@dataclass(frozen=True)
class Config:
    """A validated toolkit.yaml."""

    path: Path
    name: str
    python: str = "3.11"
    requirements: Path = Path("requirements.in")
    base: BaseConfig = field(default_factory=BaseConfig)
    targets: Mapping[str, TargetConfig] = field(default_factory=dict)
    experiment: ExperimentConfig | None = None
    determinism: DeterminismConfig = field(default_factory=DeterminismConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    @property
    def root(self) -> Path:
        return self.path.parent

    def not_code(self) -> tuple[str, ...]:
        """What is fingerprinted apart from the code, relative to the root: the experiment's
        data and outputs, and this file, the requirements and the lockfiles, which a record
        keeps as command, policy and environment (an edit to them is not a code change)."""
        own = (self.path, self.requirements, *(t.lockfile for t in self.targets.values()))
        return (
            *(self.experiment.not_code() if self.experiment else ()),
            *(os.path.relpath(path, self.root) for path in own),
        )

    def default_target(self) -> TargetConfig:
        """The first target in toolkit.yaml: what commands act on when none is named."""
        if not self.targets:
            raise ConfigError(
                f"{self.path}: no targets", hint="add e.g. `targets: {cpu: {}}` to toolkit.yaml"
            )
        return next(iter(self.targets.values()))

    def target(self, name: str | None) -> TargetConfig:
        """The named target (the first when None), or a ConfigError listing the ones that exist."""
        if name is None:
            return self.default_target()
        if name not in self.targets:
            known = ", ".join(self.targets) or "none"
            close = close_match(name, list(self.targets))  # the targets are in the message
            raise ConfigError(
                f"{self.path}: unknown target {name!r} (targets: {known})",
                hint=f"did you mean {close!r}?" if close else None,
            )
        return self.targets[name]


def resolved(cfg: Config) -> dict[str, Any]:
    """The config as a toolkit.yaml document with every default written out."""
    import dataclasses

    def rel(path: Path) -> str:
        return str(path.relative_to(cfg.root)) if path.is_relative_to(cfg.root) else str(path)

    targets = {}
    for target in cfg.targets.values():
        body = dataclasses.asdict(target)
        del body["name"]
        body["lockfile"] = rel(target.lockfile)
        body["index"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in body["index"].items()
        }
        targets[target.name] = body
    doc: dict[str, Any] = {
        "name": cfg.name,
        "python": cfg.python,
        "requirements": rel(cfg.requirements),
        "base": {**dataclasses.asdict(cfg.base), "packages": list(cfg.base.packages)},
        "targets": targets,
    }
    if cfg.experiment is not None:
        exp = cfg.experiment
        doc["experiment"] = {
            "command": exp.command,
            "workdir": exp.workdir,
            "data": list(exp.data),
            "outputs": list(exp.outputs),
            "metrics": {
                "file": exp.metrics.file,
                "primary": exp.metrics.primary,
                "patterns": dict(exp.metrics.patterns),
            },
            "network": exp.network,
        }
    doc["determinism"] = dataclasses.asdict(cfg.determinism)
    doc["compare"] = {
        "rtol": cfg.compare.rtol,
        "atol": cfg.compare.atol,
        "tolerances": {p: {"rtol": r, "atol": a} for p, r, a in cfg.compare.tolerances},
    }
    return doc


def locate_config(start: Path | None = None) -> Path | None:
    """The nearest toolkit.yaml at or above `start` (default: the current directory), or None."""
    here = (start or Path.cwd()).resolve()
    return next(
        (f / CONFIG_FILE for f in (here, *here.parents) if (f / CONFIG_FILE).is_file()), None
    )


def find_config(start: Path | None = None) -> Path:
    """The nearest toolkit.yaml at or above `start`, or a ConfigError saying what to do."""
    found = locate_config(start)
    if found is not None:
        return found
    here = (start or Path.cwd()).resolve()
    raise ConfigError(
        f"no {CONFIG_FILE} in {here} or any folder above it",
        hint="run toolkit from your project, or pass --config PATH",
    )


def load_config(path: Path | None = None) -> Config:
    """Read and validate toolkit.yaml (found upwards from the current directory if not given)."""
    path = (path or find_config()).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(text, path)


def _document(text: str, path: Path) -> Any:
    """The YAML document, kept as JSON beside the project's other state for the next start.

    Importing and running the YAML parser takes about 10 ms of every command, a sixth of what
    `toolkit run` adds to `docker run`; the cache is keyed by the text's hash, so never stale.
    """
    key = hashlib.sha256(text.encode()).hexdigest()
    cache = path.parent / STATE_DIR / "config.json"
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if isinstance(cached, dict) and cached.get("sha256") == key:
            return cached["document"]
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    if cache.parent.is_dir():  # only in a project toolkit has already used
        with contextlib.suppress(OSError, TypeError, ValueError):
            entry = {"sha256": key, "document": document}
            if json.loads(json.dumps(entry))["document"] != document:
                return document  # not plain JSON (dates, numeric keys): parsed every time
            partial = cache.with_name(f"config.json.{os.getpid()}.partial")
            partial.write_text(json.dumps(entry), encoding="utf-8")
            partial.replace(cache)
    return document


def parse_config(text: str, path: Path) -> Config:
    """Validate the text of a toolkit.yaml; `path` names it in errors and anchors relative paths."""
    top = _Section(_document(text, path), "", path)
    root = path.parent
    name = top.take("name", _name)
    requirements = root / top.take("requirements", _str, "requirements.in")
    config = Config(
        path=path,
        name=name,
        python=top.take("python", _python_version, "3.11"),
        requirements=requirements,
        base=top.section("base", _base, BaseConfig()),
        targets=top.section("targets", lambda s: _targets(s, root), {}),
        experiment=top.section("experiment", _experiment, None),
        determinism=top.section("determinism", _determinism, DeterminismConfig()),
        compare=top.section("compare", _compare, CompareConfig()),
    )
    top.done()
    return config


# --- sections ---------------------------------------------------------------------------------


def _base(s: _Section) -> BaseConfig:
    d = BaseConfig()
    return s.done_with(
        BaseConfig(
            suite=s.take("suite", _str, d.suite),
            mirror=s.take("mirror", _url, d.mirror),
            snapshot=s.take("snapshot", _snapshot, None),
            packages=s.take("packages", _str_list, d.packages),
        )
    )


def _targets(s: _Section, root: Path) -> dict[str, TargetConfig]:
    targets = {}
    for name in s.key_names():
        try:
            _name(name)
        except _Expected as exc:
            raise s.error("", f"target names to be {exc.expected}", name) from None
        targets[name] = _target(s.child(name), name, root)
    if not targets:
        raise s.error("", "at least one target (e.g. cpu: {})")
    return targets


def _target(s: _Section, name: str, root: Path) -> TargetConfig:
    return s.done_with(
        TargetConfig(
            name=name,
            base=s.take("base", _str, DEBIAN_BASE),
            lockfile=root / s.take("lockfile", _str, f"lockfiles/{name}.txt"),
            index=s.section("index", _index, IndexConfig()),
            gpus=s.take("gpus", _gpus, None),
        )
    )


def _index(s: _Section) -> IndexConfig:
    return s.done_with(
        IndexConfig(
            url=s.take("url", _url, None),
            extra_urls=s.take("extra_urls", _url_list, ()),
            find_links=s.take("find_links", _str_list, ()),
        )
    )


def _experiment(s: _Section) -> ExperimentConfig:
    return s.done_with(
        ExperimentConfig(
            command=s.take("command", _str),
            workdir=s.take("workdir", _relative_path, "."),
            data=s.take("data", _path_list, ()),
            outputs=s.take("outputs", _path_list, ()),
            metrics=s.section("metrics", _metrics, MetricsConfig()),
            network=s.take("network", _bool, True),
        )
    )


def _metrics(s: _Section) -> MetricsConfig:
    return s.done_with(
        MetricsConfig(
            file=s.take("file", _relative_path, None),
            primary=s.take("primary", _str, None),
            patterns=_patterns(s),
        )
    )


def _determinism(s: _Section) -> DeterminismConfig:
    d = DeterminismConfig()
    return s.done_with(
        DeterminismConfig(
            seed=s.take("seed", _int_range(0, MAX_SEED), d.seed),
            threads=s.take("threads", _int_range(1, 1024), d.threads),
            dataloader_workers=s.take("dataloader_workers", _int_range(0, 256), 0),
            strict=s.take("strict", _bool, d.strict),
            cpu=s.take("cpu", _choice("fixed", "portable"), d.cpu),
        )
    )


def _compare(s: _Section) -> CompareConfig:
    rules = []
    tolerances = s.child("tolerances")
    for pattern in tolerances.key_names():
        rule = tolerances.child(pattern)
        rules.append((pattern, rule.take("rtol", _tolerance), rule.take("atol", _tolerance)))
        rule.done()
    tolerances.done()
    return s.done_with(
        CompareConfig(
            rtol=s.take("rtol", _tolerance, None),
            atol=s.take("atol", _tolerance, None),
            tolerances=tuple(rules),
        )
    )


# --- the reader: tracks the key path, refuses unknown keys ------------------------------------

_MISSING: Any = object()


class _Section:
    def __init__(self, data: object, prefix: str, file: Path) -> None:
        self.file = file
        self.prefix = prefix
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error("", "a mapping of keys to values", data)
        self.data: dict[Any, Any] = data
        self.used: set[Any] = set()

    def key_path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, expected: str, value: object = _MISSING) -> ConfigError:
        where = self.key_path(key) if key else (self.prefix or "top level")
        got = "" if value is _MISSING else f", got {_show(value)}"
        return ConfigError(f"{self.file}: {where}: expected {expected}{got}")

    def key_names(self) -> list[str]:
        for key in self.data:
            if not isinstance(key, str):
                raise self.error("", "string keys", key)
        return list(self.data)

    def take(self, key: str, check: Callable[[object, str], T], default: T = _MISSING) -> T:
        self.used.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise ConfigError(f"{self.file}: {self.key_path(key)}: required key is missing")
            return default
        try:
            return check(self.data[key], "")
        except _Expected as exc:
            raise self.error(key, exc.expected, self.data[key]) from None

    def child(self, key: str) -> _Section:
        self.used.add(key)
        return _Section(self.data.get(key), self.key_path(key), self.file)

    def section(self, key: str, parse: Callable[[_Section], T], default: T) -> T:
        if key not in self.data:
            self.used.add(key)
            return default
        return parse(self.child(key))

    def done_with(self, value: T) -> T:
        self.done()
        return value

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                hint = _did_you_mean(str(key), [str(k) for k in self.used])
                raise ConfigError(f"{self.file}: {self.key_path(str(key))}: unknown key", hint=hint)


class _Expected(Exception):
    def __init__(self, expected: str) -> None:
        self.expected = expected


def _did_you_mean(word: str, choices: list[str]) -> str | None:
    close = close_match(word, choices)
    if close:
        return f"did you mean {close!r}?"
    return f"known keys: {', '.join(sorted(choices))}" if choices else None


def close_match(word: str, choices: list[str]) -> str | None:
    """The choice `word` most likely misspells, for a did-you-mean; None if none is close."""
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- value checks: each takes the raw value, returns the typed one or raises _Expected --------


def _str(value: object, _: str = "") -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Expected("a non-empty string")
    return value


def _name(value: object, _: str = "") -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise _Expected("a lowercase name of letters, digits, '.', '_' or '-' (an image name)")
    return value


def _python_version(value: object, _: str = "") -> str:
    if isinstance(value, float):  # YAML reads 3.11 unquoted as a float; 3.10 would become 3.1
        raise _Expected('a quoted version like "3.11"')
    if not isinstance(value, str) or not re.fullmatch(r"3\.\d{1,2}", value):
        raise _Expected('a Python version like "3.11"')
    return value


def _url(value: object, _: str = "") -> str:
    if not isinstance(value, str) or not re.match(r"^(https?|file)://\S+$", value):
        raise _Expected("a URL (http://, https:// or file://)")
    return value


def _snapshot(value: object, _: str = "") -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{8}T\d{6}Z", value):
        raise _Expected("a snapshot.debian.org timestamp like 20261101T000000Z (quoted)")
    return value


def _relative_path(value: object, _: str = "") -> str:
    text = _str(value)
    if Path(text).is_absolute() or ".." in Path(text).parts:
        raise _Expected("a path inside the project (relative, no '..')")
    return text


def _list_of(check: Callable[[object], str], what: str) -> Callable[[object, str], tuple[str, ...]]:
    def parse(value: object, _: str = "") -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise _Expected(f"a list of {what}")
        try:
            return tuple(check(item) for item in value)
        except _Expected:
            raise _Expected(f"a list of {what}") from None

    return parse


_str_list = _list_of(_str, "non-empty strings")
_url_list = _list_of(_url, "URLs")
_path_list = _list_of(_relative_path, "paths inside the project")


def _int_range(low: int, high: int) -> Callable[[object, str], int]:
    def parse(value: object, _: str = "") -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Expected(f"an integer from {low} to {high}")
        return value

    return parse


def _tolerance(value: object, _: str = "") -> float:
    if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Expected("a number >= 0, e.g. 1.0e-5")
    if not (value >= 0 and value != float("inf")):
        raise _Expected("a number >= 0, e.g. 1.0e-5")
    return float(value)


def _bool(value: object, _: str = "") -> bool:
    if not isinstance(value, bool):
        raise _Expected("true or false")
    return value


def _choice(*options: str) -> Callable[[object, str], Any]:
    def parse(value: object, _: str = "") -> str:
        if value not in options:
            raise _Expected(" or ".join(repr(o) for o in options))
        return str(value)

    return parse


def _gpus(value: object, _: str = "") -> str:
    if isinstance(value, bool):
        raise _Expected('"all", a GPU count, or device ids like "0,1"')
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"all|\d+(,\d+)*", value):
        return value
    raise _Expected('"all", a GPU count, or device ids like "0,1"')


# what a pattern's errors suggest: it reads what Python prints, 1e-05, nan and -inf included
EXAMPLE_PATTERN = r"loss: 'loss=([^\s,;]+)'"


def _patterns(s: _Section) -> tuple[tuple[str, str], ...]:
    """experiment.metrics.patterns: (metric, regex), each regex capturing the number once."""
    found: dict[str, object] = s.take("patterns", _pattern_map, {})
    return tuple((metric, _pattern(s, metric, pattern)) for metric, pattern in found.items())


def _pattern_map(value: object, _: str = "") -> dict[str, object]:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise _Expected(f"a mapping of metric name to regex, e.g. {EXAMPLE_PATTERN}")
    return value


def _pattern(s: _Section, metric: str, pattern: object) -> str:
    """One metric's regex, or a ConfigError that says what to write instead."""
    where = f"{s.file}: {s.key_path(f'patterns.{metric}')}"
    expected = "expected a regex with one capturing group (the number)"
    if not isinstance(pattern, str):
        raise ConfigError(
            f"{where}: {expected}, got {_show(pattern)}", hint=f"e.g. {EXAMPLE_PATTERN}"
        )
    try:
        groups = re.compile(pattern).groups
    except (re.error, OverflowError, RecursionError) as exc:  # a{9999999999}, 1000 (((
        raise ConfigError(
            f"{where}: {expected}, got {_quoted(pattern)}, which is not a regex: {exc}",
            hint=f"write it in Python's regex syntax, e.g. {EXAMPLE_PATTERN}",
        ) from None
    if groups == 0:
        raise ConfigError(
            f"{where}: {expected}, got {_quoted(pattern)}, which has none",
            hint=f"put the number in parentheses, e.g. {EXAMPLE_PATTERN}",
        )
    if groups > 1:  # the first group would be read, and is seldom the number
        raise ConfigError(
            f"{where}: {expected}, got {_quoted(pattern)}, which has {groups}",
            hint="a pattern reads one metric: give each metric its own, e.g. "
            f"{EXAMPLE_PATTERN}, and write any other group as (?:...), which captures nothing",
        )
    return pattern


def _quoted(pattern: str) -> str:
    """A regex as toolkit.yaml would hold it in single quotes: backslashes as written."""
    return "'" + pattern.replace("'", "''") + "'"
