"""Tests of librex_alloc.metrics against hand-computed and brute-force values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from librex_alloc.errors import InvalidInputError
from librex_alloc.metrics import (
    fairness_report,
    gini,
    jain,
    max_min_share_violation,
    min_max_ratio,
    sum_log_utility,
    utilization,
    variance,
)

utilities = st.lists(
    st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    min_size=1,
    max_size=40,
)


def brute_gini(x: np.ndarray) -> float:
    n = x.size
    if n <= 1 or x.sum() == 0:
        return 0.0
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * n * n * x.mean()))


# ----------------------------------------------------------------------------- gini
def test_gini_hand_computed():
    assert gini([1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.25)  # 20 / (2 * 16 * 2.5)
    assert gini([0.0, 0.0, 1.0]) == pytest.approx(2.0 / 3.0)  # (n - 1) / n
    assert gini([5.0, 5.0, 5.0]) == 0.0
    assert gini([3.0, 1.0]) == pytest.approx(0.25)  # 4 / (2 * 4 * 2)
    assert gini([0.0, 0.0]) == 0.0
    assert gini([7.0]) == 0.0
    assert gini([]) == 0.0
    assert isinstance(gini([1, 2]), float)


@settings(max_examples=150, deadline=None)
@given(utilities)
def test_gini_matches_brute_force(xs):
    x = np.array(xs)
    g = gini(x)
    assert g == pytest.approx(brute_gini(x), rel=1e-9, abs=1e-12)
    assert 0.0 <= g <= (x.size - 1) / x.size + 1e-12
    assert gini(x[::-1]) == pytest.approx(g, abs=1e-12)
    assert gini(3.5 * x) == pytest.approx(g, rel=1e-9, abs=1e-12)


def test_gini_huge_values_do_not_overflow():
    assert gini([1e308, 1e308, 0.0]) == pytest.approx(1.0 / 3.0)


# ----------------------------------------------------------------------------- jain
def test_jain_hand_computed():
    assert jain([1.0, 2.0, 3.0, 4.0]) == pytest.approx(100.0 / 120.0)
    assert jain([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert jain([2.0, 2.0]) == 1.0
    assert jain([0.0, 0.0, 0.0]) == 1.0
    assert math.isnan(jain([]))
    assert jain([1e300, 1e300]) == pytest.approx(1.0)


@settings(max_examples=150, deadline=None)
@given(utilities)
def test_jain_bounds_and_formula(xs):
    x = np.array(xs)
    j = jain(x)
    n = x.size
    assert 1.0 / n - 1e-12 <= j <= 1.0 + 1e-12
    assert jain(x[::-1]) == pytest.approx(j, rel=1e-12)  # permutation invariant
    if x.sum() > 0:
        assert jain(7.25 * x) == pytest.approx(j, rel=1e-9)  # scale invariant


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(0, 40), st.floats(1e-6, 1e6))
def test_jain_known_answer_k_of_n_equal(k, zeros, level):
    """k agents with the same positive utility and the rest with none: Jain = k / n exactly
    (Jain, Chiu & Hawe 1984: "the fraction of users treated fairly")."""
    x = np.concatenate([np.full(k, level), np.zeros(zeros)])
    assert jain(x) == pytest.approx(k / (k + zeros), rel=1e-12)


# ----------------------------------------------------------------------------- others
def test_min_max_ratio():
    assert min_max_ratio([2.0, 4.0, 8.0]) == 0.25
    assert min_max_ratio([0.0, 3.0]) == 0.0
    assert min_max_ratio([0.0, 0.0]) == 1.0
    assert min_max_ratio([5.0]) == 1.0
    assert math.isnan(min_max_ratio([]))


def test_variance():
    assert variance([1.0, 2.0, 3.0, 4.0]) == pytest.approx(1.25)
    assert variance([-1.0, 1.0]) == pytest.approx(1.0)  # negatives allowed
    assert variance([3.0]) == 0.0
    assert math.isnan(variance([]))


def test_sum_log_utility():
    assert sum_log_utility([1.0, math.e, math.e**2]) == pytest.approx(3.0)
    assert sum_log_utility([0.0, 1.0]) == pytest.approx(math.log(1e-9))
    assert sum_log_utility([0.0, -5.0], eps=0.5) == pytest.approx(2 * math.log(0.5))
    assert sum_log_utility([]) == 0.0
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(InvalidInputError):
            sum_log_utility([1.0], eps=bad)


def test_max_min_share_violation():
    rho = [0.5, 0.2, 0.0, 1.0]
    t = [10, 10, 10, 4]
    served = [3, 5, 0, 4]
    # shortfalls: 5-3=2, 2-5<0, 0, 4-4=0
    assert max_min_share_violation(rho, t, served) == pytest.approx(2.0)
    assert max_min_share_violation([0.5], [10], [9]) == 0.0
    assert max_min_share_violation([], [], []) == 0.0
    with pytest.raises(InvalidInputError):
        max_min_share_violation([0.5, 0.5], [10], [1, 1])
    with pytest.raises(InvalidInputError):
        max_min_share_violation([0.5], [10], [1, 1])
    with pytest.raises(InvalidInputError):
        max_min_share_violation([1.5], [10], [1])
    with pytest.raises(InvalidInputError):
        max_min_share_violation([0.5], [np.nan], [1])
    with pytest.raises(InvalidInputError):
        max_min_share_violation([0.5], [10], [-1])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.integers(0, 1000), st.integers(0, 1000)),
        max_size=20,
    )
)
def test_max_min_share_violation_brute_force(rows):
    rho = [r for r, _, _ in rows]
    t = [a for _, a, _ in rows]
    served = [s for _, _, s in rows]
    expect = max([max(r * a - s, 0.0) for r, a, s in rows], default=0.0)
    assert max_min_share_violation(rho, t, served) == pytest.approx(expect)


def test_utilization_1d_and_2d():
    np.testing.assert_allclose(utilization([1.0, 0.0, 3.0], [2.0, 4.0, 3.0]), [0.5, 0.0, 1.0])
    used = np.array([[1.0, 2.0], [3.0, 0.0]])
    np.testing.assert_allclose(utilization(used, [4.0, 4.0]), [0.5, 0.25])  # 4/8, 2/8
    budget = np.array([[2.0, 4.0], [6.0, 4.0]])
    np.testing.assert_allclose(utilization(used, budget), [0.5, 0.25])  # 4/8, 2/8
    budget = np.array([[1.0, 4.0], [3.0, 0.0]])
    np.testing.assert_allclose(utilization(used, budget), [1.0, 0.5])  # 4/4, 2/4


def test_utilization_zero_budget():
    out = utilization([0.0, 1.0, 2.0], [0.0, 0.0, 4.0])
    assert out[0] == 0.0 and out[1] == np.inf and out[2] == 0.5
    assert out.shape == (3,)
    np.testing.assert_array_equal(utilization(np.zeros((0, 2)), [1.0, 1.0]), [0.0, 0.0])


def test_utilization_validation():
    for used, budget in [
        ([1.0, 2.0], [1.0]),
        ([[1.0, 2.0]], [[1.0, 2.0], [1.0, 2.0]]),
        ([1.0], [[1.0]]),
        (np.ones((2, 2, 2)), [1.0, 1.0]),
        ([np.nan], [1.0]),
        ([1.0], [np.inf]),
        ([-1.0], [1.0]),
        ([1.0], [-1.0]),
        (1.0, 1.0),
    ]:
        with pytest.raises(InvalidInputError):
            utilization(used, budget)


@pytest.mark.parametrize("fn", [gini, jain, min_max_ratio])
def test_negative_utilities_rejected(fn):
    with pytest.raises(InvalidInputError):
        fn([1.0, -0.5])


@pytest.mark.parametrize("fn", [gini, jain, min_max_ratio, variance, sum_log_utility])
@pytest.mark.parametrize("bad", [[1.0, np.nan], [np.inf, 1.0], [[1.0, 2.0]], 3.0, ["a"]])
def test_invalid_vectors_rejected(fn, bad):
    with pytest.raises(InvalidInputError):
        fn(bad)


def test_fairness_report():
    x = [1.0, 2.0, 3.0, 4.0]
    report = fairness_report(x)
    assert set(report) == {"gini", "jain", "min_max_ratio", "variance", "sum_log_utility"}
    assert report["gini"] == pytest.approx(0.25)
    assert report["jain"] == pytest.approx(100.0 / 120.0)
    assert report["min_max_ratio"] == 0.25
    assert report["variance"] == pytest.approx(1.25)
    assert report["sum_log_utility"] == pytest.approx(math.log(24.0))
    assert all(isinstance(v, float) for v in report.values())
    with pytest.raises(InvalidInputError):
        fairness_report([1.0, -1.0])
