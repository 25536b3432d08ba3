"""Integer columns: a budget lowered to a multiple of the requests' gcd (``integer_budget``).

Under the canonical float check the selections that fit are the same, so every method's answer
stays valid and optimal where it was, and the bound is tighter than the plain LP's."""

import numpy as np
import oracle_reference
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from librex_alloc.oracles import solve
from librex_alloc.oracles._problem import EXACT_INT_SUM, integer_budget

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_lowers_integer_columns_to_a_multiple_of_the_gcd():
    req = np.array([[1.0, 20.0, 0.5, 3.0], [2.0, 30.0, 1.0, 3.0], [8.0, 50.0, 2.0, 6.0]])
    budget = np.array([10.75, 65.0, 2.75, 8.0])
    out = integer_budget(req, budget, np.ones(4, dtype=bool))
    # gcd 1: floor; gcd 10: 60; not integers: unchanged; gcd 3: 6
    assert out.tolist() == [10.0, 60.0, 2.75, 6.0]
    assert budget.tolist() == [10.75, 65.0, 2.75, 8.0]  # the caller's array is not touched
    only = integer_budget(req, budget, np.array([True, False, False, False]))
    assert only.tolist() == [10.0, 65.0, 2.75, 8.0]
    same = np.array([10.0, 60.0, 2.75, 6.0])
    assert integer_budget(req, same, np.ones(4, dtype=bool)) is same  # nothing to lower


def test_leaves_columns_whose_sums_are_not_exact():
    big = np.array([[EXACT_INT_SUM], [4.0]])  # the total exceeds 2^52: float sums may round
    assert integer_budget(big, np.array([EXACT_INT_SUM - 0.5]), np.array([True]))[0] == \
        EXACT_INT_SUM - 0.5
    zero = np.zeros((3, 1))  # gcd 0: nothing to lower
    assert integer_budget(zero, np.array([0.5]), np.array([True]))[0] == 0.5


def test_gpu_budget_tightens_the_bound():
    """36.75 GPUs hold 36: the certified gap of every method shrinks, the answers stay valid."""
    rng = np.random.default_rng(3)
    n = 150
    gpus = rng.choice([0.0, 1.0, 2.0, 8.0], n, p=[0.2, 0.5, 0.2, 0.1])
    cpu = rng.uniform(1.0, 16.0, n)
    req = np.column_stack([cpu, gpus])
    budget = 0.25 * req.sum(axis=0)
    budget[1] = np.floor(budget[1]) + 0.75
    values = rng.uniform(0.1, 1.0, n)
    lp = solve(values, req, budget, divisible=True)  # the plain LP (no lowering)
    for method in ("fast", "auto", "exact"):
        res = solve(values, req, budget, method=method, time_limit=2.0)
        oracle_reference.check_answer(res, values, req, budget)
        assert res.info["integer_budget"] == 1
        assert res.bound < lp.bound
    exact = solve(values, req, budget, method="exact", time_limit=5.0)
    lowered = budget.copy()
    lowered[1] = np.floor(budget[1])
    again = solve(values, req, lowered, method="exact", time_limit=5.0)
    assert exact.status == again.status == "optimal"
    assert exact.objective == again.objective


@st.composite
def integer_columns(draw):
    """Integer requests (some columns multiples of a gcd > 1), fractional budgets; mostly
    above ALL_MAX_ROWS rows, where fast takes the LP path."""
    n = draw(st.one_of(st.integers(0, 6), st.integers(13, 17)), label="n")
    k = draw(st.integers(1, 3), label="k")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    mult = rng.choice([1, 2, 3, 10], k)
    req = rng.integers(0, 9, (n, k)) * mult
    if n and draw(st.booleans(), label="one float column"):
        req = req.astype(np.float64)
        req[:, 0] += rng.uniform(0.0, 1.0, n)
    req = req.astype(np.float64)
    budget = req.sum(axis=0) * rng.uniform(0.1, 0.8, k) + rng.uniform(0.0, 1.0, k)
    values = np.round(rng.uniform(-0.2, 1.0, n), 3)
    groups = rng.integers(0, max(n // 2, 1), n) if draw(st.booleans(), label="groups") \
        else None
    return values, req, budget, groups


@settings(max_examples=400, **SETTINGS)
@given(integer_columns())
def test_every_method_against_brute_force(problem):
    values, req, budget, groups = problem
    opt = oracle_reference.brute_force(values, req, budget, groups)
    for method in ("fast", "auto", "exact"):
        res = solve(values, req, budget, groups=groups, method=method, time_limit=1.0)
        event(f"{method}: lowered={res.info.get('integer_budget', 0)} via={res.info.get('proof')}")
        oracle_reference.check_answer(res, values, req, budget, groups)
        assert res.bound >= float(opt) * (1.0 - 1e-12)  # a valid bound on the true optimum
        if method == "exact":
            assert res.status == "optimal"
            assert oracle_reference.exact_value(values, res.selected) == opt


@pytest.mark.parametrize("seed", range(5))
def test_larger_instances_agree_with_scip_on_the_unlowered_budget(seed):
    """On 60-120 rows (the LP path) an independent solver, the design's SCIP model on the
    caller's fractional budget, finds exact's optimum, and every method's bound covers it."""
    from librex_alloc.evaluation.reference import solve_scip_reference

    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 121))
    req = np.column_stack([rng.integers(1, 5, n) * 2, rng.integers(0, 9, n)]).astype(float)
    budget = req.sum(axis=0) * 0.3 + np.array([1.5, 0.6])
    values = rng.uniform(0.0, 1.0, n)
    ref = solve_scip_reference(values, req, budget, time_limit=20.0)
    assert ref.status == "optimal" and ref.info["float_feasible"]
    for method in ("fast", "auto", "exact"):
        res = solve(values, req, budget, method=method, time_limit=5.0)
        oracle_reference.check_answer(res, values, req, budget)
        assert res.info["integer_budget"] == 2
        assert res.bound >= ref.objective * (1.0 - 1e-9)
        if method == "exact":
            assert res.status == "optimal"
            assert abs(res.objective - ref.objective) <= 1e-6 * ref.objective
