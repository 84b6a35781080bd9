"""Compare runs: metric series step by step, tensor files element by element, with tolerances."""

from __future__ import annotations

from toolkit.compare.series import SeriesDiff, compare_all_series, compare_series
from toolkit.compare.tensors import (
    TensorDiff,
    TensorFileDiff,
    TensorSummary,
    compare_arrays,
    compare_tensor_files,
    ulp_distance,
)
from toolkit.compare.tolerance import (
    DTYPE_DEFAULTS,
    METRIC_DEFAULT,
    Tolerance,
    TolerancePolicy,
    default_for_dtype,
    deviations,
)
from toolkit.compare.verdict import Verdict, worst

__all__ = [
    "DTYPE_DEFAULTS",
    "METRIC_DEFAULT",
    "SeriesDiff",
    "TensorDiff",
    "TensorFileDiff",
    "TensorSummary",
    "Tolerance",
    "TolerancePolicy",
    "Verdict",
    "compare_all_series",
    "compare_arrays",
    "compare_series",
    "compare_tensor_files",
    "default_for_dtype",
    "deviations",
    "ulp_distance",
    "worst",
]
