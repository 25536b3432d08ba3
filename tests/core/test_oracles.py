"""Tests of librex_alloc.oracles.solve and librex_alloc.datasets.

Invariants checked on every answer (the canonical checks): the float64 budget check
``requests[selected].sum(axis=0) <= budget`` (``fractions @ requests <= budget`` when divisible,
in other summation orders too), at most one selected row (positive fraction) per group, no row
with value <= 0 selected, ``objective`` equal to the value of the selection, ``bound >=
objective``, and the certificate of ``status == "optimal"``. Optimality is checked against
OR-Library's proven optima and against brute-force enumeration; magnitudes, scale invariance
and honest statuses in tests/core/test_oracle_scale.py.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import oracle_reference
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from librex_alloc.datasets import MknapInstance, load_mknap, parse_mknap
from librex_alloc.errors import InvalidConfigError, InvalidInputError, LibrexError
from librex_alloc.oracles import OracleResult, solve

DATA = Path(__file__).parents[1] / "data"
MKNAP1 = DATA / "mknap1.txt"
#: (n, m, opt) of the 7 mknap1 instances, from tests/data/SOURCE.md.
MKNAP1_SHAPES = [
    (6, 10, 3800.0),
    (10, 10, 8706.1),
    (15, 10, 4015.0),
    (20, 10, 6120.0),
    (28, 10, 12400.0),
    (39, 5, 10618.0),
    (50, 5, 16537.0),
]
PROPERTY_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXACT_TIME = 0.2
#: ``status == "optimal"`` certifies ``objective >= bound - OPT_RTOL·|bound|``.
OPT_RTOL = 1e-9


# ----------------------------------------------------------------------------- helpers


def assert_valid(res: OracleResult, values, requests, budget, groups=None, *,
                 divisible: bool = False, methods=None) -> None:
    """Every invariant an oracle answer must satisfy, whatever the method."""
    values = np.asarray(values, dtype=np.float64)
    requests = np.asarray(requests, dtype=np.float64)
    budget = np.asarray(budget, dtype=np.float64)
    n = values.shape[0]
    assert isinstance(res, OracleResult)
    assert res.selected.dtype == np.bool_ and res.selected.shape == (n,)
    assert res.fractions.shape == (n,)
    assert res.status in ("optimal", "feasible")
    if methods is not None:
        assert res.method in methods
    assert np.isfinite(res.objective) and np.isfinite(res.bound)
    assert res.solve_time >= 0
    # the bound certifies the answer; "optimal" means the certificate closes (OracleResult)
    assert res.bound >= res.objective
    if res.status == "optimal":
        assert res.objective >= res.bound - OPT_RTOL * abs(res.bound)
    frac = res.fractions
    if divisible:
        assert np.all(frac >= 0.0) and np.all(frac <= 1.0)
        assert np.all(frac @ requests <= budget)  # the canonical check
        # ... and in other summation orders too
        assert np.all((frac[:, None] * requests).sum(axis=0) <= budget)
        assert np.all(np.sum([f * r for f, r in zip(frac, requests, strict=True)], axis=0)
                      <= budget) if n else True
        assert np.all(frac[values <= 0] == 0.0)
        assert np.array_equal(res.selected, frac > 0)
        if groups is not None and n:
            _, gid = np.unique(np.asarray(groups), return_inverse=True)
            # at most one option of an agent gets a positive fraction
            assert np.bincount(gid.reshape(-1), weights=frac > 0).max() <= 1
        value = float(values @ frac) if n else 0.0
    else:
        sel = res.selected
        assert np.array_equal(frac, sel.astype(np.float64))
        assert np.all(requests[sel].sum(axis=0) <= budget)  # the canonical check
        assert not np.any(sel & (values <= 0))
        if groups is not None and sel.any():
            _, counts = np.unique(np.asarray(groups)[sel], return_counts=True)
            assert counts.max() == 1
        value = float(values[sel].sum())
    assert abs(res.objective - value) <= 1e-12 * (1.0 + abs(value))


def _labels(rng: np.random.Generator, n: int, mode: str) -> np.ndarray | None:
    if mode == "none" or n == 0:
        return None
    if mode == "options":  # agents with 1..5 options each, contiguous rows
        sizes = rng.integers(1, 6, size=n)
        return np.repeat(np.arange(n), sizes)[:n]
    if mode == "scattered":  # arbitrary (negative, sparse, unordered) labels
        return rng.integers(-40, 40, size=n) * 7
    if mode == "one_group":
        return np.full(n, 3)
    if mode == "own_labels":  # every row its own group, labels permuted
        return rng.permutation(n) + 100
    raise AssertionError(mode)


@st.composite
def problems(draw, max_n: int = 300, max_k: int = 10, allow_groups: bool = True,
             min_n: int = 0):
    """(values, requests, budget, groups) with degenerate cases well represented.

    Structure (sizes and modes) is drawn by hypothesis; the numbers come from a numpy
    generator seeded by hypothesis, so a failure is reproducible from the printed draws.
    """
    if min_n:
        n = draw(st.integers(min_n, max_n), label="n")
    else:
        size = draw(st.sampled_from(["medium"] * 5 + ["small"] * 2 + ["tiny"]), label="size")
        low, high = {"tiny": (0, 1), "small": (2, 12), "medium": (13, max(13, max_n))}[size]
        n = draw(st.integers(low, high), label="n")
    k = draw(st.one_of(st.integers(1, min(3, max_k)), st.integers(1, max_k)), label="k")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    # repeated entries weight the draw toward instances with a binding budget
    vmode = draw(st.sampled_from(
        ["uniform"] * 3 + ["mixed"] * 2 + ["nonpositive", "ties", "int", "wide"]), label="values")
    rmode = draw(st.sampled_from(
        ["uniform"] * 3 + ["ties", "some_zero", "all_zero", "int", "wide", "one_dim"]),
        label="requests")
    bmode = draw(st.sampled_from(
        ["fraction"] * 6 + ["exact_fit"] * 2 + ["zero_all", "zero_some", "tiny", "ample",
                                                "below_max"]), label="budget")
    gmode = draw(st.sampled_from(
        ["none"] * 2 + ["options"] * 2 + ["scattered", "one_group", "own_labels"] if allow_groups
        else ["none"]), label="groups")
    oversize = draw(st.booleans(), label="oversize")
    rng = np.random.default_rng(seed)

    if vmode == "uniform":
        values = rng.uniform(0.0, 1.0, n)
    elif vmode == "mixed":
        values = rng.uniform(-1.0, 1.0, n)
    elif vmode == "nonpositive":
        values = np.where(rng.random(n) < 0.3, 0.0, -rng.uniform(0.0, 1.0, n))
    elif vmode == "ties":
        values = rng.choice([0.0, 1.0, 1.0, 1.0, 2.0], n)
    elif vmode == "int":
        values = rng.integers(-2, 21, n).astype(np.float64)
    else:
        values = 10.0 ** rng.uniform(-6, 6, n)

    if rmode == "uniform":
        requests = rng.uniform(0.0, 10.0, (n, k))
    elif rmode == "ties":
        requests = np.ones((n, k)) if rng.random() < 0.5 else rng.choice([1.0, 2.0], (n, k))
    elif rmode == "some_zero":
        requests = np.where(rng.random((n, k)) < 0.5, 0.0, rng.uniform(0.0, 10.0, (n, k)))
    elif rmode == "all_zero":
        requests = np.zeros((n, k))
    elif rmode == "int":
        requests = rng.integers(0, 11, (n, k)).astype(np.float64)
    elif rmode == "wide":
        requests = 10.0 ** rng.uniform(-4, 4, (n, k))
    else:  # every row uses exactly one resource
        requests = np.zeros((n, k))
        if n:
            requests[np.arange(n), rng.integers(0, k, n)] = rng.uniform(0.5, 5.0, n)

    total = requests.sum(axis=0)
    if bmode == "fraction":
        budget = total * rng.uniform(0.05, 0.9, k)
    elif bmode == "zero_all":
        budget = np.zeros(k)
    elif bmode == "zero_some":
        budget = total * rng.uniform(0.05, 0.9, k)
        budget[rng.random(k) < 0.5] = 0.0
        budget[rng.integers(0, k)] = 0.0
    elif bmode == "tiny":
        budget = total * 1e-3
    elif bmode == "ample":
        budget = total * 1.5 + 1.0
    elif bmode == "below_max":  # many rows do not fit on their own
        budget = requests.max(axis=0, initial=0.0) * rng.uniform(0.0, 1.0, k)
    else:  # a random subset fits with equality in float64
        budget = requests[rng.random(n) < 0.4].sum(axis=0)

    if oversize and n:  # some rows request more than the whole budget
        big = rng.random(n) < 0.2
        requests[big] = requests[big] * 3.0 + budget * 2.0 + 1.0
    return values, requests, budget, _labels(rng, n, gmode)


@st.composite
def integer_problems(draw, max_n: int = 12):
    """Small integer instances for brute force, with and without groups."""
    n = draw(st.integers(0, max_n), label="n")
    k = draw(st.integers(1, 4), label="k")
    ints = st.integers(0, 12)
    values = draw(st.lists(st.integers(-5, 30), min_size=n, max_size=n), label="values")
    requests = draw(st.lists(st.lists(ints, min_size=k, max_size=k), min_size=n, max_size=n),
                    label="requests")
    budget = draw(st.lists(st.integers(0, 40), min_size=k, max_size=k), label="budget")
    groups = draw(st.one_of(st.none(), st.lists(st.integers(0, 4), min_size=n, max_size=n)),
                  label="groups")
    return (np.array(values, dtype=np.float64), np.array(requests, dtype=np.float64).reshape(n, k),
            np.array(budget, dtype=np.float64), None if groups is None else np.array(groups))


def brute_force(values, requests, budget, groups=None) -> float:
    """Optimum by enumerating every subset (the shared reference; exact on integer data)."""
    return float(oracle_reference.brute_force(values, requests, budget, groups))


def fractional_knapsack(values, requests, capacity) -> float:
    """Classic fractional knapsack (K = 1): greedy by v/r, one fractional item."""
    best, room = 0.0, float(capacity)
    pos = values > 0
    free = pos & (requests == 0)
    best += float(values[free].sum())
    idx = np.nonzero(pos & (requests > 0))[0]
    idx = idx[np.argsort(-(values[idx] / requests[idx]), kind="stable")]
    for i in idx:
        if requests[i] <= room:
            best += values[i]
            room -= requests[i]
        else:
            best += values[i] * room / requests[i]
            break
    return best


def random_instance(seed: int, n: int, k: int, *, groups: int | None = None, frac=0.3):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, n)
    requests = rng.uniform(1.0, 10.0, (n, k))
    budget = frac * requests.sum(axis=0)
    # `groups` agents with n // groups options each, rows in random order
    labels = None if groups is None else rng.permutation(np.arange(n) % groups)
    return values, requests, budget, labels


# ----------------------------------------------------------------------------- OR-Library


@pytest.fixture(scope="module")
def mknap1() -> list[MknapInstance]:
    return load_mknap(MKNAP1)


@pytest.mark.parametrize("method", ["exact", "auto"])
@pytest.mark.parametrize("index", range(7))
def test_mknap1_proven_optimum(mknap1, method, index):
    """With ``gap_tolerance=0`` (exact's default) both prove OR-Library's optima."""
    inst = mknap1[index]
    res = solve(inst.profits, inst.weights, inst.capacities, method=method, gap_tolerance=0.0)
    assert_valid(res, inst.profits, inst.weights, inst.capacities)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(inst.optimum, rel=1e-6)
    assert res.bound == pytest.approx(inst.optimum, rel=1e-6)


@pytest.mark.parametrize("index", range(7))
def test_mknap1_auto_within_its_gap_tolerance(mknap1, index):
    """By default ``auto`` runs no CP-SAT (enumeration, the LP, local search and branching
    only): a valid answer and bound, within 0.5 % of OR-Library's optimum on these instances.
    Given a time limit it searches until its certified gap is within DEFAULT_GAP_TOLERANCE."""
    from librex_alloc.oracles.solver import DEFAULT_GAP_TOLERANCE

    inst = mknap1[index]
    res = solve(inst.profits, inst.weights, inst.capacities, method="auto")
    assert_valid(res, inst.profits, inst.weights, inst.capacities)
    assert "exact_status" not in res.info
    assert res.objective >= inst.optimum * (1 - 5e-3)
    assert res.bound >= inst.optimum * (1 - 1e-9)
    res = solve(inst.profits, inst.weights, inst.capacities, method="auto", time_limit=5.0)
    assert_valid(res, inst.profits, inst.weights, inst.capacities)
    assert res.gap <= DEFAULT_GAP_TOLERANCE["auto"]
    assert res.objective >= inst.optimum * (1 - DEFAULT_GAP_TOLERANCE["auto"])
    assert res.bound >= inst.optimum * (1 - 1e-9)


@pytest.mark.parametrize("index", range(7))
def test_mknap1_fast_is_feasible_and_bounded(mknap1, index):
    inst = mknap1[index]
    res = solve(inst.profits, inst.weights, inst.capacities, method="fast")
    assert_valid(res, inst.profits, inst.weights, inst.capacities, methods=("fast",))
    assert res.objective <= inst.optimum * (1 + 1e-9)
    assert res.bound >= inst.optimum * (1 - 1e-9)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=2500, **PROPERTY_SETTINGS)
@given(problems())
def test_property_fast(problem):
    values, requests, budget, groups = problem
    res = solve(values, requests, budget, groups=groups, method="fast")
    event(f"method={res.method}")
    assert_valid(res, values, requests, budget, groups, methods=("fast", "trivial"))


@settings(max_examples=150, **PROPERTY_SETTINGS)
@given(problems(min_n=601, max_n=2500, max_k=6))
def test_property_fast_working_set(problem):
    """Above FULL_LP_ROWS the relaxation is solved on a working set of rows."""
    values, requests, budget, groups = problem
    res = solve(values, requests, budget, groups=groups, method="fast")
    event(f"method={res.method}")
    assert_valid(res, values, requests, budget, groups, methods=("fast", "trivial"))
    lp = solve(values, requests, budget, groups=groups, divisible=True)
    assert_valid(lp, values, requests, budget, groups, divisible=True, methods=("lp", "trivial"))
    assert lp.bound >= res.objective - 1e-9 * (1.0 + abs(res.objective))


@pytest.mark.parametrize("method", ["exact", "auto"])
@settings(max_examples=600, **PROPERTY_SETTINGS)
@given(problem=problems())
def test_property_exact_and_auto(method, problem):
    values, requests, budget, groups = problem
    res = solve(values, requests, budget, groups=groups, method=method, time_limit=EXACT_TIME)
    event(f"method={res.method}")
    assert_valid(res, values, requests, budget, groups, methods=("exact", "fast", "trivial"))
    fast = solve(values, requests, budget, groups=groups, method="fast")
    assert res.objective >= fast.objective  # both start from the fast answer


@settings(max_examples=1500, **PROPERTY_SETTINGS)
@given(problems())
def test_property_divisible(problem):
    values, requests, budget, groups = problem
    res = solve(values, requests, budget, groups=groups, divisible=True)
    event(f"method={res.method}")
    assert_valid(res, values, requests, budget, groups, divisible=True, methods=("lp", "trivial"))
    # the LP relaxation is at least as good as any integral answer
    fast = solve(values, requests, budget, groups=groups, method="fast")
    assert res.bound >= fast.objective - 1e-9 * (1.0 + abs(fast.objective))


@settings(max_examples=500, **PROPERTY_SETTINGS)
@given(integer_problems())
def test_exact_matches_brute_force(problem):
    values, requests, budget, groups = problem
    opt = brute_force(values, requests, budget, groups)
    res = solve(values, requests, budget, groups=groups, method="exact")
    assert_valid(res, values, requests, budget, groups)
    assert res.status == "optimal"
    assert res.objective == opt
    for method in ("fast", "auto"):
        other = solve(values, requests, budget, groups=groups, method=method)
        assert_valid(other, values, requests, budget, groups)
        assert other.objective <= opt
        assert other.bound >= opt - 1e-9 * (1.0 + opt)  # a valid certificate
        if other.status == "optimal":
            assert other.objective == opt
    lp = solve(values, requests, budget, groups=groups, divisible=True)
    assert lp.bound >= opt - 1e-9 * (1.0 + opt)


def test_brute_force_reference_is_right():
    """The reference itself, on a hand-solved instance."""
    values = np.array([6.0, 5.0, 5.0, -1.0])
    requests = np.array([[3.0], [2.0], [2.0], [0.0]])
    assert brute_force(values, requests, np.array([4.0])) == 10.0
    assert brute_force(values, requests, np.array([4.0]), np.array([0, 1, 1, 2])) == 6.0
    assert brute_force(values, requests, np.array([1.0])) == 0.0


# ----------------------------------------------------------------------------- hand cases


@pytest.mark.parametrize("method", ["fast", "exact", "auto"])
def test_small_hand_cases(method):
    # density beats raw value: two light items beat one heavy one
    res = solve([6.0, 5.0, 5.0], [[3.0], [2.0], [2.0]], [4.0], method=method)
    assert res.objective == 10.0 and res.selected.tolist() == [False, True, True]
    # groups: the best single option of the agent
    res = solve([6.0, 5.0, 5.0], [[3.0], [2.0], [2.0]], [4.0], groups=[0, 0, 0], method=method)
    assert res.objective == 6.0 and res.selected.tolist() == [True, False, False]
    # zero budget: only zero-request rows; non-positive values never chosen
    res = solve([1.0, 2.0, 0.0, -1.0], [[0.0], [1.0], [0.0], [0.0]], [0.0], method=method)
    assert res.selected.tolist() == [True, False, False, False]
    # nothing positive, empty problem
    assert not solve([-1.0, 0.0], [[0.0], [0.0]], [1.0], method=method).selected.any()
    empty = solve(np.zeros(0), np.zeros((0, 2)), [1.0, 1.0], method=method)
    assert empty.selected.shape == (0,) and empty.objective == 0.0 and empty.bound == 0.0


# ----------------------------------------------------------------------------- large instances


def _check_large(values, requests, budget, groups=None):
    res = solve(values, requests, budget, groups=groups, method="fast")
    assert_valid(res, values, requests, budget, groups, methods=("fast",))
    assert res.objective >= (1.0 - 0.005) * res.bound
    return res


@pytest.mark.parametrize("k", [3, 10])
def test_large_fast_10k(k):
    values, requests, budget, _ = random_instance(100 + k, 10_000, k)
    _check_large(values, requests, budget)
    lp = solve(values, requests, budget, divisible=True)
    assert_valid(lp, values, requests, budget, divisible=True)


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 10])
def test_large_fast_100k(k):
    values, requests, budget, _ = random_instance(200 + k, 100_000, k)
    _check_large(values, requests, budget)


def test_large_fast_grouped():
    values, requests, budget, groups = random_instance(7, 30_000, 3, groups=10_000)
    assert len(np.unique(groups)) == 10_000
    _check_large(values, requests, budget, groups)


# ----------------------------------------------------------------------------- quality


def test_fast_close_to_exact_on_average():
    ratios = []
    for seed in range(30):
        values, requests, budget, _ = random_instance(1000 + seed, 50, 3)
        exact = solve(values, requests, budget, method="exact")
        fast = solve(values, requests, budget, method="fast")
        assert exact.status == "optimal"  # certified: objective meets the proven bound
        assert fast.objective <= exact.objective * (1 + 1e-12)
        ratios.append(fast.objective / exact.objective)
    assert np.mean(ratios) >= 0.99


# ----------------------------------------------------------------------------- determinism


def _determinism_cases():
    yield "small", random_instance(11, 40, 3)
    yield "grouped", random_instance(12, 900, 4, groups=300)
    yield "working_set", random_instance(13, 3_000, 5)


@pytest.mark.parametrize("method,time_limit", [("fast", None), ("exact", EXACT_TIME),
                                               ("auto", EXACT_TIME), ("divisible", None)])
@pytest.mark.parametrize("case", ["small", "grouped", "working_set"])
def test_deterministic(case, method, time_limit):
    values, requests, budget, groups = dict(_determinism_cases())[case]
    kwargs = dict(groups=groups, time_limit=time_limit)
    if method == "divisible":
        kwargs["divisible"] = True
    else:
        kwargs["method"] = method
    first = solve(values.copy(), requests.copy(), budget.copy(), **kwargs)
    second = solve(values.copy(), requests.copy(), budget.copy(), **kwargs)
    assert np.array_equal(first.selected, second.selected)
    assert np.array_equal(first.fractions, second.fractions)
    assert first.objective == second.objective
    assert first.bound == second.bound
    assert first.status == second.status and first.method == second.method


# ----------------------------------------------------------------------------- divisible


def test_fractional_knapsack_reference_is_right():
    values = np.array([60.0, 100.0, 120.0, 5.0, -3.0])
    requests = np.array([10.0, 20.0, 30.0, 0.0, 1.0])
    assert fractional_knapsack(values, requests, 50.0) == pytest.approx(245.0)


@settings(max_examples=500, **PROPERTY_SETTINGS)
@given(problems(max_n=300, max_k=1, allow_groups=False))
def test_divisible_k1_is_fractional_knapsack(problem):
    values, requests, budget, _ = problem
    res = solve(values, requests, budget, divisible=True)
    assert_valid(res, values, requests, budget, divisible=True)
    want = fractional_knapsack(values, requests[:, 0], budget[0])
    assert res.objective == pytest.approx(want, rel=1e-6, abs=1e-9)  # HiGHS tolerances
    assert res.bound >= want - 1e-9 * (1.0 + want)


def test_divisible_k1_item_larger_than_budget():
    res = solve([10.0], [[2.0]], [1.0], divisible=True)
    assert res.objective == pytest.approx(5.0)
    assert res.fractions.tolist() == [0.5]


def test_divisible_canonical_budget_check_regression():
    """Once failed by an ulp: the fractions were checked on a column subset only."""
    values = [0.1914895523452701, 0.7597127404693617, 0.07545869649816772]
    requests = np.array([[4.304, 8.152], [2.581, 6.07], [4.93, 0.009]])
    budget = np.array([5.180901924791626, 12.759384749231778])
    res = solve(values, requests, budget, divisible=True)
    assert np.all(res.fractions @ requests <= budget)


def test_divisible_group_sum_reproducer():
    values = [19.0, 11.0, 5.0, 19.0, 8.0, 4.0, 16.0]
    requests = np.array([[4.0, 9.0], [9.0, 9.0], [0.0, 7.0], [8.0, 5.0], [9.0, 6.0], [8.0, 1.0],
                         [2.0, 8.0]])
    budget = np.array([12.151643077559026, 24.35981108282524])
    groups = np.array([3, 2, 0, 3, 0, 2, 2])
    res = solve(values, requests, budget, groups=groups, divisible=True)
    assert res.fractions[groups == 0].sum() <= 1.0


# ----------------------------------------------------------------------------- invalid input

V, R, B = np.array([1.0, 2.0]), np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 1.0])


def _with(a, index, x):
    a = a.copy()
    a[index] = x
    return a


INVALID_INPUTS = {
    "values_nan": (_with(V, 0, np.nan), R, B, None),
    "values_inf": (_with(V, 1, np.inf), R, B, None),
    "values_neg_inf": (_with(V, 1, -np.inf), R, B, None),
    "requests_nan": (V, _with(R, (0, 1), np.nan), B, None),
    "requests_inf": (V, _with(R, (1, 0), np.inf), B, None),
    "requests_negative": (V, _with(R, (1, 1), -1.0), B, None),
    "budget_nan": (V, R, _with(B, 0, np.nan), None),
    "budget_inf": (V, R, _with(B, 1, np.inf), None),
    "budget_negative": (V, R, _with(B, 0, -0.5), None),
    "requests_1d": (V, np.array([1.0, 1.0]), np.array([1.0]), None),
    "requests_wrong_k": (V, np.ones((2, 3)), B, None),
    "requests_wrong_n": (V, np.ones((3, 2)), B, None),
    "requests_transposed": (np.ones(3), np.ones((2, 3)), B, None),
    "budget_2d": (V, R, B.reshape(1, 2), None),
    "budget_scalar": (V, R, 1.0, None),
    "values_2d": (V.reshape(1, 2), R, B, None),
    "values_text": (np.array(["a", "b"]), R, B, None),
    "groups_short": (V, R, B, [0]),
    "groups_long": (V, R, B, [0, 1, 2]),
    "groups_fractional": (V, R, B, [0.0, 1.5]),
    "groups_nan": (V, R, B, [0.0, np.nan]),
    "groups_text": (V, R, B, ["a", "b"]),
    "groups_2d": (V, R, B, [[0, 1]]),
}


@pytest.mark.parametrize("method", ["fast", "exact", "auto"])
@pytest.mark.parametrize("case", sorted(INVALID_INPUTS))
def test_invalid_input(case, method):
    values, requests, budget, groups = INVALID_INPUTS[case]
    with pytest.raises(InvalidInputError):
        solve(values, requests, budget, groups=groups, method=method)
    with pytest.raises(ValueError):
        solve(values, requests, budget, groups=groups, method=method, divisible=True)


@pytest.mark.parametrize("kwargs", [
    dict(method="greedy"), dict(method="EXACT"), dict(method=None),
    dict(time_limit=0), dict(time_limit=-1.0), dict(time_limit=float("nan")),
    dict(time_limit=float("inf")), dict(time_limit="1"),
    dict(method="exact", time_limit=0.0),
])
def test_invalid_config(kwargs):
    with pytest.raises(InvalidConfigError):
        solve(V, R, B, **kwargs)


def test_error_hierarchy():
    for cls in (InvalidInputError, InvalidConfigError):
        assert issubclass(cls, LibrexError) and issubclass(cls, ValueError)
    with pytest.raises(ValueError):
        solve(V, R, -B)
    with pytest.raises(ValueError):
        solve(V, R, B, method="nope")


def test_valid_groups_accept_integral_floats_and_bools():
    for groups in ([0.0, 0.0], np.array([True, True]), np.array([7, 7], dtype=np.uint8)):
        res = solve([1.0, 2.0], [[0.0], [0.0]], [1.0], groups=groups, method="fast")
        assert res.selected.tolist() == [False, True]


# ----------------------------------------------------------------------------- datasets


def test_mknap1_file_matches_source_md():
    digest = hashlib.sha256(MKNAP1.read_bytes()).hexdigest()
    source = (DATA / "SOURCE.md").read_text(encoding="utf-8")
    row = re.search(r"`mknap1\.txt` \| 4,384 \| 136 \| `([0-9a-f]{64})`", source)
    assert row is not None and row.group(1) == digest


def test_load_mknap1(mknap1):
    assert len(mknap1) == 7
    for inst, (n, m, opt) in zip(mknap1, MKNAP1_SHAPES, strict=True):
        assert (inst.n, inst.m, inst.optimum) == (n, m, opt)
        assert inst.profits.shape == (n,) and inst.weights.shape == (n, m)
        assert inst.capacities.shape == (m,)
        for a in (inst.profits, inst.weights, inst.capacities):
            assert a.dtype == np.float64 and not a.flags.writeable
    first = mknap1[0]
    assert first.profits.tolist() == [100, 600, 1200, 2400, 500, 2000]
    # weights are items x resources: the file's first constraint row is column 0
    assert first.weights[:, 0].tolist() == [8, 12, 13, 64, 22, 41]
    assert first.weights[4].tolist() == [22, 22, 6, 6, 6, 6, 8, 8, 8, 8]
    assert first.capacities.tolist() == [80, 96, 20, 36, 44, 48, 10, 18, 22, 24]
    assert mknap1[1].profits[0] == 600.1
    assert mknap1[-1].capacities.tolist()[0] > 0


def test_parse_mknap_ignores_line_breaks(mknap1):
    text = MKNAP1.read_text(encoding="ascii")
    reflowed = parse_mknap("\t".join(text.split()))
    for a, b in zip(mknap1, reflowed, strict=True):
        assert np.array_equal(a.weights, b.weights) and np.array_equal(a.profits, b.profits)
        assert np.array_equal(a.capacities, b.capacities) and a.optimum == b.optimum


def test_parse_mknap_small():
    (inst,) = parse_mknap("1\n3 2 7.5\n1 2 3\n4 5 6\n7 8 9\n10 11\n")
    assert inst.weights.tolist() == [[4, 7], [5, 8], [6, 9]]
    assert inst.capacities.tolist() == [10, 11] and inst.optimum == 7.5


GOOD = "1 3 2 7.5 1 2 3 4 5 6 7 8 9 10 11"


@pytest.mark.parametrize("text", [
    "",
    "   \n ",
    GOOD.rsplit(" ", 1)[0],  # truncated: last capacity missing
    GOOD.split(" 4 ", 1)[0],  # truncated in the weights
    "2 " + GOOD[2:],  # declares two instances, holds one
    GOOD + " 12",  # a trailing extra token
    GOOD.replace(" 5 ", " five "),
    GOOD.replace(" 5 ", " nan "),
    GOOD.replace(" 5 ", " inf "),
    GOOD.replace(" 5 ", " -5 "),  # negative weight
    GOOD.replace(" 11", " -11"),  # negative capacity
    GOOD.replace("1 3 2", "0 3 2", 1),  # K = 0
    GOOD.replace("1 3 2", "1 -3 2", 1),
    GOOD.replace("1 3 2", "1 3.5 2", 1),
    GOOD.replace("1 3 2", "1 3 0", 1),
    GOOD.replace("1 3 2", "x 3 2", 1),
    "<html>404 Not Found</html>",
])
def test_parse_mknap_garbage(text):
    assert parse_mknap(GOOD)[0].n == 3  # the base text itself is valid
    with pytest.raises(InvalidInputError):
        parse_mknap(text)


def test_parse_mknap_rejects_bytes():
    with pytest.raises(InvalidInputError):
        parse_mknap(GOOD.encode())


def test_load_mknap_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"1 1 1 0 \xff\xfe 1 1")
    with pytest.raises(InvalidInputError):
        load_mknap(bad)
    truncated = tmp_path / "truncated.txt"
    truncated.write_bytes(MKNAP1.read_bytes()[:-40])
    with pytest.raises(InvalidInputError):
        load_mknap(truncated)
    with pytest.raises(OSError):
        load_mknap(tmp_path / "missing.txt")
