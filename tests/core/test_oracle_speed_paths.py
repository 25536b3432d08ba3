"""The oracles' fast paths for small instances and the round loop (issue 8, items 1–2).

- tiny candidate sets (≤ ``ALL_MAX_ROWS``) are enumerated at once, for every method, no LP;
- one option per agent with a few hundred options: the LP through HiGHS's own bindings, then
  the core of options around the LP threshold enumerated exactly (``core_round``);
- ``auto`` stops once its certified gap is within ``gap_tolerance`` (unless few options are
  left, when exactness is cheap), and CP-SAT stops at that gap too;
- no answer depends on what was solved before (a thread-local HiGHS object is reused).

References are independent: brute force over every subset with the canonical float check and
exact rational values. Timings are benchmarks (``librex-alloc bench round``), not tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from oracle_reference import OPT_RTOL, brute_force, check_answer, exact_value

from librex_alloc.errors import InvalidConfigError
from librex_alloc.oracles import OracleResult, relaxation, solve
from librex_alloc.oracles import fast as fast_module
from librex_alloc.oracles import solver as solver_module
from librex_alloc.oracles._problem import Groups, lagrangian_bound
from librex_alloc.oracles.enumeration import ALL_MAX_ROWS, _sum_up

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- references


@st.composite
def problems(draw, min_n: int = 1, max_n: int = ALL_MAX_ROWS, max_k: int = 3,
             groups: bool = True):
    """Instances in unrelated units per resource; values uniform, signed or over 300 decades."""
    n = draw(st.integers(min_n, max_n), label="n")
    k = draw(st.integers(1, max_k), label="k")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    vmode = draw(st.sampled_from(["uniform", "mixed", "span"]), label="values")
    bmode = draw(st.sampled_from(["fraction", "exact_fit", "integer"]), label="budget")
    gmode = draw(st.sampled_from(["none", "none", "options"] if groups else ["none"]),
                 label="groups")
    rng = np.random.default_rng(seed)
    if vmode == "uniform":
        v = rng.uniform(0.0, 1.0, n)
    elif vmode == "mixed":
        v = rng.uniform(-1.0, 1.0, n)
    else:
        v = 10.0 ** rng.uniform(-300.0, 0.0, n)
    if bmode == "integer":  # whole units, many ties and exact fits
        r = rng.integers(0, 5, (n, k)).astype(np.float64)
        b = np.floor(r.sum(axis=0) * rng.uniform(0.2, 0.6, k))
    else:
        r = rng.uniform(0.0, 1.0, (n, k)) * 10.0 ** rng.uniform(-3.0, 3.0, k)
        if bmode == "fraction":
            b = r.sum(axis=0) * rng.uniform(0.1, 0.7, k)
        else:  # a random subset fits with equality in float64
            b = r[rng.random(n) < 0.5].sum(axis=0)
    g = rng.integers(0, max(1, n // 2), n) if gmode == "options" else None
    return v, r, b, g


def random_instance(seed: int, n: int, k: int, tau: float = 0.25):
    rng = np.random.default_rng(seed)
    requests = rng.uniform(1.0, 10.0, (n, k)) * 10.0 ** rng.uniform(-2, 4, k)
    return rng.uniform(0.0, 1.0, n), requests, tau * requests.sum(axis=0)


def test_brute_force_reference_is_right():
    """Knapsack by hand: 0.1 + 0.2 > 0.3 in float64, so {0, 1} does not fit."""
    assert brute_force([1.0, 1.0, 1.5], [[0.1], [0.2], [0.3]], [0.3]) == Fraction(1.5)
    assert brute_force([3.0, 2.0, 2.0], [[2.0], [1.0], [1.0]], [2.0]) == Fraction(4)
    assert brute_force([3.0, 2.0, 2.0], [[2.0], [1.0], [1.0]], [2.0], groups=[0, 1, 1]) == 3
    assert brute_force([-1.0], [[0.0]], [1.0]) == 0


# ----------------------------------------------------------------------------- 1. tiny: no LP


@pytest.mark.parametrize("method", ["fast", "auto", "exact"])
@settings(max_examples=300, **SETTINGS)
@given(problem=problems())
def test_tiny_instances_are_exact_for_every_method(method, problem):
    """Up to ALL_MAX_ROWS candidate options every method returns the exact float optimum
    (values compared exactly, 1e-300 next to 1 included), certified, with no LP."""
    values, requests, budget, groups = problem
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(solver_module, "solve_relaxation", _no_lp)
        res = solve(values, requests, budget, groups=groups, method=method)
    check_answer(res, values, requests, budget, groups)
    opt = brute_force(values, requests, budget, groups)
    assert exact_value(values, res.selected) == opt
    assert Fraction(res.bound) >= opt
    assert res.status == "optimal"
    assert res.info["proof"] in ("enumeration", "trivial")
    assert res.method in ((method if method == "fast" else "exact"), "trivial")


def _no_lp(*args, **kwargs):
    raise AssertionError("an LP was solved on a tiny instance")


def test_sum_up_rounds_the_exact_sum_up():
    rng = np.random.default_rng(3)
    for _ in range(300):
        x = rng.uniform(0.0, 1.0, int(rng.integers(1, 20))) * 10.0 ** rng.uniform(-20, 0)
        up = _sum_up(x)
        exact = sum((Fraction(float(v)) for v in x), Fraction(0))
        assert Fraction(up) >= exact
        assert Fraction(float(np.nextafter(up, -np.inf))) < exact  # the smallest such float
    assert _sum_up(np.array([0.1, 0.2])) == 0.1 + 0.2  # the float sum is above the exact one
    assert _sum_up(np.array([1.0, 2.0**-53])) == 1.0 + 2.0**-52  # ... and here below


# ----------------------------------------------------------------------------- 2. core path


@settings(max_examples=100, **SETTINGS)
@given(problem=problems(min_n=ALL_MAX_ROWS + 1, max_n=16, groups=False))
def test_core_path_against_brute_force(problem):
    """Just above ALL_MAX_ROWS (one option per agent) ``fast`` rounds the LP through the core:
    within the budget, its bound valid; ``auto`` and ``exact`` (few free options: cheap) prove
    the exact optimum."""
    values, requests, budget, _ = problem
    opt = brute_force(values, requests, budget)
    for method in ("fast", "auto", "exact"):
        res = solve(values, requests, budget, method=method)
        check_answer(res, values, requests, budget)
        assert Fraction(res.bound) >= opt
        got = exact_value(values, res.selected)
        assert got <= opt
        if res.status == "optimal":
            assert got >= opt * Fraction(1 - OPT_RTOL)
        if method != "fast":
            assert res.status == "optimal" and got == opt, method


def test_core_path_is_taken_and_close_to_the_optimum(monkeypatch):
    """fast on 13–16 options: the core is enumerated (no swaps); on average within 1 % of the
    brute-force optimum, never above it."""
    calls = []
    real = fast_module.core_round

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fast_module, "core_round", spy)
    monkeypatch.setattr(fast_module, "_swap_improve", _no_swaps)
    ratios = []
    for seed in range(40):
        values, requests, budget = random_instance(seed, 13 + seed % 4, 1 + seed % 3)
        res = solve(values, requests, budget, method="fast")
        check_answer(res, values, requests, budget)
        opt = brute_force(values, requests, budget)
        assert Fraction(res.bound) >= opt >= exact_value(values, res.selected)
        ratios.append(res.objective / float(opt))
    assert len(calls) == 40
    assert np.mean(ratios) >= 0.99


def _no_swaps(*args, **kwargs):
    raise AssertionError("swaps on a small one-option-per-agent instance")


def test_core_round_is_within_the_budget_when_the_lp_is_a_hair_over():
    """The LP's whole options may exceed the budget by its tolerance: repaired."""
    values = np.array([1.0, 0.9, 0.8, 0.7])
    requests = np.array([[0.5], [0.5], [0.25], [0.25]])
    budget = np.array([1.0])
    relax = relaxation.Relaxation(np.array([1.0, 1.0, 1.0, 1.0 - 1e-12]), np.array([1.0]), 2.0,
                                  True, 4)
    key = fast_module.density_key(values, requests, budget, relax.lam)
    sel = fast_module.core_round(values, requests, budget, relax, key, size=1)
    assert np.all(requests[sel].sum(axis=0) <= budget)


@settings(max_examples=100, **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(ALL_MAX_ROWS + 1, 150),
       k=st.integers(1, 5), start=st.sampled_from(["fast", "empty", "greedy"]))
def test_improve_never_worsens_and_stays_within_budget(seed, n, k, start):
    """``improve`` (swaps, then exact neighbourhoods around the answer) from any answer within
    the budget: within the budget, worth at least as much."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.01, 0.99, n)  # normalized units: every value in (0, 1)
    requests = rng.uniform(0.0, 1.0, (n, k)) * (rng.random((n, k)) < 0.8)
    budget = requests.sum(axis=0) * rng.uniform(0.1, 0.6, k)
    budget = np.maximum(budget, requests.max(axis=0))  # every row fits alone (candidates)
    g = Groups.from_labels(None, n)
    x, lam = relaxation._lp(values, requests, budget, g)
    key = fast_module.density_key(values, requests, budget, lam)
    if start == "fast":
        relax = relaxation.Relaxation(x, lam, 0.0, True, n)
        sel = fast_module.round_relaxation(values, requests, budget, g, relax, key)
    elif start == "empty":
        sel = np.zeros(n, dtype=bool)
    else:
        sel = fast_module.fill(values, requests, budget, g, np.zeros(n, dtype=bool), lam * 0)
    assert np.all(requests[sel].sum(axis=0) <= budget)
    out = fast_module.improve(values, requests, budget, g, sel, key, lam)
    assert np.all(requests[out].sum(axis=0) <= budget)
    assert float(values[out].sum()) >= float(values[sel].sum())
    assert out is not sel


@pytest.mark.parametrize("method", ["fast", "auto"])
@settings(max_examples=60, **SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(13, 200), k=st.integers(1, 5),
       factor=st.sampled_from([1e-12, 1e-3, 7.0, 1e9, 2.0**-40]), column=st.integers(0, 4))
@example(seed=38356, n=121, k=5, factor=1e-12, column=0)  # CP-SAT proves one model only
def test_core_path_is_scale_invariant(method, seed, n, k, factor, column):
    """Rescaling the values or one resource's units changes neither the chosen set nor the
    status (the core and the gap rule use relative quantities only). A factor that is not a
    power of two rounds the data differently, so when `auto` runs CP-SAT and it stops at its
    time limit on one of the two models, only the certificates must agree."""
    values, requests, budget = random_instance(seed, n, k)
    base = solve(values, requests, budget, method=method)

    def agree(other, vscale: float) -> None:  # other's values are vscale × base's
        searched = not (base.info.get("exact_proved", True)
                        and other.info.get("exact_proved", True))
        if searched and np.frexp(factor)[0] != 0.5:
            assert other.objective <= vscale * base.bound * (1 + 1e-9)
            assert vscale * base.objective <= other.bound * (1 + 1e-9)
            return
        assert np.array_equal(base.selected, other.selected) and base.status == other.status

    scaled = solve(values * factor, requests, budget, method=method)
    agree(scaled, factor)
    r2, b2 = requests.copy(), budget.copy()
    r2[:, column % k] *= factor
    b2[column % k] *= factor
    units = solve(values, r2, b2, method=method)
    agree(units, 1.0)


@pytest.mark.parametrize("method", ["fast", "auto", "divisible"])
@pytest.mark.parametrize("vscale,rscale", [(1e300, 1.0), (1e-300, 1.0), (1e-310, 1.0),
                                           (1.0, 1e300), (1.0, 1e-300), (1e20, 1e-20)])
def test_lp_and_core_paths_at_extreme_magnitudes(method, vscale, rscale):
    """40 options (past the tiny path): any finite magnitude, a valid certified answer."""
    values, requests, budget = random_instance(5, 40, 3)
    values, requests, budget = values * vscale, requests * rscale, budget * rscale
    if method == "divisible":
        res = solve(values, requests, budget, divisible=True)
        assert np.all(res.fractions @ requests <= budget)
        assert res.bound >= res.objective and np.isfinite(res.bound)
        return
    res = solve(values, requests, budget, method=method)
    check_answer(res, values, requests, budget)
    base = solve(values / vscale, requests / rscale, budget / rscale, method=method)
    assert res.objective == pytest.approx(base.objective * vscale, rel=1e-6)


# ----------------------------------------------------------------------------- 3. the LP


@settings(max_examples=200, **SETTINGS)
@given(problem=problems(min_n=1, max_n=120, max_k=6))
def test_highs_bindings_agree_with_linprog(problem):
    """The LP through HiGHS's own bindings and through linprog: the same optimum."""
    values, requests, budget, groups = problem
    keep = values > 0
    values, requests = values[keep], requests[keep]
    labels = None if groups is None else groups[keep]
    g = Groups.from_labels(labels, len(values))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(relaxation, "_HIGHS_DIRECT", True)
        x1, lam1 = relaxation._lp(values, requests, budget, g)
        mp.setattr(relaxation, "_HIGHS_DIRECT", False)
        x2, lam2 = relaxation._lp(values, requests, budget, g)
    scale = 1.0 + float(np.abs(values).sum())
    assert abs(values @ x1 - values @ x2) <= 1e-7 * scale
    b1 = lagrangian_bound(values, requests, budget, g, lam1)
    b2 = lagrangian_bound(values, requests, budget, g, lam2)
    assert abs(b1 - b2) <= 1e-7 * scale
    assert b1 >= values @ x1 - 1e-7 * scale  # weak duality
    tol = 1e-7 * (budget + requests.sum(axis=0))
    assert np.all(x1 @ requests <= budget + tol)


def test_highs_bindings_are_used_here():
    """SciPy ships HiGHS's bindings in this environment: the ~2 ms linprog set-up is avoided
    (if a SciPy upgrade drops them, linprog still works, only slower: this test says so)."""
    assert relaxation._HIGHS_DIRECT
    called = []
    real = relaxation._lp_direct

    def spy(*args):
        called.append(1)
        return real(*args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(relaxation, "_lp_direct", spy)
        mp.setattr(relaxation, "linprog", _no_lp)
        values, requests, budget = random_instance(1, 150, 5)
        # several options per agent: HiGHS (one per agent: the compiled simplex first)
        res = solve(values, requests, budget, groups=np.arange(150) // 2, method="fast")
    assert called and res.info["proof"] == "lp" and res.info["lp"] == "highs"


# ----------------------------------------------------------------------------- 4. the gap rule


def test_gap_tolerance_is_validated():
    values, requests, budget = random_instance(0, 20, 2)
    for bad in (-1e-3, float("nan"), float("inf"), "0.01", True, [0.01]):
        with pytest.raises(InvalidConfigError, match="gap_tolerance"):
            solve(values, requests, budget, gap_tolerance=bad)
    solve(values, requests, budget, gap_tolerance=0)  # ints are fine


@pytest.mark.parametrize("tol", [0.0, 1e-3, 1e-2, 0.5])
def test_auto_rule(tol):
    """``auto`` skips the exact search exactly when the certified gap of its fast answer is
    within the tolerance and more than AUTO_CHEAP_FREE_ROWS options stay free after
    reduced-cost fixing. Every answer is at least fast's and certified."""
    cheap = solver_module.AUTO_CHEAP_FREE_ROWS
    skipped = 0
    for seed in range(12):
        values, requests, budget = random_instance(100 + seed, (30, 150, 400)[seed % 3], 3)
        res = solve(values, requests, budget, method="auto", gap_tolerance=tol)
        check_answer(res, values, requests, budget)
        fast = solve(values, requests, budget, method="fast")
        assert res.objective >= fast.objective
        if "fast_gap" not in res.info:  # certified optimal before the exact search's rule
            # fast's own certificate, a better answer, or the branch and bound completed
            # (its bound proves fast's answer optimal)
            assert fast.status == "optimal" or res.info.get("improved") or (
                res.status == "optimal" and res.info.get("branch_complete"))
            continue
        rule = res.info["fast_gap"] <= tol and res.info["free_rows"] > cheap
        assert (res.info.get("skipped") == "gap") == rule
        if rule:
            skipped += 1
            assert res.gap == res.info["fast_gap"] <= tol
        else:
            assert "exact_status" in res.info or res.info["proof"] == "enumeration"
    if tol == 0.0:
        assert skipped == 0
    if tol == 0.5:
        assert skipped > 0


def test_auto_default_is_certified_within_its_tolerance():
    """With the default tolerance ``auto`` is certified within it whenever it skips the search,
    so within it of the proven optimum; its bound is never below a proven optimum. (The
    average quality is measured by the round benchmark, not asserted here.)"""
    tol = solver_module.DEFAULT_GAP_TOLERANCE["auto"]
    for seed in range(6):
        values, requests, budget = random_instance(300 + seed, 60, 3)
        res = solve(values, requests, budget)  # auto
        best = solve(values, requests, budget, method="exact", time_limit=2.0)
        check_answer(res, values, requests, budget)
        if res.info.get("skipped") == "gap":
            assert res.gap <= tol
            assert res.objective >= best.objective * (1 - tol)
        assert res.bound >= best.objective * (1 - 1e-12)
        if best.status == "optimal":
            assert best.bound >= res.objective * (1 - 1e-12)


def test_exact_stops_at_its_gap_tolerance():
    """``exact`` with a gap tolerance: CP-SAT's relative_gap_limit; the answer is certified
    within it (or the time limit was hit), never worse than fast's."""
    values, requests, budget = random_instance(7, 150, 4)
    fast = solve(values, requests, budget, method="fast")
    res = solve(values, requests, budget, method="exact", gap_tolerance=2e-3, time_limit=5.0)
    check_answer(res, values, requests, budget)
    assert res.objective >= fast.objective
    assert res.gap <= 2e-3 or res.info.get("exact_status") == "FEASIBLE"


# ----------------------------------------------------------------------------- 5. history


def _cases():
    tiny = random_instance(31, 9, 3)
    core = random_instance(32, 150, 5)
    grouped = (*random_instance(33, 300, 3), np.arange(300) // 3)
    large = random_instance(34, 3000, 4)
    return {"tiny": (*tiny, None), "core": (*core, None), "grouped": grouped,
            "large": (*large, None)}


def _signature(res: OracleResult) -> list:
    return [np.flatnonzero(res.selected).tolist(), res.fractions.tolist(), res.objective,
            res.bound, res.status, res.method]


_RUNS = [("fast", {}), ("auto", {}), ("exact", {"time_limit": 0.2}), ("divisible", {})]


def _solve_case(case, method, extra):
    values, requests, budget, groups = _cases()[case]
    if method == "divisible":
        return solve(values, requests, budget, groups=groups, divisible=True)
    return solve(values, requests, budget, groups=groups, method=method, **extra)


def test_answers_do_not_depend_on_what_was_solved_before():
    """Solve A, then B, then A again (same process, HiGHS object reused): the same answers as a
    fresh process solving A alone."""
    script = textwrap.dedent("""
        import json, sys
        sys.path[:0] = [{tests!r}, {shared!r}]
        from test_oracle_speed_paths import _RUNS, _signature, _solve_case
        out = {{f"{{c}}/{{m}}": _signature(_solve_case(c, m, x))
               for c in ("tiny", "core", "grouped", "large") for m, x in _RUNS}}
        print(json.dumps(out))
    """).format(tests=str(Path(__file__).parent), shared=str(Path(__file__).parents[1]))
    fresh = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True,
                                      text=True, check=True, cwd=ROOT).stdout)
    cases = ("tiny", "core", "grouped", "large")
    for a in cases:
        for m, x in _RUNS:
            assert _signature(_solve_case(a, m, x)) == fresh[f"{a}/{m}"], (a, m)
        for b in cases:  # B: every other case and method in between
            if b != a:
                for m, x in _RUNS:
                    _solve_case(b, m, x)
        for m, x in _RUNS:  # A again
            assert _signature(_solve_case(a, m, x)) == fresh[f"{a}/{m}"], (a, m)


def test_threads_get_the_same_answers():
    """Each thread has its own HiGHS object: concurrent solves equal sequential ones."""
    jobs = [(c, m, x) for c in ("core", "grouped", "large") for m, x in _RUNS if m != "exact"]
    want = [_signature(_solve_case(*j)) for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda j: _signature(_solve_case(*j)), jobs * 3))
    assert got == want * 3


def test_policy_config_carries_the_gap_tolerance(monkeypatch):
    """PolicyConfig.gap_tolerance is validated, survives to_dict/from_dict and reaches solve."""
    from librex_alloc import ConstrainedThompsonSampling
    from librex_alloc.config import PolicyConfig
    from librex_alloc.errors import InvalidConfigError

    for bad in (-0.1, float("nan"), 2.0, "x"):
        with pytest.raises(InvalidConfigError):
            PolicyConfig(2, gap_tolerance=bad)
    cfg = PolicyConfig(2, oracle="auto", gap_tolerance=0.0)
    assert PolicyConfig.from_dict(cfg.to_dict(), complete=True) == cfg
    assert cfg != PolicyConfig(2, oracle="auto")
    seen = []
    from librex_alloc import oracles

    real = oracles.solve

    def spy(*a, **kw):
        seen.append(kw.get("gap_tolerance"))
        return real(*a, **kw)

    monkeypatch.setattr(oracles, "solve", spy)
    pol = ConstrainedThompsonSampling(config=cfg)
    pol.allocate_batch(["a", "b", "c"], np.ones((3, 2)), np.array([2.0, 2.0]))
    assert seen == [0.0]
