"""The hard budget invariant to the last ulp, in every summation order (issue 14, item 5).

``Allocation.usage`` and ``fractions @ requests`` must be ≤ the budget element-wise for every
policy and oracle, in 0/1 and divisible mode, whichever order the sums are taken in (row
order, BLAS, pairwise, sorted up or down, exact). The instances are built to sit on the
boundary: budgets that are float sums of a random subset of the requests (in a random order,
so another order rounds above them), non-dyadic requests (multiples of 0.1), integers, and
magnitudes spread over many binades.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from librex_alloc import RoundRequest, make_policy
from librex_alloc.budget_check import fits_any_order, repair
from librex_alloc.policies import BASELINES

NAMES = [cls.name for cls in BASELINES]


def _orders(fractions: np.ndarray, requests: np.ndarray) -> dict[str, np.ndarray]:
    """Per-resource totals of the granted resources, summed in several orders."""
    g = fractions[:, None] * requests
    rows = g[fractions > 0]
    k = requests.shape[1]
    out = {
        "matmul": fractions @ requests,
        "rows": np.cumsum(rows, axis=0)[-1] if len(rows) else np.zeros(k),
        "reversed": np.cumsum(rows[::-1], axis=0)[-1] if len(rows) else np.zeros(k),
        "pairwise": np.array([np.sum(g[:, j]) for j in range(k)]),
        "fsum": np.array([math.fsum(g[:, j]) for j in range(k)]),
    }
    srt = np.sort(g, axis=0)
    out["ascending"] = np.cumsum(srt, axis=0)[-1] if len(g) else np.zeros(k)
    out["descending"] = np.cumsum(srt[::-1], axis=0)[-1] if len(g) else np.zeros(k)
    return out


def assert_within_budget(a, requests, budget, where=""):
    assert np.all(a.usage <= budget), (where, a.usage, budget)
    for name, total in _orders(a.fractions, requests).items():
        assert np.all(total <= budget), (where, name, total, budget)


def _instance(rng: np.random.Generator, n: int, k: int, kind: str):
    """(ids, requests (n, k), budget (k,), pace) on the boundary of the budget."""
    if kind == "tenths":
        req = rng.integers(0, 40, size=(n, k)) / 10.0
    elif kind == "integers":
        req = rng.integers(0, 9, size=(n, k)).astype(float)
    elif kind == "binades":
        req = rng.uniform(0.5, 1.0, size=(n, k)) * 2.0 ** rng.integers(-30, 30, size=(n, k))
    else:
        req = rng.uniform(0.0, 3.0, size=(n, k))
    if rng.random() < 0.2:
        req[rng.random((n, k)) < 0.3] = 0.0
    subset = rng.permutation(np.flatnonzero(rng.random(n) < rng.uniform(0.2, 0.9)))
    budget = req[subset].sum(axis=0) if len(subset) else np.zeros(k)
    if rng.random() < 0.3:  # the same subset summed in another order: one ulp apart
        budget = np.array([math.fsum(req[subset, j]) for j in range(k)])
    n_agents = max(1, n - int(rng.integers(0, max(1, n // 3))))
    ids = [f"a{int(i)}" for i in rng.integers(0, n_agents, size=n)]
    pace = budget * rng.uniform(0.2, 1.0, size=k) if rng.random() < 0.5 else None
    return ids, req, budget, pace


def _policy(name: str, k: int, divisible: bool, seed: int):
    p = make_policy(name, n_resources=k, seed=seed, divisible=divisible, oracle="fast")
    return p


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 14), k=st.integers(1, 3),
       kind=st.sampled_from(["tenths", "integers", "binades", "uniform"]),
       divisible=st.booleans())
def test_usage_never_exceeds_the_budget_in_any_order(name, seed, n, k, kind, divisible):
    """Every policy, both modes, 3 rounds per example (4,200 decisions over the 14
    policies): ``usage`` and every order of ``fractions @ requests`` are ≤ the budget."""
    if name == "proportional-share":
        divisible = True
    rng = np.random.default_rng(seed)
    p = _policy(name, k, divisible, seed % 1000)
    for _ in range(3):
        ids, req, budget, pace = _instance(rng, n, k, kind)
        request = RoundRequest.build(ids, req, budget, pace=pace)
        if name == "oracle":
            p.set_true_means(ids, rng.random(n), options=request.options)
        a = p.allocate(request)
        assert np.all(a.fractions >= 0) and np.all(a.fractions <= 1)
        if not divisible:
            assert np.array_equal(a.fractions, a.selected.astype(float))
        assert_within_budget(a, req, budget, (name, divisible, kind))
        got = a.allocated_agents()
        if got:
            p.observe(a.round, got, rewards=rng.random(len(got)))


@pytest.mark.parametrize("oracle", ["fast", "auto", "exact"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30), k=st.integers(1, 3),
       kind=st.sampled_from(["tenths", "integers", "binades", "uniform"]),
       divisible=st.booleans())
def test_every_oracle_answer_is_within_budget_in_any_order(oracle, seed, n, k, kind,
                                                            divisible):
    """The oracle path of the policies (constrained TS), each oracle method."""
    rng = np.random.default_rng(seed)
    p = make_policy("constrained-ts", n_resources=k, seed=1, divisible=divisible,
                    oracle=oracle, time_limit=0.05)
    ids, req, budget, _ = _instance(rng, n, k, kind)
    a = p.allocate_batch(ids, req, budget)
    assert_within_budget(a, req, budget, (oracle, divisible, kind))


# ---------------------------------------------------------------------- the check itself
def test_a_one_ulp_excess_in_another_order_is_caught_and_repaired():
    """Three rows whose row-order sum equals the budget while another order rounds one ulp
    above it: the canonical check passes, the any-order check does not; the repair drops
    one row (0/1) or scales the rows down by a few ulps (divisible)."""
    req = np.array([[0.3], [0.2], [0.1]])
    budget = np.array([0.6])
    ones = np.ones(3)
    assert np.all(req.sum(axis=0) <= budget)  # row order: (0.3 + 0.2) + 0.1 == 0.6
    assert (0.1 + 0.2) + 0.3 > budget[0]  # ascending order: 0.6000000000000001
    assert not fits_any_order(ones, req, budget).all()
    fixed = repair(ones, req, budget, divisible=False, priority=np.array([0, 1, 2]))
    assert list(fixed) == [1.0, 1.0, 0.0]
    frac = repair(ones, req, budget, divisible=True)
    assert np.all(frac < 1.0) and np.all(frac > 1.0 - 1e-14)
    assert fits_any_order(frac, req, budget).all()


def test_integer_answers_that_fill_the_budget_exactly_are_kept():
    """Integer requests sum exactly in every order: a full budget is not a rounding risk."""
    req = np.array([[3.0, 1.0], [2.0, 4.0], [4.0, 13.0]])
    budget = req.sum(axis=0)
    ones = np.ones(3)
    assert fits_any_order(ones, req, budget).all()
    assert repair(ones, req, budget, divisible=False) is ones  # nothing to repair, no copy
    p = make_policy("constrained-ts", n_resources=2, seed=0, oracle="fast")
    a = p.allocate_batch(["a", "b", "c"], req, budget)
    assert a.selected.all() and np.array_equal(a.usage, budget)


def test_two_terms_meet_the_budget_exactly():
    """0.1 + 0.2 == 0.30000000000000004 in either order: one rounding, kept."""
    req = np.array([[0.1], [0.2]])
    assert fits_any_order(np.ones(2), req, np.array([0.1 + 0.2])).all()
    assert not fits_any_order(np.ones(2), req, np.array([0.3])).all()


def test_totals_beyond_float64_do_not_fit():
    req = np.array([[1e308], [1e308]])
    assert not fits_any_order(np.ones(2), req, np.array([1.5e308])).all()
    assert list(repair(np.ones(2), req, np.array([1.5e308]), divisible=False)) == [1.0, 0.0]
    frac = repair(np.ones(2), req, np.array([1.5e308]), divisible=True)
    assert fits_any_order(frac, req, np.array([1.5e308])).all() and frac.sum() > 1.49


@pytest.mark.parametrize("oracle", ["fast", "exact"])
def test_an_oracle_answer_over_budget_in_another_order_loses_its_lowest_value_row(oracle):
    """All three rows pass the oracle's row-order check ((0.3 + 0.2) + 0.1 == 0.6) but not
    the ascending order: the policy's guard drops the lowest-valued row and says so."""
    req = np.array([[0.3], [0.2], [0.1]])
    p = make_policy("constrained-ts", n_resources=1, seed=0, oracle=oracle)
    a = p.allocate_batch(["x", "y", "z"], req, [0.6])
    assert a.oracle.info.get("budget_repair") is True
    assert a.selected.sum() == 2 and not a.selected[int(np.argmin(a.values))]
    assert a.oracle.objective == pytest.approx(float(a.values @ a.fractions))
    assert_within_budget(a, req, np.array([0.6]))
