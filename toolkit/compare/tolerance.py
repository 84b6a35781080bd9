"""Tolerances: torch.testing-like defaults per dtype, overridable by name pattern and globally."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from toolkit.errors import ConfigError

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Tolerance:
    """Two values agree when |a - b| <= atol + rtol * max(|a|, |b|)."""

    rtol: float
    atol: float

    def __post_init__(self) -> None:
        for field_name, value in (("rtol", self.rtol), ("atol", self.atol)):
            # NaN or negative bounds would make "within tolerance" meaningless.
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{field_name} must be a finite number >= 0, got {value!r}")

    def allows(self, abs_dev: Floats, scale: Floats) -> Mask:
        """Which deviations are within this tolerance, given max(|a|, |b|) as the scale."""
        return abs_dev <= self.atol + self.rtol * scale


EXACT = Tolerance(rtol=0.0, atol=0.0)

# The defaults of torch.testing.assert_close; integers and everything else compare exactly.
DTYPE_DEFAULTS: Mapping[str, Tolerance] = {
    "float16": Tolerance(rtol=1e-3, atol=1e-5),
    "bfloat16": Tolerance(rtol=1.6e-2, atol=1e-5),
    "float32": Tolerance(rtol=1.3e-6, atol=1e-5),
    "float64": Tolerance(rtol=1e-7, atol=1e-7),
}

# Metrics are logged as Python floats but usually computed in float32.
METRIC_DEFAULT = DTYPE_DEFAULTS["float32"]


class Deviations(NamedTuple):
    """Elementwise deviations of two float64 arrays; abs and rel are 0 unless both are finite."""

    abs: Floats
    rel: Floats  # |a - b| / max(|a|, |b|): symmetric, so diff(A, B) equals diff(B, A)
    finite: Mask  # both values finite
    within: Mask  # equal (NaN equals NaN) or finite and within tolerance


def deviations(a: Floats, b: Floats, tol: Tolerance, *, integer: bool = False) -> Deviations:
    """Compare a and b elementwise; integer=True: each pair holds two distinct integers."""
    finite = np.isfinite(a) & np.isfinite(b)
    all_finite = bool(finite.all())  # the usual case, which skips the masking passes
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf and overflow are masked below
        abs_dev = np.abs(a - b)
        scale = np.maximum(np.abs(a), np.abs(b))
        if not all_finite:
            abs_dev[~finite] = scale[~finite] = 0.0
        rel = np.divide(abs_dev, scale, out=np.zeros_like(abs_dev), where=scale > 0)
    if integer:
        # Distinct int64 values above 2**53 can round to one float64; they still differ by >= 1.
        abs_dev = np.maximum(abs_dev, 1.0)
    within = tol.allows(abs_dev, scale)
    if not all_finite:
        within &= finite
        within |= (a == b) | (np.isnan(a) & np.isnan(b))
    return Deviations(abs_dev, rel, finite, within)


def default_for_dtype(dtype: str) -> Tolerance:
    """The default tolerance for a dtype name such as "float32" or "bfloat16"."""
    return DTYPE_DEFAULTS.get(dtype.split(" ")[0], EXACT)


@dataclass(frozen=True)
class TolerancePolicy:
    """Which tolerance applies to a name: global override > first matching pattern > default."""

    patterns: tuple[
        tuple[str, Tolerance], ...
    ] = ()  # (glob on the name, tolerance), first match wins
    rtol: float | None = None  # --rtol: replaces rtol everywhere
    atol: float | None = None  # --atol: replaces atol everywhere

    @classmethod
    def from_mapping(
        cls,
        patterns: Mapping[str, Tolerance] | None = None,
        *,
        rtol: float | None = None,
        atol: float | None = None,
    ) -> TolerancePolicy:
        """A policy from toolkit.yaml's pattern -> tolerance mapping (order kept) and CLI values."""
        policy = cls(tuple((patterns or {}).items()), rtol, atol)
        policy._apply(EXACT)  # validates the global values now, not at first use
        return policy

    def for_metric(self, name: str) -> Tolerance:
        """The tolerance for the metric series called `name`."""
        return self._apply(self._match(name) or METRIC_DEFAULT)

    def for_tensor(self, name: str, dtype: str) -> Tolerance:
        """The tolerance for the tensor `name` stored as `dtype`."""
        return self._apply(self._match(name) or default_for_dtype(dtype))

    def _match(self, name: str) -> Tolerance | None:
        return next((tol for pattern, tol in self.patterns if fnmatchcase(name, pattern)), None)

    def _apply(self, tol: Tolerance) -> Tolerance:
        if self.rtol is not None:
            tol = replace(tol, rtol=self.rtol)
        if self.atol is not None:
            tol = replace(tol, atol=self.atol)
        return tol
