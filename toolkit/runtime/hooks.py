"""Run a callback right after a module finishes loading, without importing it ourselves."""

from __future__ import annotations

import sys

# Every Python process of a run imports this module: typing-only imports stay out of its way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.abc import Loader
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    Callback = Callable[[ModuleType], None]
    OnError = Callable[[str, BaseException], None]


class PostImportFinder:
    """A sys.meta_path finder that wraps the real loader of watched modules.

    It finds nothing itself: it asks the finders after it and hands back their spec with a
    loader that runs the callback once the module's code has run. Importing torch stays the
    user's choice (and cost); the policy follows it immediately.
    """

    def __init__(self, callbacks: dict[str, Callback], on_error: OnError) -> None:
        self.callbacks = callbacks
        self.on_error = on_error
        self.done: set[str] = set()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname not in self.callbacks or fullname in self.done:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec: ModuleSpec | None = find(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _Loader(spec.loader, self)  # type: ignore[assignment]
            return spec
        return None

    def run(self, module: ModuleType) -> None:
        """Run the callback for a loaded module, once per process; errors are recorded."""
        name = module.__name__
        if name in self.done or name not in self.callbacks:
            return
        self.done.add(name)
        try:
            self.callbacks[name](module)
        except Exception as exc:
            self.on_error(f"applying the policy to {name}", exc)


class _Loader:
    """Delegates to the real loader, then runs the finder's callback."""

    def __init__(self, loader: Loader, finder: PostImportFinder) -> None:
        self.loader = loader
        self.finder = finder

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back before the module's code runs: code that inspects
        # __loader__ or __spec__.loader never sees this wrapper.
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self.loader
        self.loader.exec_module(module)
        self.finder.run(module)

    def __getattr__(self, name: str) -> object:
        return getattr(self.loader, name)


def install(callbacks: dict[str, Callback], on_error: OnError) -> PostImportFinder:
    """Watch these modules; any already imported get their callback now."""
    finder = PostImportFinder(callbacks, on_error)
    sys.meta_path.insert(0, finder)
    for name in callbacks:
        module = sys.modules.get(name)
        if module is not None:
            finder.run(module)
    return finder
