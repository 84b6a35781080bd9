"""Force torch DataLoaders to the policy: worker count, seeded generator, seeded workers."""

from __future__ import annotations

import functools
import inspect
import itertools
import sys

from toolkit.runtime.policy import Policy
from toolkit.runtime.report import APPLIED, NOT_APPLICABLE, Report, current

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# DataLoader arguments torch rejects with num_workers=0, and the value that disables each.
MULTIPROCESS_ONLY = {
    "persistent_workers": False,
    "prefetch_factor": None,
    "multiprocessing_context": None,
}


def patch(loader_class: type, policy: Policy, report: Report) -> None:
    """Wrap DataLoader.__init__ once; every DataLoader (and subclass) built after is forced."""
    original = loader_class.__init__  # type: ignore[misc]
    if getattr(original, "_toolkit_wrapped", False):
        return
    signature = inspect.signature(original)
    created = itertools.count()

    @functools.wraps(original)
    def __init__(self: object, *args: object, **kwargs: object) -> None:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            # The user's arguments do not fit: torch raises its own error for them.
            original(self, *args, **kwargs)
            return
        try:
            force(bound.arguments, policy, report, next(created))
        except Exception as exc:
            # Half-forced arguments could contradict each other: keep the user's as they were.
            report.error("forcing DataLoader settings", exc)
            original(self, *args, **kwargs)
            return
        original(*bound.args, **bound.kwargs)

    __init__._toolkit_wrapped = True  # type: ignore[attr-defined]
    loader_class.__init__ = __init__  # type: ignore[misc]


def force(arguments: dict[str, object], policy: Policy, report: Report, index: int) -> None:
    """Rewrite one DataLoader's arguments in place, recording each change."""
    workers = _force_workers(arguments, policy.dataloader_workers, report)
    if workers == 0:
        for name, off in MULTIPROCESS_ONLY.items():
            if arguments.get(name, off) != off:
                report.force(f"DataLoader {name} {arguments[name]!r} -> {off!r} (no workers)")
                arguments[name] = off
    elif arguments.get("in_order", True) is False:
        # Out-of-order batches from several workers arrive in whatever order workers finish.
        arguments["in_order"] = True
        report.force("DataLoader in_order False -> True")
    if arguments.get("generator") is None:
        torch = sys.modules["torch"]
        # One seed per DataLoader, in creation order: a train and a validation loader built
        # by the same code do not share a shuffle order, and every run gets the same ones.
        arguments["generator"] = torch.Generator().manual_seed(policy.seed + index)
        report.force("DataLoader generator None -> torch.Generator seeded policy.seed + n")
    user_fn = arguments.get("worker_init_fn")
    if not isinstance(user_fn, WorkerInit):
        arguments["worker_init_fn"] = WorkerInit(user_fn)  # type: ignore[arg-type]


def _force_workers(arguments: dict[str, object], workers: int, report: Report) -> int:
    """Force num_workers to the policy's count, unless that would change the data; the count
    the DataLoader gets."""
    asked = arguments.get("num_workers", 0)
    dataset = arguments.get("dataset")
    if isinstance(asked, int) and asked < workers and _iterable(dataset):
        # Each worker iterates its own copy of an IterableDataset: unless the dataset splits
        # itself by get_worker_info(), n workers yield every item n times.
        detail = (
            f"kept at {asked} for IterableDataset {type(dataset).__name__}, not forced to"
            f" {workers}: each worker would yield the whole dataset"
        )
        report.setting("DataLoader num_workers", workers, NOT_APPLICABLE, detail)
        return asked
    if asked == workers:
        return workers
    arguments["num_workers"] = workers
    report.force(f"DataLoader num_workers {asked} -> {workers}")
    user_fn = arguments.get("worker_init_fn")
    if isinstance(user_fn, WorkerInit):  # another DataLoader's, already wrapped
        user_fn = user_fn.user_fn
    if workers == 0 and user_fn is not None:
        # torch calls worker_init_fn in each worker process: with none, never.
        name = getattr(user_fn, "__qualname__", type(user_fn).__name__)
        report.force(f"DataLoader worker_init_fn {name} not run (num_workers {asked} -> 0)")
    return workers


def _iterable(dataset: object) -> bool:
    data = sys.modules.get("torch.utils.data")
    kind = getattr(data, "IterableDataset", None)
    return isinstance(kind, type) and isinstance(dataset, kind)


class WorkerInit:
    """worker_init_fn that seeds random, numpy and torch in a worker, then runs the user's."""

    def __init__(self, user_fn: Callable[[int], object] | None) -> None:
        self.user_fn = user_fn

    def __call__(self, worker_id: int) -> None:
        seed_worker(worker_id)
        if self.user_fn is not None:
            self.user_fn(worker_id)


def seed_worker(worker_id: int) -> None:
    """Seed this worker from torch's per-worker seed and record it in the worker's report."""
    import random

    torch = sys.modules["torch"]
    # torch sets it to the loader's base seed (drawn from the seeded generator) + worker_id.
    seed = int(torch.initial_seed())
    random.seed(seed)
    torch.manual_seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed % 2**32)
    report = current()
    if report is not None:
        report.dataloader_worker = {"id": worker_id, "seed": seed}
        threads = report.settings.get("torch.set_num_threads")
        if threads is not None and threads["value"] != 1 and torch.get_num_threads() == 1:
            # torch's worker loop does this before worker_init_fn: not the user's override.
            detail = "one thread in a DataLoader worker, set by torch's worker loop"
            report.setting("torch.set_num_threads", 1, APPLIED, detail)
        report.write()
