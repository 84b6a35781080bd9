"""Content hashes of data and output files, kept apart from code."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.wheelhouse import sha256_of


@dataclass(frozen=True)
class Fingerprint:
    """sha256 of every file under some paths, and one hash over all of them."""

    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    missing: tuple[str, ...] = ()  # declared paths that did not exist

    @property
    def digest(self) -> str:
        combined = hashlib.sha256()
        for name, digest in sorted(self.files.items()):
            combined.update(f"{name}\0{digest}\n".encode())
        return combined.hexdigest()


def fingerprint(root: Path, paths: tuple[str, ...] | list[str]) -> Fingerprint:
    """Hash every regular file under each of `paths` (files or folders), relative to `root`."""
    files: dict[str, str] = {}
    missing = []
    for declared in paths:
        start = root / declared
        if start.is_file():
            files[start.relative_to(root).as_posix()] = sha256_of(start)
        elif start.is_dir():
            for path in sorted(p for p in start.rglob("*") if p.is_file() and not p.is_symlink()):
                files[path.relative_to(root).as_posix()] = sha256_of(path)
        else:
            missing.append(declared)
    return Fingerprint(files, tuple(missing))
