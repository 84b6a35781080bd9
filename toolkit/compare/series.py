"""Step-aligned comparison of two metric series (step, value)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from toolkit.compare.tolerance import (
    METRIC_DEFAULT,
    Floats,
    Tolerance,
    TolerancePolicy,
    deviations,
)
from toolkit.compare.verdict import Verdict

Series = Iterable[tuple[int, float]]


@dataclass(frozen=True)
class SeriesDiff:
    """How one metric differs between run A and run B, step by step."""

    name: str
    steps_compared: int  # steps logged by both runs
    only_in_a: int  # steps logged only by A
    only_in_b: int
    first_differing_step: int | None  # first common step whose values differ bitwise
    first_unshared_step: int | None  # first step logged by one run only
    last_step_a: int | None  # the last step A logged; None if it logged none
    last_step_b: int | None
    first_beyond_tolerance_step: int | None
    max_abs: float  # over common steps where both values are finite; 0.0 if none
    max_rel: float  # |a - b| / max(|a|, |b|), over the same steps
    final_step: int | None  # last common step
    final_a: float | None
    final_b: float | None
    final_rel: float | None  # None without a common step, or when a NaN/inf there does not match
    nan_mismatches: int  # common steps where exactly one value is NaN
    inf_mismatches: int  # neither NaN, at least one infinite, and different
    first_nonfinite: tuple[int, float, float] | None  # (step, a, b): first NaN/inf mismatch
    tolerance: Tolerance
    verdict: Verdict
    shared_verdict: Verdict  # over the steps both runs logged, whatever either logged alone

    @property
    def first_difference(self) -> int | None:
        """The first step where the runs differ: in value, or logged by one run only."""
        steps = [s for s in (self.first_differing_step, self.first_unshared_step) if s is not None]
        return min(steps) if steps else None


def compare_series(
    name: str, a: Series, b: Series, tolerance: Tolerance = METRIC_DEFAULT
) -> SeriesDiff:
    """Align a and b on their steps and compare the values; a repeated step keeps its last value."""
    by_step_a, by_step_b = dict(a), dict(b)
    common = sorted(by_step_a.keys() & by_step_b.keys())
    steps = np.array(common, dtype=np.int64)
    va = np.array([by_step_a[s] for s in common], dtype=np.float64)
    vb = np.array([by_step_b[s] for s in common], dtype=np.float64)

    nan_a, nan_b = np.isnan(va), np.isnan(vb)
    # NaN at the same step in both runs is the same value, whatever its bits (two runs that
    # both blow up at step 5 reproduce each other); a NaN against a number always differs.
    differs = (va.view(np.uint64) != vb.view(np.uint64)) & ~(nan_a & nan_b)
    dev = deviations(va, vb, tolerance)
    nonfinite = ~dev.finite & differs
    unshared = by_step_a.keys() ^ by_step_b.keys()
    only_in_a = len(by_step_a.keys() - by_step_b.keys())
    only_in_b = len(by_step_b.keys() - by_step_a.keys())
    beyond = ~dev.within

    if beyond.any():
        shared: Verdict = "diverged"
    else:
        shared = "within_tolerance" if differs.any() else "identical"
    # a step that one run logged and the other did not is a difference too
    verdict: Verdict = "diverged" if only_in_a or only_in_b else shared
    has_final = bool(common)
    return SeriesDiff(
        name=name,
        steps_compared=len(common),
        only_in_a=only_in_a,
        only_in_b=only_in_b,
        first_differing_step=_first(steps, differs),
        first_unshared_step=min(unshared) if unshared else None,
        last_step_a=max(by_step_a, default=None),
        last_step_b=max(by_step_b, default=None),
        first_beyond_tolerance_step=_first(steps, beyond),
        max_abs=float(dev.abs.max(initial=0.0)),
        max_rel=float(dev.rel.max(initial=0.0)),
        final_step=common[-1] if has_final else None,
        final_a=float(va[-1]) if has_final else None,
        final_b=float(vb[-1]) if has_final else None,
        final_rel=float(dev.rel[-1]) if has_final and dev.within[-1] | dev.finite[-1] else None,
        nan_mismatches=int(np.count_nonzero(nan_a != nan_b)),
        inf_mismatches=int(np.count_nonzero(~nan_a & ~nan_b & nonfinite)),
        first_nonfinite=_first_pair(steps, nonfinite, va, vb),
        tolerance=tolerance,
        verdict=verdict,
        shared_verdict=shared,
    )


def compare_all_series(
    a: Mapping[str, Series], b: Mapping[str, Series], policy: TolerancePolicy | None = None
) -> tuple[SeriesDiff, ...]:
    """Compare every metric of A and B by name (A's order first); a metric on one side diverges."""
    policy = policy or TolerancePolicy()
    names = list(a) + [name for name in b if name not in a]
    return tuple(
        compare_series(name, a.get(name, ()), b.get(name, ()), policy.for_metric(name))
        for name in names
    )


def _first_pair(
    steps: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_], va: Floats, vb: Floats
) -> tuple[int, float, float] | None:
    if not mask.any():
        return None
    at = int(np.argmax(mask))
    return int(steps[at]), float(va[at]), float(vb[at])


def _first(steps: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> int | None:
    return int(steps[np.argmax(mask)]) if mask.any() else None
