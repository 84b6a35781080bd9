"""Step-aligned comparison of metric series."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.compare import Tolerance, TolerancePolicy, compare_all_series, compare_series
from toolkit.errors import ConfigError

TIGHT = Tolerance(rtol=1e-6, atol=0.0)


def steps(*values: float) -> list[tuple[int, float]]:
    return list(enumerate(values))


def test_identical_series() -> None:
    diff = compare_series("loss", steps(2.5, 2.4, 2.3), steps(2.5, 2.4, 2.3))
    assert diff.verdict == "identical"
    assert diff.steps_compared == 3
    assert (diff.only_in_a, diff.only_in_b) == (0, 0)
    assert diff.first_differing_step is None
    assert diff.first_beyond_tolerance_step is None
    assert (diff.max_abs, diff.max_rel) == (0.0, 0.0)
    assert (diff.final_step, diff.final_a, diff.final_b, diff.final_rel) == (2, 2.3, 2.3, 0.0)


def test_a_tiny_difference_is_within_tolerance_but_still_the_first_differing_step() -> None:
    b = steps(1.0, 2.0, 3.0, 4.0)
    a = steps(1.0, 2.0, math.nextafter(3.0, 4.0), 4.0)
    diff = compare_series("loss", a, b, TIGHT)
    assert diff.verdict == "within_tolerance"
    assert diff.first_differing_step == 2
    assert diff.first_beyond_tolerance_step is None
    assert diff.max_abs == math.nextafter(3.0, 4.0) - 3.0


def test_divergence_reports_first_step_and_max_deviations() -> None:
    a = steps(1.0, 2.0, 3.0, 4.0, 5.0)
    b = steps(1.0, 2.0, 3.0000001, 4.4, 5.0)
    diff = compare_series("loss", a, b, TIGHT)
    assert diff.verdict == "diverged"
    assert diff.first_differing_step == 2
    assert diff.first_beyond_tolerance_step == 3
    assert diff.max_abs == pytest.approx(0.4)
    assert diff.max_rel == pytest.approx(0.4 / 4.4)
    assert diff.final_rel == 0.0


def test_relative_deviation_is_symmetric() -> None:
    ab = compare_series("m", steps(1.0, 3.0), steps(1.0, 2.0))
    ba = compare_series("m", steps(1.0, 2.0), steps(1.0, 3.0))
    assert ab.max_rel == ba.max_rel == pytest.approx(1 / 3)


def test_different_step_counts_are_counted_and_diverge() -> None:
    a = steps(*[float(i) for i in range(10)])
    b = steps(*[float(i) for i in range(8)])
    diff = compare_series("loss", a, b)
    assert (diff.steps_compared, diff.only_in_a, diff.only_in_b) == (8, 2, 0)
    assert diff.first_differing_step is None
    assert diff.verdict == "diverged"
    assert (diff.final_step, diff.final_a, diff.final_b) == (7, 7.0, 7.0)


def test_steps_are_aligned_not_positional() -> None:
    a = [(0, 1.0), (10, 2.0), (20, 3.0)]
    b = [(20, 3.0), (0, 1.0), (5, 9.0), (10, 2.0)]  # unsorted, with an extra step
    diff = compare_series("loss", a, b)
    assert (diff.steps_compared, diff.only_in_a, diff.only_in_b) == (3, 0, 1)
    assert diff.first_differing_step is None
    assert diff.final_step == 20


def test_a_repeated_step_keeps_its_last_value() -> None:
    diff = compare_series("loss", [(0, 1.0), (0, 2.0)], [(0, 2.0)])
    assert diff.verdict == "identical"


def test_nan_on_one_side_is_a_mismatch_and_left_out_of_max_deviation() -> None:
    a = steps(1.0, math.nan, 3.0, math.nan)
    b = steps(1.5, 2.0, 3.0, math.nan)
    diff = compare_series("loss", a, b)
    assert diff.nan_mismatches == 1
    assert diff.first_beyond_tolerance_step == 0
    assert diff.max_abs == 0.5
    assert diff.verdict == "diverged"
    assert diff.final_rel == 0.0  # NaN on both sides at the final step agrees


def test_final_rel_is_none_when_the_final_values_cannot_be_compared() -> None:
    diff = compare_series("loss", steps(1.0, 2.0), steps(1.0, math.nan))
    assert diff.final_rel is None
    assert diff.first_beyond_tolerance_step == 1


def test_nan_at_the_same_step_is_the_same_value_whatever_its_bits() -> None:
    negative_nan = -math.nan  # the sign bit set: other bits than math.nan
    assert struct.pack("<d", negative_nan) != struct.pack("<d", math.nan)
    diff = compare_series("loss", steps(1.0, math.nan), steps(1.0, negative_nan))
    assert diff.verdict == "identical"
    assert diff.first_differing_step is None and diff.first_nonfinite is None


def test_the_first_nan_against_a_number_is_kept_with_both_values() -> None:
    diff = compare_series("loss", steps(1.0, math.nan, math.inf), steps(1.0, 0.5, 2.0))
    assert diff.first_nonfinite is not None
    step, a, b = diff.first_nonfinite
    assert (step, math.isnan(a), b) == (1, True, 0.5)
    assert (diff.nan_mismatches, diff.inf_mismatches) == (1, 1)
    assert (diff.max_abs, diff.max_rel) == (0.0, 0.0)  # no finite pair differs


def test_infinity_against_a_number_is_an_inf_mismatch() -> None:
    diff = compare_series("loss", steps(math.inf, math.inf, 1.0), steps(math.inf, -math.inf, 1.0))
    assert diff.inf_mismatches == 1
    assert diff.first_differing_step == 1
    assert diff.max_abs == 0.0
    assert diff.verdict == "diverged"


def test_signed_zeros_differ_bitwise_but_agree_in_value() -> None:
    diff = compare_series("loss", steps(0.0), steps(-0.0), Tolerance(0.0, 0.0))
    assert diff.first_differing_step == 0
    assert diff.verdict == "within_tolerance"


def test_empty_series_are_identical() -> None:
    diff = compare_series("loss", [], [])
    assert diff.verdict == "identical"
    assert diff.final_step is None and diff.final_rel is None


def test_compare_all_series_matches_by_name_and_reports_one_sided_metrics() -> None:
    a = {"loss": steps(1.0, 2.0), "acc": steps(0.5)}
    b = {"acc": steps(0.5), "lr": steps(0.1, 0.1)}
    diffs = {d.name: d for d in compare_all_series(a, b)}
    assert list(diffs) == ["loss", "acc", "lr"]
    assert diffs["acc"].verdict == "identical"
    assert (diffs["loss"].only_in_a, diffs["loss"].verdict) == (2, "diverged")
    assert (diffs["lr"].only_in_b, diffs["lr"].verdict) == (2, "diverged")


def test_policy_patterns_and_global_override_pick_the_tolerance() -> None:
    a, b = {"val_loss": steps(1.0)}, {"val_loss": steps(1.01)}
    assert compare_all_series(a, b)[0].verdict == "diverged"
    loose = TolerancePolicy.from_mapping({"val_*": Tolerance(rtol=0.02, atol=0.0)})
    assert compare_all_series(a, b, loose)[0].verdict == "within_tolerance"
    cli = TolerancePolicy.from_mapping({"val_*": Tolerance(rtol=0.02, atol=0.0)}, rtol=0.001)
    assert compare_all_series(a, b, cli)[0].verdict == "diverged"


def test_invalid_tolerances_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="rtol"):
        Tolerance(rtol=-1.0, atol=0.0)
    with pytest.raises(ConfigError, match="atol"):
        TolerancePolicy.from_mapping(atol=math.nan)


values = st.floats(allow_nan=True, allow_infinity=True, width=64)
series = st.lists(st.tuples(st.integers(0, 50), values), max_size=30)
tolerances = st.builds(Tolerance, st.floats(0, 1), st.floats(0, 1))


@given(series)
def test_a_series_compared_with_itself_is_identical(s: list[tuple[int, float]]) -> None:
    assert compare_series("m", s, s).verdict == "identical"


@given(series, series)
def test_comparison_is_symmetric(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    ab, ba = compare_series("m", a, b), compare_series("m", b, a)
    assert (ab.verdict, ab.first_differing_step, ab.first_beyond_tolerance_step) == (
        ba.verdict,
        ba.first_differing_step,
        ba.first_beyond_tolerance_step,
    )
    assert (ab.max_abs, ab.max_rel, ab.only_in_a) == (ba.max_abs, ba.max_rel, ba.only_in_b)


@settings(max_examples=200)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20),
    st.lists(st.floats(-1, 1), min_size=20, max_size=20),
    tolerances,
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_a_pair_within_a_tolerance_stays_within_any_looser_one(
    base: list[float], noise: list[float], tol: Tolerance, more_rtol: float, more_atol: float
) -> None:
    a = steps(*base)
    b = steps(*(x + n * abs(x) * 1e-3 for x, n in zip(base, noise, strict=False)))
    looser = Tolerance(tol.rtol + more_rtol, tol.atol + more_atol)
    tight, loose = compare_series("m", a, b, tol), compare_series("m", a, b, looser)
    if tight.verdict != "diverged":
        assert loose.verdict != "diverged"
    if tight.first_beyond_tolerance_step is None:
        assert loose.first_beyond_tolerance_step is None
    elif loose.first_beyond_tolerance_step is not None:
        assert loose.first_beyond_tolerance_step >= tight.first_beyond_tolerance_step


@given(series, series)
def test_the_first_non_finite_mismatch_is_symmetric(
    a: list[tuple[int, float]], b: list[tuple[int, float]]
) -> None:
    ab, ba = compare_series("m", a, b).first_nonfinite, compare_series("m", b, a).first_nonfinite
    assert (ab is None) == (ba is None)
    if ab is not None and ba is not None:
        assert ab[0] == ba[0]
        assert struct.pack("<dd", ab[1], ab[2]) == struct.pack("<dd", ba[2], ba[1])
