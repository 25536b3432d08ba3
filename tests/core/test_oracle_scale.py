"""Oracle robustness: any finite magnitude, scale invariance, honest "optimal", divisible slack.

The reference here is brute force over every selection with the *canonical* float64 check
(``requests[selected].sum(axis=0) <= budget``) and exact rational sums of the values, so
"optimal" is checked for the float data as given, not for a rounded model.
"""

from __future__ import annotations

import ast
import inspect
import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle_reference import OPT_RTOL, brute_force, check_answer, exact_value

import librex_alloc.oracles as oracles
from librex_alloc.errors import OracleError
from librex_alloc.oracles import solve
from librex_alloc.oracles import solver as solver_module

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
TINY = 5e-324


# ----------------------------------------------------------------------------- references


# ----------------------------------------------------------------------------- strategies


@st.composite
def small_problems(draw, max_n: int = 10, max_k: int = 3, values: str | None = None,
                   budget: str | None = None, groups: bool = True):
    """Small instances with non-decimal float requests in unrelated units per resource."""
    n = draw(st.integers(1, max_n), label="n")
    k = draw(st.integers(1, max_k), label="k")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    vmode = values or draw(st.sampled_from(["uniform", "uniform", "mixed", "span"]),
                           label="values")
    bmode = budget or draw(st.sampled_from(["fraction", "exact_fit", "exact_fit", "below_max"]),
                           label="budget")
    gmode = draw(st.sampled_from(["none", "none", "options"] if groups else ["none"]),
                 label="groups")
    rng = np.random.default_rng(seed)
    if vmode == "uniform":
        v = rng.uniform(0.0, 1.0, n)
    elif vmode == "mixed":
        v = rng.uniform(-1.0, 1.0, n)
    else:  # maxmin-like: values over 300 orders of magnitude
        v = 10.0 ** rng.uniform(-300.0, 0.0, n)
    r = rng.uniform(0.0, 1.0, (n, k)) * 10.0 ** rng.uniform(-3.0, 3.0, k)
    if bmode == "fraction":
        b = r.sum(axis=0) * rng.uniform(0.1, 0.7, k)
    elif bmode == "exact_fit":  # a random subset fits with equality in float64
        b = r[rng.random(n) < 0.5].sum(axis=0)
    else:
        b = r.max(axis=0) * rng.uniform(0.3, 1.0, k)
    g = rng.integers(0, max(1, n // 2), n) if gmode == "options" else None
    return v, r, b, g


# ----------------------------------------------------------------------------- 1. layout


def test_solve_lives_in_its_own_module():
    assert oracles.solve is solver_module.solve
    assert oracles.OracleResult is solver_module.OracleResult
    assert oracles.METHODS == ("auto", "exact", "fast")
    assert callable(oracles.lagrangian_bound)
    tree = ast.parse(inspect.getsource(oracles))
    defined = [node for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
    assert defined == []  # __init__ only re-exports
    exec("from librex_alloc.oracles import OracleResult", {})  # reference.py's import


# ----------------------------------------------------------------------------- 2. magnitudes


MAGNITUDES = [1e15, 1e20, 1e300, 1e-300, 1e-310, TINY]
MODES = ["fast", "exact", "auto", "divisible"]


def _run(mode, values, requests, budget, groups=None):
    if mode == "divisible":
        return solve(values, requests, budget, groups=groups, divisible=True)
    return solve(values, requests, budget, groups=groups, method=mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scale", MAGNITUDES)
def test_extreme_values(mode, scale):
    res = _run(mode, [scale, scale], [[1.0], [1.0]], [1.0])  # the brief's reproducer (1e20)
    check_answer(res, [scale, scale], [[1.0], [1.0]], [1.0], divisible=mode == "divisible")
    assert res.objective == scale
    # subnormal: the LP bound's rounding slack is a whole step of the 5e-324 grid, so only the
    # exact enumeration can close the certificate there
    assert res.status == "optimal" or (scale < 2.0**-1022 and mode in ("fast", "divisible"))
    rng = np.random.default_rng(7)
    values = rng.uniform(0.0, 1.0, 9) * scale
    values[values == 0] = TINY
    requests = rng.uniform(0.5, 3.0, (9, 2))
    budget = requests.sum(axis=0) * 0.4
    res = _run(mode, values, requests, budget)
    check_answer(res, values, requests, budget, divisible=mode == "divisible")
    opt = brute_force(values, requests, budget)
    assert Fraction(res.bound) >= opt
    if mode in ("exact", "auto"):
        assert exact_value(values, res.selected) == opt
        assert res.status == "optimal"


REQUEST_SCALES = [(1e300, 1e300), (1e-300, 1e-300), (1e300, 1e-300), (TINY, TINY),
                  (1e-310, 1.0)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scales", REQUEST_SCALES)
def test_extreme_requests(mode, scales):
    rng = np.random.default_rng(11)
    values = rng.uniform(0.1, 1.0, 9)
    units = rng.integers(1, 6, (9, 2)).astype(np.float64)  # whole units: subnormals stay exact
    requests = units * np.array(scales)
    budget = np.array([7.0, 9.0]) * np.array(scales)
    res = _run(mode, values, requests, budget)
    check_answer(res, values, requests, budget, divisible=mode == "divisible")
    opt = brute_force(values, requests, budget)
    assert Fraction(res.bound) >= opt
    if mode in ("exact", "auto"):
        assert exact_value(values, res.selected) == opt
        assert res.status == "optimal"


@pytest.mark.parametrize("divisible", [False, True])
def test_objective_overflow_is_an_oracle_error(divisible):
    with pytest.raises(OracleError):
        solve([1e308, 1e308], [[0.0], [0.0]], [1.0], divisible=divisible)


def test_highs_failure_is_an_oracle_error(monkeypatch):
    """HiGHS's own bindings fail (no optimum), then linprog fails too: an OracleError. (20 rows:
    tiny instances are enumerated without any LP; with one option per agent HiGHS is asked
    when the compiled simplex stalls, as here.)"""
    from librex_alloc.oracles import _bnb, relaxation

    monkeypatch.setattr(_bnb, "root_lp", lambda *args: None)

    def failing(*args, **kwargs):
        return SimpleNamespace(status=4, x=None, message="numerical difficulties")

    monkeypatch.setattr(relaxation, "_lp_direct", lambda *args: None)
    monkeypatch.setattr(relaxation, "linprog", failing)
    values, requests, budget = np.arange(1.0, 21.0), np.ones((20, 1)), [1.5]
    for kwargs in (dict(method="fast"), dict(divisible=True)):
        with pytest.raises(OracleError, match="HiGHS"):
            solve(values, requests, budget, **kwargs)

    def crashing(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(relaxation, "linprog", crashing)
    with pytest.raises(OracleError, match="boom"):
        solve(values, requests, budget, method="fast")


def test_cpsat_model_invalid_is_an_oracle_error(monkeypatch):
    from ortools.sat.python import cp_model  # the exact oracle imports it where it solves

    class Invalid:
        parameters = SimpleNamespace()
        deterministic_time = 0.0

        def solve(self, model):
            return cp_model.MODEL_INVALID

    monkeypatch.setattr(cp_model, "CpSolver", Invalid)
    monkeypatch.setattr(solver_module, "max_states", lambda *args: 0)  # no enumeration
    rng = np.random.default_rng(3)
    values, requests = rng.uniform(0, 1, 40), rng.uniform(1, 10, (40, 3))
    with pytest.raises(OracleError, match="CP-SAT"):
        solve(values, requests, requests.sum(axis=0) * 0.3, method="exact")


# ----------------------------------------------------------------------------- 3. scale invariance


FACTORS = [1e-12, 1e-3, 7.0, 1e9, 2.0**-40]


@pytest.mark.parametrize("method", ["exact", "auto", "fast"])
@settings(max_examples=120, **SETTINGS)
@given(problem=small_problems(max_n=40, values="uniform", budget="fraction"),
       factor=st.sampled_from(FACTORS), column=st.integers(0, 2))
def test_selection_is_scale_invariant(method, problem, factor, column):
    """Rescaling the values, or one resource's units (its requests and budget), changes
    neither the chosen set nor the status."""
    values, requests, budget, groups = problem
    base = solve(values, requests, budget, groups=groups, method=method)
    scaled = solve(values * factor, requests, budget, groups=groups, method=method)
    check_answer(scaled, values * factor, requests, budget, groups)
    assert np.array_equal(base.selected, scaled.selected)
    assert scaled.status == base.status
    assert scaled.objective == pytest.approx(base.objective * factor, rel=1e-12)
    j = column % requests.shape[1]
    r2, b2 = requests.copy(), budget.copy()
    r2[:, j] *= factor
    b2[j] *= factor
    units = solve(values, r2, b2, groups=groups, method=method)
    check_answer(units, values, r2, b2, groups)
    assert np.array_equal(base.selected, units.selected)
    assert units.status == base.status


def test_scale_invariance_reproducer():
    """Once: v·1e-10 made ``exact`` return a worse set and call it optimal (absolute
    tolerances), and v·1e9 crashed HiGHS."""
    rng = np.random.default_rng(4)
    values, requests = rng.uniform(0, 1, 30), rng.uniform(1, 10, (30, 2))
    budget = 0.3 * requests.sum(axis=0)
    base = solve(values, requests, budget, method="exact")
    assert base.status == "optimal"
    for factor in (1e-12, 1e-10, 1e9):
        res = solve(values * factor, requests, budget, method="exact")
        assert np.array_equal(res.selected, base.selected)
        assert res.status == "optimal"


@pytest.mark.parametrize("method", ["exact", "auto"])
@settings(max_examples=150, **SETTINGS)
@given(problem=small_problems(max_n=12, values="span"))
def test_maxmin_span_values_are_solved_exactly(method, problem):
    """Values in [1e-300, 1] in one instance ("maxmin"): the true optimum, tiny values included."""
    values, requests, budget, groups = problem
    res = solve(values, requests, budget, groups=groups, method=method)
    check_answer(res, values, requests, budget, groups)
    assert res.status == "optimal"
    assert exact_value(values, res.selected) == brute_force(values, requests, budget, groups)


def test_maxmin_tiny_values_fill_free_room():
    """Rows worth 1e-300 that still fit are taken: by enumeration (small n) and after CP-SAT
    (larger n, where they are below the integer objective's resolution)."""
    rng = np.random.default_rng(5)
    n = 60
    values = np.where(np.arange(n) % 3 == 0, 10.0 ** rng.uniform(-300, -200, n),
                      rng.uniform(0.5, 1.0, n))
    requests = rng.uniform(1.0, 10.0, (n, 2))
    requests[::3] *= 1e-3  # the tiny-valued rows are small: some always fit
    budget = 0.3 * requests.sum(axis=0)
    for method in ("exact", "auto", "fast"):
        res = solve(values, requests, budget, method=method)
        check_answer(res, values, requests, budget)
        residual = budget - requests[res.selected].sum(axis=0)
        fits = np.all(requests <= residual, axis=1) & ~res.selected
        assert not fits.any(), method  # maximal: nothing positive still fits
    small = slice(0, 12)
    res = solve(values[small], requests[small], budget * 0.2, method="exact")
    assert exact_value(values[small], res.selected) == brute_force(values[small],
                                                                   requests[small], budget * 0.2)


# ----------------------------------------------------------------------------- 4. honest optimal


#: Non-decimal float requests; rows {2, 3, 4, 5, 6} fill the budget exactly in float64.
FIT_REQUESTS = [[0.2116283229645296], [0.9120373191893089], [0.610464237725725],
                [0.44454534542234736], [0.5030712987044201], [0.4653721151957203],
                [0.09737306712648897]]
FIT_VALUES = [0.2782305019353455, 0.045059440874662404, 0.9159907410122476, 0.7172086018204333,
              0.40887124766700633, 0.9903083122611858, 0.33011363392973037]
FIT_BUDGET = [2.1208260641747017]


@pytest.mark.parametrize("method", ["exact", "auto", "fast"])
def test_exact_fit_reproducer(method):
    """Once: CP-SAT's conservative rounding excluded {2, 3, 4, 5, 6} and ``exact`` returned
    {0, 2, 3, 5, 6} as "optimal"."""
    requests = np.array(FIT_REQUESTS)
    assert requests[2:].sum(axis=0)[0] == FIT_BUDGET[0]  # fits with equality in float64
    opt = brute_force(FIT_VALUES, requests, FIT_BUDGET)
    res = solve(FIT_VALUES, requests, FIT_BUDGET, method=method)
    check_answer(res, FIT_VALUES, requests, FIT_BUDGET)
    assert Fraction(res.bound) >= opt
    if method != "fast":
        assert np.nonzero(res.selected)[0].tolist() == [2, 3, 4, 5, 6]
    if res.status == "optimal":
        assert exact_value(FIT_VALUES, res.selected) == opt


@pytest.mark.parametrize("method", ["exact", "auto"])
def test_decimal_sum_rounding_up(method):
    """0.1 + 0.2 > 0.3 in float64: {0, 1} does not fit; a decimal model thinks it does."""
    res = solve([1.0, 1.0, 1.5], [[0.1], [0.2], [0.3]], [0.3], method=method)
    assert res.selected.tolist() == [False, False, True]
    assert res.status == "optimal" and res.objective == 1.5


@pytest.mark.parametrize("exact_fit", [False, True])
def test_cpsat_relaxed_model_with_nogood_cuts(monkeypatch, exact_fit):
    """Without enumeration, CP-SAT's relaxed model proves the float optimum: directly when its
    optimum passes the float check, after a no-good cut when it does not."""
    monkeypatch.setattr(solver_module, "max_states", lambda *args: 0)
    if exact_fit:
        values, requests, budget = FIT_VALUES, np.array(FIT_REQUESTS), FIT_BUDGET
    else:
        values, requests, budget = [1.0, 1.0, 1.5, 0.1], [[0.1], [0.2], [0.3], [0.25]], [0.3]
    res = solve(values, requests, budget, method="exact")
    check_answer(res, values, requests, budget)
    assert res.status == "optimal" and res.info["proof"] == "cp-sat"
    assert exact_value(values, res.selected) == brute_force(values, requests, budget)
    assert res.info["exact_models"] == (1 if exact_fit else 2)


@pytest.mark.parametrize("method", ["exact", "auto", "fast"])
@settings(max_examples=200, **SETTINGS)
@given(problem=small_problems())
def test_optimal_status_is_honest(method, problem):
    """Whenever status is "optimal" the answer is the float optimum (exactly for exact/auto,
    which enumerate small instances; within the 1e-9 certificate for fast); the bound is
    always at least the optimum."""
    values, requests, budget, groups = problem
    res = solve(values, requests, budget, groups=groups, method=method)
    check_answer(res, values, requests, budget, groups)
    opt = brute_force(values, requests, budget, groups)
    assert Fraction(res.bound) >= opt
    got = exact_value(values, res.selected)
    if method != "fast":
        assert res.status == "optimal" and res.info["proof"] in ("enumeration", "trivial")
        assert got == opt
    elif res.status == "optimal":
        assert got >= opt * Fraction(1 - OPT_RTOL)


@settings(max_examples=150, **SETTINGS)
@given(problem=small_problems(max_n=9))
def test_cpsat_path_is_honest(problem):
    """The CP-SAT path alone (enumeration off): "optimal" only when it is."""
    values, requests, budget, groups = problem
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(solver_module, "max_states", lambda *args: 0)
        res = solve(values, requests, budget, groups=groups, method="exact", time_limit=2.0)
    check_answer(res, values, requests, budget, groups)
    opt = brute_force(values, requests, budget, groups)
    assert Fraction(res.bound) >= opt
    if res.status == "optimal":
        assert exact_value(values, res.selected) >= opt * Fraction(1 - OPT_RTOL)


def test_subset_groups_carries_flags():
    """Per-group flags follow ``Groups.subset``'s relabelling (row order when the subset has
    one row per group, sorted labels otherwise)."""
    from librex_alloc.oracles._problem import Groups

    groups = Groups.from_labels(np.array([5, 5, 1, 1, 3, 3]), 6)  # labels 1, 3, 5 -> 0, 1, 2
    flags = np.array([False, True, False])  # group of label 3
    for rows, want in (([0, 2, 4], [False, False, True]),  # one per group: row order
                       ([1, 4, 5], [True, False])):  # labels 5, 3, 3 -> sorted: 3, 5
        sub, got = solver_module.subset_groups(groups, np.array(rows), flags)
        assert got.tolist() == want
        assert got[sub.gid].tolist() == flags[groups.gid[rows]].tolist()


@pytest.mark.parametrize("groups", [None, [0, 0, 1, 1, 2, 2, 3, 3]])
@pytest.mark.parametrize("method", ["exact", "auto"])
def test_small_instances_enumerate_without_cpsat(monkeypatch, method, groups):
    def no_cpsat(*args, **kwargs):
        raise AssertionError("CP-SAT called on a small instance")

    monkeypatch.setattr(solver_module, "solve_exact", no_cpsat)
    rng = np.random.default_rng(8)
    values, requests = rng.uniform(0, 1, 8), rng.uniform(0.1, 4.0, (8, 2))
    budget = 0.4 * requests.sum(axis=0)
    res = solve(values, requests, budget, groups=groups, method=method)
    check_answer(res, values, requests, budget, groups)
    assert res.method == "exact" and res.info["proof"] == "enumeration"
    assert res.status == "optimal" and res.bound == res.objective
    assert exact_value(values, res.selected) == brute_force(values, requests, budget, groups)


# ----------------------------------------------------------------------------- 5. divisible


def any_order_usages(frac: np.ndarray, requests: np.ndarray):
    """The usage per resource summed in several orders and forms."""
    n, k = requests.shape
    granted = [f * r for f, r in zip(frac, requests, strict=True)]
    yield np.sum(granted, axis=0) if granted else np.zeros(k)
    yield frac @ requests
    yield (frac[:, None] * requests).sum(axis=0)
    products = frac[:, None] * requests
    for order in (np.arange(n), np.arange(n)[::-1], np.argsort(products[:, 0]),
                  np.argsort(-products[:, 0])):
        acc = np.zeros(k)
        for i in order:
            acc = acc + products[i]
        yield acc
    yield np.array([math.fsum(products[:, j]) for j in range(k)])


@settings(max_examples=400, **SETTINGS)
@given(problem=small_problems(max_n=40))
def test_divisible_usage_fits_in_any_order(problem):
    values, requests, budget, groups = problem
    res = solve(values, requests, budget, groups=groups, divisible=True)
    check_answer(res, values, requests, budget, groups, divisible=True)
    for usage in any_order_usages(res.fractions, requests):
        assert np.all(usage <= budget)
        with np.errstate(divide="ignore", invalid="ignore"):
            util = np.where(budget > 0, usage / np.where(budget > 0, budget, 1.0), 0.0)
        assert np.all(util <= 1.0)
    # the LP bound is at least the 0/1 optimum
    assert Fraction(res.bound) >= brute_force(values, requests, budget, groups) \
        if len(values) <= 12 else True


@settings(max_examples=300, **SETTINGS)
@given(problem=small_problems(max_n=40, budget="fraction"))
def test_divisible_one_option_per_agent(problem):
    """At most one option of a group gets a positive fraction."""
    values, requests, budget, _ = problem
    groups = np.arange(len(values)) // 3  # agents with 3 options each
    res = solve(values, requests, budget, groups=groups, divisible=True)
    check_answer(res, values, requests, budget, groups, divisible=True)
    assert np.bincount(groups[res.fractions > 0], minlength=groups.max() + 1).max(initial=0) <= 1


def test_divisible_two_options_reproducer():
    """The LP mixes two options of agent 0 (each alone is worse per unit of the two
    resources); only one may get a positive fraction."""
    values = [1.0, 1.0, 0.0]
    requests = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    res = solve(values, requests, [0.5, 0.5], groups=[0, 0, 1], divisible=True)
    check_answer(res, values, requests, [0.5, 0.5], [0, 0, 1], divisible=True)
    assert np.count_nonzero(res.fractions[:2]) == 1
    assert res.objective == 0.5 and res.bound >= 1.0 - 1e-12  # the LP mixes: 1.0
    assert res.status == "feasible"


def test_divisible_exact_fractions_stay_exact():
    """No slack is taken where every summation order gives the same float."""
    res = solve([10.0], [[2.0]], [1.0], divisible=True)
    assert res.fractions.tolist() == [0.5]
    res = solve([1.0, 1.0], [[0.5], [0.5]], [1.0], divisible=True)
    assert res.fractions.tolist() == [1.0, 1.0]
