"""`toolkit init`: the files a project needs to start, rendered as text and written with care.

Rendering is pure; `write_scaffold` writes, and never replaces a user's file unless forced:
toolkit.yaml is created (overwritten with force), requirements.in is created (replaced only with
force and requirements given: it is the user's dependency list), the Makefile gains a marked
block (rewritten with force), .gitignore gains the lines it lacks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from toolkit.config import CONFIG_FILE, parse_config
from toolkit.errors import ConfigError, UserError

REQUIREMENTS_FILE = "requirements.in"
REQUIREMENTS_TXT = "requirements.txt"  # a project's existing list, included when nothing is given
MAKEFILE = "Makefile"
GITIGNORE = ".gitignore"
MAKE_BEGIN = "# --- toolkit ---"
MAKE_END = "# --- end toolkit ---"
GITIGNORE_ENTRIES = ("runs/", ".toolkit/")
DEFAULT_NAME = "experiment"
DEFAULT_OUTPUTS = ("outputs/",)
DEFAULT_METRICS_FILE = "metrics.jsonl"
DEFAULT_PRIMARY = "loss"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI_INDEX = "https://pypi.org/simple"

Action = Literal["created", "overwritten", "appended", "skipped"]

_NAME_BAD = re.compile(r"[^a-z0-9._-]+")
_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./ =+-]*")
_MAKE_RULE = re.compile(r"^([^\s#=:][^#=:]*?)\s*::?(?!=)")
_SPECIAL_TARGET = re.compile(r"^\.[A-Z_]+$")  # .PHONY, .DEFAULT_GOAL, ...


@dataclass(frozen=True)
class InitOptions:
    """What `toolkit init` was told; None means "use the default"."""

    command: str | None  # experiment.command; required only when toolkit.yaml is written
    name: str | None = None  # default: the folder's name, normalised to an image name
    python: str = "3.11"
    gpu: bool = False
    data: tuple[str, ...] | None = None  # default: data/ when the folder exists
    outputs: tuple[str, ...] | None = None  # default: outputs/
    metrics_file: str | None = DEFAULT_METRICS_FILE
    primary: str | None = DEFAULT_PRIMARY
    requirements: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileResult:
    """What happened to one file."""

    path: Path
    action: Action
    detail: str = ""


@dataclass(frozen=True)
class ScaffoldResult:
    """Every file `write_scaffold` looked at, in the order it looked."""

    files: tuple[FileResult, ...]

    @property
    def written(self) -> tuple[Path, ...]:
        return tuple(f.path for f in self.files if f.action != "skipped")

    @property
    def skipped(self) -> tuple[Path, ...]:
        return tuple(f.path for f in self.files if f.action == "skipped")


# --- rendering ---------------------------------------------------------------------------------


def project_name(folder: str) -> str:
    """A folder's name as a valid project (image) name: lowercase letters, digits, . _ -."""
    ascii_only = unicodedata.normalize("NFKD", folder).encode("ascii", "ignore").decode()
    name = _NAME_BAD.sub("-", ascii_only.strip().lower())
    name = re.sub(r"-{2,}", "-", name)
    name = re.sub(r"^[^a-z0-9]+", "", name)[:63].rstrip("-._")
    return name or DEFAULT_NAME


def default_data(root: Path) -> tuple[str, ...]:
    """data/ when the project has such a folder, else nothing."""
    return ("data/",) if (root / "data").is_dir() else ()


def render_config(
    options: InitOptions, name: str, data: tuple[str, ...], outputs: tuple[str, ...]
) -> str:
    """The text of toolkit.yaml."""
    if not options.command or not options.command.strip():
        raise ConfigError(
            "no experiment command: toolkit.yaml needs the command that runs the experiment",
            hint='pass it with --command, e.g. toolkit init --command "python train.py"',
        )
    lines = [
        "# The experiment, where it runs (targets) and how deterministically (written by",
        "# `toolkit init`). `toolkit lock` pins requirements.in per target, `toolkit build` makes",
        "# each target's image, `toolkit run` runs experiment.command in it.",
        f"name: {_scalar(name)}",
        f'python: "{options.python}"',
        f"requirements: {REQUIREMENTS_FILE}",
        "targets:",
        "  cpu:",
        "    base: debian                # bootstrapped by `toolkit base`, no registry needed",
        "    lockfile: lockfiles/cpu.txt",
        "    index:                      # CPU builds of torch; everything else from PyPI",
        f"      url: {CPU_TORCH_INDEX}",
        f"      extra_urls: [{PYPI_INDEX}]",
    ]
    if options.gpu:
        lines += [
            "  gpu:",
            "    base: debian",
            "    lockfile: lockfiles/gpu.txt # PyPI's torch is the CUDA build",
            "    gpus: all",
        ]
    lines += [
        "experiment:",
        f"  command: {_scalar(options.command.strip())}",
        f"  data: {_flow_list(data)}  # fingerprinted apart from code",
        f"  outputs: {_flow_list(outputs)}  # hashed and compared by `toolkit diff`",
    ]
    metrics = {
        key: value
        for key, value in (("file", options.metrics_file), ("primary", options.primary))
        if value
    }
    if metrics:
        inner = ", ".join(f"{key}: {_scalar(value)}" for key, value in metrics.items())
        lines.append(f"  metrics: {{{inner}}}")
    lines.append(
        "  network: true  # false: no network in the run, so all it reads is in the record"
    )
    lines.append(
        "determinism: {seed: 0, threads: 4, dataloader_workers: 0, strict: true, cpu: fixed}"
    )
    return "\n".join(lines) + "\n"


def render_requirements(requirements: tuple[str, ...], include: str | None = None) -> str:
    """The text of requirements.in: the given requirements, an include of `include` (a file
    beside it), or a commented example."""
    header = (
        "# Top-level dependencies of the experiment, one per line, for every target\n"
        "# (`toolkit lock` pins them, with hashes, in lockfiles/<target>.txt).\n"
    )
    if requirements:
        return header + "".join(f"{r.strip()}\n" for r in requirements)
    if include:
        return header + f"# The project's existing list (found by `toolkit init`):\n-r {include}\n"
    return header + "# For example:\n# torch==2.13.0\n# numpy>=2,<3\n"


def render_make_block(gpu: bool) -> str:
    """The marked block of make targets that drive toolkit (recipes are tab-indented)."""
    gpu_names = ["build-gpu", "gpu-run"] if gpu else []
    names = ["lock", "toolkit-base", "build-cpu", "cpu-run", *gpu_names, "repro-check"]
    rules = [
        "# Pin requirements.in per target (lockfiles/<target>.txt).",
        "lock:",
        "\t$(TOOLKIT) lock",
        "",
        "# The Debian base image of `base: debian` targets (root the first time; no registry).",
        "toolkit-base:",
        "\t$(TOOLKIT) base",
        "",
        "build-cpu: toolkit-base",
        "\t$(TOOLKIT) build --target cpu",
        "",
        "cpu-run: build-cpu",
        "\t$(TOOLKIT) run --target cpu",
        "",
    ]
    if gpu:
        rules += [
            "build-gpu: toolkit-base",
            "\t$(TOOLKIT) build --target gpu",
            "",
            "# Needs an NVIDIA GPU and the NVIDIA container runtime (`toolkit doctor` checks).",
            "gpu-run: build-gpu",
            "\t$(TOOLKIT) run --target gpu",
            "",
        ]
    rules += [
        "# Run the experiment twice on cpu and compare the runs: is it reproducible here?",
        "repro-check: build-cpu",
        "\t$(TOOLKIT) repro-check --target cpu",
    ]
    return "\n".join(
        [
            f"{MAKE_BEGIN} (written by `toolkit init`; `toolkit init --force` rewrites it)",
            "TOOLKIT ?= toolkit",
            "",
            f".PHONY: {' '.join(names)}",
            "",
            *rules,
            MAKE_END,
            "",
        ]
    )


def make_targets(makefile: str) -> set[str]:
    """The rule targets a Makefile defines (special targets such as .PHONY left out)."""
    found: set[str] = set()
    for line in makefile.splitlines():
        match = _MAKE_RULE.match(line)
        if match:
            found.update(t for t in match.group(1).split() if not _SPECIAL_TARGET.match(t))
    return found


def gitignore_entries(options: InitOptions, outputs: tuple[str, ...]) -> tuple[str, ...]:
    """What .gitignore should hold: toolkit's folders, and what the experiment writes.

    A run writes its declared outputs and metrics file into the project; left untracked but
    not ignored, they would make every later run's code count as changed (dirty).
    """
    written = [*outputs, *([options.metrics_file] if options.metrics_file else [])]
    anchored = ("/" + (path[2:] if path.startswith("./") else path) for path in written)
    return (*GITIGNORE_ENTRIES, *anchored)


def missing_gitignore_entries(
    gitignore: str, entries: tuple[str, ...] = GITIGNORE_ENTRIES
) -> tuple[str, ...]:
    """The entries a .gitignore lacks (`runs`, `/runs/` and the like count as present)."""
    present = {line.strip().strip("/") for line in gitignore.splitlines()}
    return tuple(entry for entry in entries if entry.strip("/") not in present)


# --- writing -----------------------------------------------------------------------------------


def write_scaffold(root: Path, options: InitOptions, *, force: bool = False) -> ScaffoldResult:
    """Write toolkit.yaml, requirements.in, the Makefile block and .gitignore entries in `root`."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder", hint="run toolkit init in your project's folder")
    name = options.name if options.name is not None else project_name(root.resolve().name)
    data = default_data(root) if options.data is None else options.data
    outputs = DEFAULT_OUTPUTS if options.outputs is None else options.outputs
    config = _write_config(root, options, name, data, outputs, force)
    # The experiment's own paths only when this toolkit.yaml is the one that declares them.
    skipped = config.action == "skipped"
    ignored = GITIGNORE_ENTRIES if skipped else gitignore_entries(options, outputs)
    files = [
        config,
        _write_requirements(root, options.requirements, force),
        _write_makefile(root / MAKEFILE, render_make_block(options.gpu), force, options.gpu),
        _write_gitignore(root / GITIGNORE, ignored),
    ]
    return ScaffoldResult(tuple(files))


def _write_config(
    root: Path,
    options: InitOptions,
    name: str,
    data: tuple[str, ...],
    outputs: tuple[str, ...],
    force: bool,
) -> FileResult:
    path = root / CONFIG_FILE
    if path.exists() and not force:
        if options.gpu:
            return _add_gpu_target(path)
        return FileResult(path, "skipped", "exists (--force overwrites it)")
    if path.exists() and options.command is None:  # --force keeps the command it had
        with contextlib.suppress(ConfigError, OSError):
            experiment = parse_config(path.read_text(encoding="utf-8"), path).experiment
            if experiment is not None:
                options = dataclasses.replace(options, command=experiment.command)
    text = render_config(options, name, data, outputs)
    # What init writes must load: a bad --name or --data fails here, naming the key.
    parse_config(text, path)
    return _write_new(path, text, force)


_GPU_TARGET = ("gpu:", "  base: debian", "  lockfile: lockfiles/gpu.txt", "  gpus: all")


def _add_gpu_target(path: Path) -> FileResult:
    """A gpu target added to an existing toolkit.yaml, in place: every other setting, and the
    comments, kept (rewriting it with --force would put them back to init's defaults)."""
    text = path.read_text(encoding="utf-8")
    if "gpu" in parse_config(text, path).targets:
        return FileResult(path, "skipped", "already has a gpu target")
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"targets:\s*(#.*)?$", line)), None)
    children = []
    for i in range(start + 1 if start is not None else len(lines), len(lines)):
        if lines[i].strip() and not lines[i][0].isspace():
            break
        if lines[i].strip():
            children.append(i)
    if start is None or not children:  # `targets: {cpu: {}}` on one line: not edited by toolkit
        return FileResult(
            path, "skipped", "add a gpu target by hand (init --gpu --force rewrites it)"
        )
    indent = lines[children[0]][: len(lines[children[0]]) - len(lines[children[0]].lstrip())]
    added = [indent + line for line in _GPU_TARGET]
    new = "\n".join([*lines[: children[-1] + 1], *added, *lines[children[-1] + 1 :]]) + "\n"
    parse_config(new, path)  # what it writes must load
    path.write_text(new, encoding="utf-8")
    return FileResult(path, "appended", "gpu target; your other settings kept")


def _write_requirements(root: Path, requirements: tuple[str, ...], force: bool) -> FileResult:
    path = root / REQUIREMENTS_FILE
    # The user's dependency list: --force alone (e.g. to add --gpu) must not erase it.
    if path.exists() and not (force and requirements):
        return FileResult(path, "skipped", "exists (--force with -r replaces it)")
    include = None if requirements or not (root / REQUIREMENTS_TXT).is_file() else REQUIREMENTS_TXT
    result = _write_new(path, render_requirements(requirements, include), force)
    if include:
        return FileResult(result.path, result.action, f"includes your {include}: -r {include}")
    return result


def _write_new(path: Path, text: str, force: bool) -> FileResult:
    existed = path.exists()
    if existed and not force:
        return FileResult(path, "skipped", "exists (--force overwrites it)")
    path.write_text(text, encoding="utf-8")
    return FileResult(path, "overwritten" if existed else "created")


def _write_makefile(path: Path, block: str, force: bool, gpu: bool = False) -> FileResult:
    if not path.exists():
        path.write_text(block, encoding="utf-8")
        return FileResult(path, "created")
    text = path.read_text(encoding="utf-8")
    if _has_block(text):
        # the block is toolkit's own: rewritten to add the gpu targets it lacks
        adds_gpu = gpu and "gpu-run" not in make_targets(text)
        if not (force or adds_gpu):
            return FileResult(path, "skipped", "already has the toolkit block")
        start, end = _block_span(text)
        if end is None:
            return FileResult(
                path, "skipped", f"has {MAKE_BEGIN!r} but no {MAKE_END!r}: fix the block by hand"
            )
        path.write_text(text[:start] + block + text[end:], encoding="utf-8")
        return FileResult(path, "overwritten", "toolkit block rewritten")
    clash = sorted(make_targets(text) & make_targets(block))
    if clash:
        return FileResult(
            path,
            "skipped",
            f"already defines {', '.join(clash)}: add the toolkit targets by hand "
            "(or rename yours and run toolkit init again)",
        )
    separator = "" if not text else "\n" if text.endswith("\n") else "\n\n"
    path.write_text(text + separator + block, encoding="utf-8")
    return FileResult(path, "appended", "toolkit block")


def _write_gitignore(path: Path, entries: tuple[str, ...]) -> FileResult:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    missing = missing_gitignore_entries(text, entries)
    if not missing:
        return FileResult(path, "skipped", "already ignores " + ", ".join(entries))
    separator = "" if not text or text.endswith("\n") else "\n"
    lines = "# toolkit: run records, local state, and what the experiment writes\n"
    path.write_text(text + separator + lines + "".join(f"{e}\n" for e in missing), "utf-8")
    return FileResult(path, "appended" if text else "created", ", ".join(missing))


def _has_block(text: str) -> bool:
    return any(line.startswith(MAKE_BEGIN) for line in text.splitlines())


def _block_span(text: str) -> tuple[int, int | None]:
    """Offsets of the toolkit block: from its first line to just after its end line."""
    start = 0 if text.startswith(MAKE_BEGIN) else text.index("\n" + MAKE_BEGIN) + 1
    end_at = text.find("\n" + MAKE_END, start)
    if end_at < 0:
        return start, None
    after = text.find("\n", end_at + 1)
    return start, len(text) if after < 0 else after + 1


def _scalar(text: str) -> str:
    """A YAML scalar that reads back as exactly `text`, quoted only when it must be.

    The plain characters allowed are safe inside flow collections ([...], {...}) too.
    """
    if _PLAIN.fullmatch(text) and not text.endswith(" ") and yaml.safe_load(text) == text:
        return text
    return quoted(text)


def quoted(text: str) -> str:
    """A double-quoted YAML scalar on one line, escaped where YAML needs it."""
    dumped = yaml.safe_dump(text, default_style='"', width=sys.maxsize, allow_unicode=True)
    return dumped.strip()


def _flow_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(_scalar(item) for item in items) + "]"
