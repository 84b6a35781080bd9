"""Apply the toolkit determinism policy to this process, then run any other sitecustomize.

The launcher copies this file to the top of the runtime bundle, which it puts first on
PYTHONPATH, so Python imports it at startup in every process of the run. It must never
break the user's program: a failure is reported on stderr and the program goes on.
"""

import os
import sys


def _apply_policy() -> None:
    if not os.environ.get("TOOLKIT_POLICY"):
        return
    try:
        from toolkit.runtime import apply

        apply.start()
    except Exception as exc:  # nothing may escape into the user's program
        sys.stderr.write(
            f"toolkit runtime: warning: policy not applied: {type(exc).__name__}: {exc}\n"
        )


def _chain() -> None:
    # Python imports only the first sitecustomize on sys.path: this one. Run the next one
    # (the image's, the venv's or the user's own) as Python would have.
    try:
        import importlib.machinery

        here = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))
        entries = [os.path.realpath(entry or os.getcwd()) for entry in sys.path]
        later = sys.path[entries.index(here) + 1 :] if here in entries else list(sys.path)
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", later)
        if spec is None or spec.loader is None or _same_file(spec.origin, __file__):
            return
        # importlib.util's own module_from_spec: importing importlib.util costs ~1 ms
        from importlib._bootstrap import module_from_spec

        module = module_from_spec(spec)
    except Exception as exc:
        sys.stderr.write(f"toolkit runtime: warning: cannot chain sitecustomize: {exc}\n")
        return
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # what site.py does with a failing sitecustomize
        if sys.flags.verbose:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        else:
            sys.stderr.write(
                "Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
                f"{type(exc).__name__}: {exc}\n"
            )


def _same_file(origin: "str | None", path: str) -> bool:
    return origin is not None and os.path.realpath(origin) == os.path.realpath(path)


_apply_policy()
_chain()
