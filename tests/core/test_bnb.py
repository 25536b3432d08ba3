"""The compiled LP branch and bound of ``auto`` (librex_alloc/oracles/_bnb.py): its simplex
against HiGHS, its core rounding against brute force, its answers and bounds against the
optimum by enumeration, and its slices against one run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from librex_alloc.oracles import _bnb, solve
from librex_alloc.oracles.fast import density_key


def _lp_case(rng):
    m, k = int(rng.integers(3, 60)), int(rng.integers(1, 6))
    values = rng.random(m) ** 3 + 1e-3
    requests = np.ascontiguousarray(rng.random((m, k)) * (rng.random((m, k)) < 0.8))
    budget = requests.sum(axis=0) * rng.uniform(0.1, 0.6, k) + 1e-3
    fix = rng.choice([-1, -1, -1, 0, 1], size=m).astype(np.int8)
    return values, requests, budget, fix


def _simplex(values, requests, budget, fix):
    m, k = requests.shape
    lo, up = (fix == 1).astype(float), np.where(fix == 0, 0.0, 1.0)
    x, lam = np.zeros(m), np.zeros(k)
    status = _bnb._simplex(values, requests, np.ascontiguousarray(requests.T), budget, lo, up,
                           np.arange(m, m + k), np.ones(m, bool), x, lam, 4 * (m + k) + 20,
                           np.zeros(1))
    return status, x, lam, lo, up


def test_the_simplex_matches_highs_with_options_fixed():
    rng = np.random.default_rng(0)
    infeasible = 0
    for _ in range(200):
        values, requests, budget, fix = _lp_case(rng)
        status, x, lam, lo, up = _simplex(values, requests, budget, fix)
        ref = linprog(-values, A_ub=requests.T, b_ub=budget, bounds=list(zip(lo, up)),
                      method="highs")
        if ref.status == 2:  # the fixed-in options do not fit
            assert status == 1
            infeasible += 1
            continue
        assert status == 0
        assert np.all(requests.T @ x <= budget + 1e-7)
        assert np.all((x >= lo - 1e-9) & (x <= up + 1e-9))
        assert values @ x == pytest.approx(-ref.fun, rel=1e-7, abs=1e-9)
        # its prices give a Lagrangian bound at least the LP's optimum (and equal to it)
        bound = _bnb._node_bound(values, requests, budget, fix, lam)
        assert bound >= -ref.fun - 1e-9
        assert bound == pytest.approx(-ref.fun, rel=1e-6, abs=1e-9)
    assert infeasible > 5  # the infeasible case was exercised


def test_the_root_lp_matches_highs_and_starts_the_search_there():
    """The root LP (bound-flipping ratio test from the slack basis) on LPs as auto meets them:
    150 options, values spread over orders of magnitude, budgets a fraction of the demand."""
    rng = np.random.default_rng(7)
    for _ in range(60):
        m, k = int(rng.integers(20, 200)), int(rng.integers(1, 6))
        values = 10.0 ** rng.uniform(-4, 0, m)
        requests = np.ascontiguousarray(rng.random((m, k)) ** 2 * (rng.random((m, k)) < 0.9))
        budget = requests.sum(axis=0) * rng.uniform(0.05, 0.7, k) + 1e-6
        x, lam, basis, atup = _bnb.root_lp(values, requests, budget)
        ref = linprog(-values, A_ub=requests.T, b_ub=budget, bounds=(0, 1), method="highs")
        assert np.all(requests.T @ x <= budget * (1 + 1e-9))
        assert np.all((x >= 0) & (x <= 1))
        assert values @ x == pytest.approx(-ref.fun, rel=1e-9)
        fix = np.full(m, -1, np.int8)
        assert _bnb._node_bound(values, requests, budget, fix, lam) == pytest.approx(
            -ref.fun, rel=1e-9)
        # a search started from that basis is the search started from the slack basis
        key = density_key(values, requests, budget, lam)
        warm = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=40,
                           root=(basis, atup))
        cold = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=40)
        warm.run()
        cold.run()
        assert warm.bound == pytest.approx(cold.bound, rel=1e-9)
        assert warm.value == pytest.approx(cold.value, rel=1e-12)


def test_the_core_rounding_is_the_best_core_subset_then_the_fill():
    rng = np.random.default_rng(1)
    for _ in range(100):
        m, k, size = 18, 3, 6
        values = rng.random(m) + 0.01
        requests = np.ascontiguousarray(rng.random((m, k)))
        budget = requests.sum(axis=0) * 0.35
        fix = np.full(m, -1, np.int8)
        _, x, lam, _, _ = _simplex(values, requests, budget, fix)
        order = np.argsort(-density_key(values, requests, budget, lam), kind="stable")
        sel, use = np.zeros(m, bool), np.zeros(k)
        got = _bnb._core(values, requests, budget, x, fix, lam, size, order, sel, use,
                         np.zeros(1))
        # brute force: the LP's whole options outside the core, the best core subset
        core = np.argsort(np.abs(values - requests @ lam), kind="stable")[:size]
        base = x >= 1 - 1e-9
        base[core] = False
        best, best_sel = -1.0, None
        for mask in itertools.product([False, True], repeat=size):
            cand = base.copy()
            cand[core[list(mask)]] = True
            if np.all(np.cumsum(requests[cand], axis=0)[-1:] <= budget) and \
                    values[cand].sum() > best:
                best, best_sel = values[cand].sum(), cand
        used = requests[best_sel].sum(axis=0)
        for i in order:
            if not best_sel[i] and np.all(used + requests[i] <= budget):
                best_sel[i] = True
                used = used + requests[i]
        assert np.array_equal(sel, best_sel)
        assert got == pytest.approx(values[best_sel].sum())


def _optimum(values, requests, budget):
    m = len(values)
    masks = np.array(list(itertools.product([False, True], repeat=m)))
    fits = np.all(masks.astype(float) @ requests <= budget, axis=1)
    return float((masks[fits].astype(float) @ values).max())


@pytest.mark.parametrize("seed", range(6))
def test_the_search_finds_the_optimum_and_bounds_it(seed):
    rng = np.random.default_rng(seed)
    m, k = 14, 3
    values = rng.lognormal(0, 1.5, m)  # spread as under a fairness rule
    values /= 2 * values.max()
    requests = rng.random((m, k))
    budget = requests.sum(axis=0) * 0.4
    opt = _optimum(values, requests, budget)
    key = density_key(values, requests, budget, np.zeros(k))
    # complete: the optimum, certified
    full = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=10_000, core=2)
    assert full.run()
    assert full.value == pytest.approx(opt, rel=1e-12)
    assert opt <= full.bound <= opt * (1 + 1e-9)
    sel = full.selected
    assert np.all(requests[sel].sum(axis=0) <= budget)
    assert values[sel].sum() == pytest.approx(full.value)
    # cut short: the bound still holds, the answer still fits
    for lps in (2, 4, 8):
        part = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=lps, core=2)
        part.run()
        assert part.bound >= opt * (1 - 1e-12)
        assert part.lps <= lps
        if part.selected is not None:
            assert np.all(requests[part.selected].sum(axis=0) <= budget)


def test_an_incumbent_closes_the_nodes_it_bounds():
    rng = np.random.default_rng(7)
    values, requests = rng.random(40) + 0.1, rng.random((40, 4))
    budget = requests.sum(axis=0) * 0.3
    key = density_key(values, requests, budget, np.zeros(4))
    free = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=200)
    free.run()
    # with the best answer as the incumbent nothing better is claimed, and no more LPs run
    given = _bnb.Search(values, requests, budget, key, incumbent=free.value, max_lps=200)
    given.run()
    assert given.selected is None
    assert given.value == free.value
    assert given.lps <= free.lps
    # an incumbent above the optimum closes the root: nothing found, bound = incumbent
    high = _bnb.Search(values, requests, budget, key, incumbent=10 * values.sum(), max_lps=200)
    assert high.run() and high.selected is None and high.lps == 1


@pytest.mark.parametrize("max_work", [np.inf, 60_000.0])
def test_slices_give_the_same_search_as_one_run(max_work):
    rng = np.random.default_rng(3)
    values, requests = rng.lognormal(0, 1, 60), rng.random((60, 5))
    values /= 2 * values.max()
    budget = requests.sum(axis=0) * 0.25
    key = density_key(values, requests, budget, np.zeros(5))
    one = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=120,
                      max_work=max_work)
    one.run()
    sliced = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=120,
                         max_work=max_work)
    while not sliced.run(16) and not sliced.spent:
        pass
    assert (one.lps, one.value, one.bound, one.work) == \
        (sliced.lps, sliced.value, sliced.bound, sliced.work)
    assert np.array_equal(one.selected, sliced.selected)
    assert one.spent and not one.complete


def test_the_work_limit_stops_the_search_after_the_split_that_reaches_it():
    """The work (LPs, pivots and core steps, deterministic) grows with every split; the
    search stops at the first split that takes it to ``max_work``, so a smaller limit stops
    earlier, and the same limit always at the same LP."""
    rng = np.random.default_rng(5)
    values, requests = rng.lognormal(0, 1, 80), rng.random((80, 4))
    values /= 2 * values.max()
    budget = requests.sum(axis=0) * 0.3
    key = density_key(values, requests, budget, np.zeros(4))
    free = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=200)
    free.run()
    assert free.lps > 100 and free.pivots > 0 and free.steps > 0
    m, k = requests.shape
    assert free.work == pytest.approx(free.lps * m * k + _bnb.WORK_PIVOT * free.pivots
                                      * (m + k) * k + _bnb.WORK_STEP * free.steps)
    lps = []
    for limit in (free.work / 4, free.work / 2):
        cut = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=200,
                          max_work=limit)
        cut.run()
        again = _bnb.Search(values, requests, budget, key, incumbent=0.0, max_lps=200,
                            max_work=limit)
        again.run()
        assert cut.spent and cut.work >= limit and cut.lps == again.lps
        lps.append(cut.lps)
        assert cut.bound >= free.bound - 1e-12 and cut.value <= free.value + 1e-12
    assert lps[0] < lps[1] < free.lps


def test_auto_uses_the_search_and_answers_deterministically():
    rng = np.random.default_rng(11)
    values = rng.lognormal(0, 2, 150)
    requests = rng.integers(1, 9, (150, 5)).astype(float)
    budget = requests.sum(axis=0) / 4
    first = solve(values, requests, budget)
    again = solve(values, requests, budget)
    assert np.array_equal(first.selected, again.selected)
    assert first.bound == again.bound
    assert first.info.get("branch_lps", 0) > 2
    assert np.all(requests[first.selected].sum(axis=0) <= budget)
    assert first.objective <= first.bound


def test_the_lp_is_solved_compiled_and_falls_back_to_highs(monkeypatch):
    """Every method's LP comes from the compiled simplex (one option per agent, so auto and
    exact round the same LP as fast); when that simplex stalls (root_lp gives None) HiGHS
    solves it and auto's search starts from the slack basis: a valid, certified answer either
    way, at least fast's (no gap tolerated: both search)."""
    rng = np.random.default_rng(12)
    values = rng.lognormal(0, 2, 150)
    requests = rng.integers(1, 9, (150, 5)).astype(float)
    budget = requests.sum(axis=0) / 4
    compiled = solve(values, requests, budget, gap_tolerance=0.0)
    fast = solve(values, requests, budget, method="fast")
    assert compiled.info["lp"] == fast.info["lp"] == "compiled"
    assert solve(values, requests, budget, method="exact", time_limit=1.0).info["lp"] == \
        "compiled"
    monkeypatch.setattr(_bnb, "root_lp", lambda *args: None)
    fallback = solve(values, requests, budget, gap_tolerance=0.0)
    assert fallback.info["lp"] == "highs" and fallback.info.get("branch_lps", 0) > 2
    fast_highs = solve(values, requests, budget, method="fast")  # HiGHS's LP for both now
    assert fast_highs.info["lp"] == "highs"
    for res, first in ((compiled, fast), (fallback, fast_highs)):
        assert np.all(requests[res.selected].sum(axis=0) <= budget)
        assert first.objective <= res.objective <= res.bound
    # the same LP either way: the bounds the two searches certify agree closely
    assert fallback.bound == pytest.approx(compiled.bound, rel=1e-3)
