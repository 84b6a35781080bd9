"""The post-import hook and the parsing of torch's nondeterminism messages, in-process."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from toolkit.runtime import hooks
from toolkit.runtime.alerts import op_name, ops_in


@pytest.fixture
def fake_library(tmp_path: Path) -> Iterator[str]:
    """A package `fakelib` on sys.path; the hook finder and the modules are removed after."""
    package = tmp_path / "fakelib"
    package.mkdir()
    (package / "__init__.py").write_text("LOADED = True\nfrom fakelib import sub\n")
    (package / "sub.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(tmp_path))
    meta_path = list(sys.meta_path)
    yield "fakelib"
    sys.meta_path[:] = meta_path
    sys.path.remove(str(tmp_path))
    for name in ("fakelib", "fakelib.sub"):
        sys.modules.pop(name, None)


def test_callback_runs_after_the_module_has_loaded(fake_library: str) -> None:
    seen: list[tuple[str, bool]] = []
    hooks.install({fake_library: lambda m: seen.append((m.__name__, m.LOADED))}, _fail)
    assert seen == []
    module = importlib.import_module(fake_library)
    assert seen == [("fakelib", True)]
    # The module never sees the wrapper: its loader is the real one.
    assert type(module.__loader__).__name__ == "SourceFileLoader"
    assert module.__spec__ is not None
    assert type(module.__spec__.loader).__name__ == "SourceFileLoader"


def test_submodules_are_hooked_on_their_own(fake_library: str) -> None:
    order: list[str] = []
    hooks.install(
        {
            "fakelib": lambda m: order.append(m.__name__),
            "fakelib.sub": lambda m: order.append(m.__name__),
        },
        _fail,
    )
    importlib.import_module(fake_library)
    # The package imports its submodule while it loads: the submodule finishes first.
    assert order == ["fakelib.sub", "fakelib"]


def test_callback_runs_once_even_after_reload(fake_library: str) -> None:
    calls: list[ModuleType] = []
    hooks.install({fake_library: calls.append}, _fail)
    module = importlib.import_module(fake_library)
    importlib.reload(module)
    assert len(calls) == 1


def test_a_failing_callback_is_recorded_and_the_import_succeeds(fake_library: str) -> None:
    errors: list[tuple[str, BaseException]] = []

    def broken(module: ModuleType) -> None:
        raise ValueError("boom")

    hooks.install({fake_library: broken}, lambda where, exc: errors.append((where, exc)))
    module = importlib.import_module(fake_library)
    assert module.LOADED is True
    assert [(where, str(exc)) for where, exc in errors] == [
        ("applying the policy to fakelib", "boom")
    ]


def test_modules_imported_before_install_get_the_callback_at_once(fake_library: str) -> None:
    importlib.import_module(fake_library)
    calls: list[str] = []
    hooks.install({fake_library: lambda m: calls.append(m.__name__)}, _fail)
    assert calls == ["fakelib"]


def test_unwatched_modules_are_left_to_the_other_finders(fake_library: str) -> None:
    finder = hooks.install({}, _fail)
    assert finder.find_spec(fake_library) is None


@pytest.mark.parametrize(
    ("message", "op"),
    [
        ("put_ does not have a deterministic implementation, but you set ...", "put_"),
        (
            "median CUDA with indices output does not have a deterministic implementation, but",
            "median CUDA with indices output",
        ),
        (
            "Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback:\n"
            '  File "x.py", line 3\nRuntimeError: index_add_cuda_ does not have a deterministic '
            "implementation, but you set",
            "index_add_cuda_",
        ),
        ("CUDA out of memory", None),
    ],
)
def test_op_name_is_parsed_from_torchs_message(message: str, op: str | None) -> None:
    assert op_name(message) == op


def test_ops_are_found_along_the_exception_chain() -> None:
    try:
        try:
            raise RuntimeError("put_ does not have a deterministic implementation, but")
        except RuntimeError as inner:
            raise ValueError("training step failed") from inner
    except ValueError as outer:
        assert ops_in(outer) == ["put_"]


def _fail(where: str, exc: BaseException) -> None:
    raise AssertionError(f"{where}: {exc}")
