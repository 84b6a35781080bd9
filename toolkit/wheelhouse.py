"""The host-side wheelhouse: every wheel a lockfile names, verified against its hashes."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import BuildError

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Pin:
    """One `name==version` line of a lockfile with its allowed sha256 hashes."""

    name: str  # normalised: lowercase, runs of -_. as "-"
    version: str
    hashes: frozenset[str]


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(text: str) -> list[Pin]:
    """Pins and hashes of a hash-pinned requirements file (the lockfile format pip-tools writes)."""
    pins: list[Pin] = []
    name: str | None = None
    version = ""
    hashes: set[str] = set()
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        match = _PIN.match(line)
        if match:
            if name:
                pins.append(Pin(name, version, frozenset(hashes)))
            name, version, hashes = normalise(match[1]), match[2], set()
        hashes.update(_HASH.findall(line))
    if name:
        pins.append(Pin(name, version, frozenset(hashes)))
    return pins


def wheel_key(filename: str) -> tuple[str, str] | None:
    """(normalised name, version) of a wheel file name, or None for other files."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[:-4].split("-")
    if len(parts) < 5:
        return None
    return normalise(parts[0]), parts[1]


def sha256_of(path: Path, check: Callable[[], None] = lambda: None) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks (`check` is called before each: an exception
    from it stops the read)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            check()
            digest.update(block)
    return digest.hexdigest()


def missing(pins: list[Pin], wheelhouse: Path) -> list[Pin]:
    """Pins with no wheel of that name and version in the wheelhouse yet."""
    present = (
        {wheel_key(p.name) for p in wheelhouse.glob("*.whl")} if wheelhouse.is_dir() else set()
    )
    return [pin for pin in pins if (pin.name, pin.version) not in present]


def collect(pins: list[Pin], wheelhouse: Path, dest: Path) -> list[Path]:
    """Link the wheel of every pin into `dest`, refusing any wheel whose hash is not locked."""
    dest.mkdir(parents=True, exist_ok=True)
    by_key: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(wheelhouse.glob("*.whl")):
        key = wheel_key(path.name)
        if key:
            by_key.setdefault(key, []).append(path)
    linked = []
    for pin in pins:
        candidates = by_key.get((pin.name, pin.version), [])
        if not candidates:
            raise BuildError(
                f"no wheel for {pin.name}=={pin.version} in {wheelhouse}",
                hint="the package may have no wheel for this platform; builds install wheels only",
            )
        chosen = next((c for c in candidates if sha256_of(c) in pin.hashes), None)
        if chosen is None:
            names = ", ".join(c.name for c in candidates)
            pinned = f"{pin.name}=={pin.version}"
            raise BuildError(
                f"wheel for {pinned} does not match the lockfile's hashes ({names}): either the "
                "wheel is corrupt (or was tampered with), or the lockfile was edited by hand",
                hint=f"to tell which, delete {names} from {wheelhouse} and build again: a good "
                "wheel is downloaded and checked; if that fails too, the lockfile is wrong: "
                "restore it from version control, or record the index's hashes with "
                f"`toolkit lock --target <target> --upgrade-package {pinned}`",
            )
        target = dest / chosen.name
        try:
            os.link(chosen, target)
        except OSError:  # another filesystem: copy instead
            target.write_bytes(chosen.read_bytes())
        linked.append(target)
    return linked
