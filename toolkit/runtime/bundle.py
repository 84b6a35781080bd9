"""Lay out the runtime directory the launcher mounts and puts first on PYTHONPATH."""

from __future__ import annotations

import importlib.util
import py_compile
import shutil
from pathlib import Path

SOURCE = Path(__file__).resolve().parent

# Inside the container the stub makes `import toolkit.runtime` work. Like pkgutil.extend_path
# (whose imports cost ~9 ms per process), it appends any other toolkit folder on sys.path, so
# with --native the installed toolkit's other modules stay importable behind the runtime.
STUB = '''"""Stub of the toolkit package for the in-run runtime (see toolkit/runtime/bundle.py)."""

import os as _os
import sys as _sys

for _entry in _sys.path:
    _folder = _os.path.join(_entry or _os.curdir, __name__)
    _seen = [_os.path.realpath(_path) for _path in __path__]
    if _os.path.isdir(_folder) and _os.path.realpath(_folder) not in _seen:
        __path__.append(_folder)
'''


def write_bundle(dest: Path) -> None:
    """Write dest/sitecustomize.py, dest/toolkit/__init__.py and dest/toolkit/runtime/*.py."""
    runtime = dest / "toolkit" / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    sources = sorted(SOURCE.glob("*.py"))
    names = {path.name for path in sources}
    for stale in runtime.glob("*.py"):
        if stale.name not in names:
            stale.unlink()
    files = [(path, runtime / path.name) for path in sources]
    files.append((SOURCE / "sitecustomize.py", dest / "sitecustomize.py"))
    for source, target in files:
        shutil.copyfile(source, target)
    (dest / "toolkit" / "__init__.py").write_text(STUB, encoding="utf-8")
    for path in [*dest.rglob("*.py")]:
        path.chmod(0o644)
        # The bundle is usually mounted read-only: without bytecode written here, every
        # process of the run would compile the runtime again (the tag keeps other Pythons off).
        py_compile.compile(
            str(path), cfile=importlib.util.cache_from_source(str(path)), doraise=True
        )
    for folder in [dest, *(path for path in dest.rglob("*") if path.is_dir())]:
        folder.chmod(0o755)
