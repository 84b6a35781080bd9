"""Properties of the numeric core: ULP distance, identity, and tolerance monotonicity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from toolkit.compare import Tolerance, compare_arrays, ulp_distance

FLOAT_DTYPES = [np.float16, np.float32, np.float64]
BITS = {np.float16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}


def any_bits(dtype: type[np.floating]) -> st.SearchStrategy[np.ndarray]:
    """Every bit pattern of the dtype, NaNs and infinities included."""
    unsigned = BITS[dtype]
    return hnp.arrays(unsigned, st.integers(1, 30)).map(lambda bits: bits.view(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_known_distances(dtype: type[np.floating]) -> None:
    info = np.finfo(dtype)
    one, tiny = dtype(1), np.nextafter(dtype(0), dtype(1))
    pairs = [
        (one, np.nextafter(one, dtype(2)), 1),
        (dtype(-0.0), dtype(0.0), 1),
        (-tiny, tiny, 3),  # -tiny, -0, +0, +tiny
        (info.max, dtype(np.inf), 1),
        (dtype(0.0), dtype(0.0), 0),
        (
            dtype(-2.0),
            dtype(-1.0),
            int(np.array(2, dtype).view(BITS[dtype]) - np.array(1, dtype).view(BITS[dtype])),
        ),
    ]
    for a, b, expected in pairs:
        assert ulp_distance(np.array([a]), np.array([b]))[0] == expected, (a, b)


def test_float64_extremes_do_not_overflow() -> None:
    big = np.finfo(np.float64).max
    rank_of_max = int(np.array(big).view(np.uint64))
    assert int(ulp_distance(np.array([-big]), np.array([big]))[0]) == 2 * rank_of_max + 1


def test_mixed_dtypes_are_refused() -> None:
    with pytest.raises(TypeError):
        ulp_distance(np.zeros(2, np.float32), np.zeros(2, np.float64))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@settings(max_examples=150)
@given(data=st.data())
def test_ulp_is_symmetric_and_zero_only_for_equal_bits(
    dtype: type[np.floating], data: st.DataObject
) -> None:
    a = data.draw(any_bits(dtype))
    b = data.draw(hnp.arrays(BITS[dtype], a.shape)).view(dtype)
    b = np.where(data.draw(hnp.arrays(np.bool_, a.shape)), a, b)  # many equal pairs too
    keep = ~np.isnan(a) & ~np.isnan(b)
    a, b = a[keep], b[keep]
    forward, backward = ulp_distance(a, b), ulp_distance(b, a)
    assert np.array_equal(forward, backward)
    same_bits = a.view(BITS[dtype]) == b.view(BITS[dtype])
    assert np.array_equal(forward == 0, same_bits)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@settings(max_examples=150)
@given(data=st.data())
def test_ulp_follows_float_order(dtype: type[np.floating], data: st.DataObject) -> None:
    values = data.draw(any_bits(dtype))
    values = values[~np.isnan(values)]
    assume(values.size >= 3)
    low, mid, high = np.sort(values[:3].astype(np.float64)).astype(dtype)
    assume(low != mid != high)  # distinct in value: ±0 pairs are ordered by their bits alone
    # Ranks are a monotonic map of the float line, so distances add along it.
    total = int(ulp_distance(np.array([low]), np.array([high]))[0])
    parts = int(ulp_distance(np.array([low]), np.array([mid]))[0])
    parts += int(ulp_distance(np.array([mid]), np.array([high]))[0])
    assert total == parts


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.uint8, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=6),
    )
)
def test_an_array_compared_with_itself_is_identical(a: np.ndarray) -> None:
    diff = compare_arrays("x", a, a.copy())
    assert diff.verdict == "identical"
    assert (diff.differing, diff.beyond_tolerance, diff.nan_mismatches) == (0, 0, 0)


tolerances = st.builds(Tolerance, st.floats(0, 1e-2), st.floats(0, 1e-2))


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float32, 40, elements=st.floats(-1e3, 1e3, width=32)),
    hnp.arrays(np.float32, 40, elements=st.floats(-0.01, 0.01).map(np.float32)),
    tolerances,
    st.floats(0, 1e-2),
    st.floats(0, 1e-2),
)
def test_a_pair_within_a_tolerance_stays_within_any_looser_one(
    a: np.ndarray, noise: np.ndarray, tol: Tolerance, more_rtol: float, more_atol: float
) -> None:
    b = (a * (1 + noise) + noise * 1e-3).astype(np.float32)
    looser = Tolerance(tol.rtol + more_rtol, tol.atol + more_atol)
    tight, loose = compare_arrays("x", a, b, tol), compare_arrays("x", a, b, looser)
    assert loose.beyond_tolerance <= tight.beyond_tolerance
    if tight.verdict != "diverged":
        assert loose.verdict != "diverged"
