"""The oracle under fairness values (issue 18): branching on the LP's fractional options gives
a valid, tighter bound and better answers, so ``auto`` needs CP-SAT less often.

References are independent of the code under test: brute force over every selection with the
canonical float check and exact rational sums (``oracle_reference``), or the exact oracle's
proven optimum on larger instances. Timings are benchmarks (``librex-alloc bench round
--fairness ...``), not tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle_reference import brute_force, check_answer

from librex_alloc.evaluation.round_bench import (
    FAIRNESS_MODES,
    fairness_benchmark,
    fairness_config,
    mixed_instance,
)
from librex_alloc.oracles import solve
from librex_alloc.oracles import solver as solver_module
from librex_alloc.oracles._problem import Groups, selection_is_feasible
from librex_alloc.oracles.branching import branch
from librex_alloc.oracles.relaxation import solve_relaxation

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)


def fair_instance(seed: int, n: int, k: int, tau: float = 0.25):
    """Values over `decades` decades (as α-fair weights make them), requests with a heavy tail
    in one resource (a few options take a large share of it), budget τ of the total."""
    rng = np.random.default_rng(seed)
    requests = rng.uniform(0.5, 1.5, (n, k)) * rng.uniform(1.0, 10.0, n)[:, None]
    requests[:, 0] *= rng.lognormal(0.0, 1.2, n)
    values = rng.uniform(0.1, 1.0, n) * 10.0 ** rng.uniform(-2, 0, n)
    return values, requests, tau * requests.sum(axis=0)


def normalized(values, requests, budget):
    """Largest value and every budget in [0.5, 1) by powers of two, as the solver does."""
    v = np.ldexp(values, -int(np.frexp(values.max())[1]))
    e = np.frexp(budget)[1]
    return v, np.ldexp(requests, -e), np.ldexp(budget, -e)


# ----------------------------------------------------------------------------- the bound


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 14), k=st.integers(1, 3),
       depth=st.integers(1, 3), tau=st.sampled_from([0.15, 0.3, 0.5]),
       max_lps=st.sampled_from([2, 4, 6, 9, 1000]))
def test_branching_bound_is_a_valid_upper_bound(seed, n, k, depth, tau, max_lps):
    """The largest leaf bound is never below the brute-force optimum, never above the root LP
    bound, and every candidate passes the canonical check; the
    candidates are listed best first, every one within the budget."""
    values, requests, budget = normalized(*fair_instance(seed, n, k, tau))
    ok = np.all(requests <= budget, axis=1)
    values, requests = values[ok], requests[ok]
    if not len(values):
        return
    g = Groups.from_labels(None, len(values))
    relax = solve_relaxation(values, requests, budget, g)

    def fits(sel):
        return selection_is_feasible(requests, budget, sel, g)

    br = branch(values, requests, budget, relax, incumbent=0.0, fits=fits,
                time_left=lambda need: True, depth=depth, max_lps=max_lps)
    opt = float(brute_force(values, requests, budget))
    vals = [v for v, _ in br.candidates]
    assert vals == sorted(vals, reverse=True)
    assert all(fits(sel) and values[sel].sum() == v for v, sel in br.candidates)
    assert br.lps <= max_lps
    assert br.bound >= opt * (1 - 1e-12)
    assert br.bound <= relax.bound * (1 + 1e-12)
    if br.selected is not None:
        assert fits(br.selected) and br.value <= opt * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_branching_bound_holds_against_the_proven_optimum(seed):
    """Larger instances (n = 60, K = 4): the bound after branching is at least exact's proven
    optimum; auto's answer is valid and certified."""
    values, requests, budget = fair_instance(100 + seed, 60, 4)
    res = solve(values, requests, budget, method="auto", gap_tolerance=0.0)
    check_answer(res, values, requests, budget)
    best = solve(values, requests, budget, method="exact", time_limit=10.0)
    assert best.status == "optimal"
    assert res.bound >= best.objective * (1 - 1e-12)
    assert res.objective <= best.objective * (1 + 1e-12)


def test_branching_tightens_the_bound_where_the_lp_is_loose():
    """On fairness-like instances with heavy-tailed requests the root LP bound is loose; the
    branches' bound is strictly tighter on most of them and never looser."""
    tighter = 0
    for seed in range(10):
        values, requests, budget = normalized(*fair_instance(seed, 150, 4))
        ok = np.all(requests <= budget, axis=1)
        values, requests = values[ok], requests[ok]
        g = Groups.from_labels(None, len(values))
        relax = solve_relaxation(values, requests, budget, g)
        br = branch(values, requests, budget, relax, incumbent=0.0,
                    fits=lambda s, r=requests, b=budget, g=g: selection_is_feasible(r, b, s, g),
                    time_left=lambda need: True)
        assert br.bound <= relax.bound * (1 + 1e-12)
        tighter += br.bound < relax.bound * (1 - 1e-4)
    assert tighter >= 7


@pytest.mark.parametrize("seed", range(5))
def test_hot_lp_matches_the_lp_solved_from_scratch(seed):
    """The branching's warm-started LP (options fixed by their bounds, from the root's basis)
    has the optimum of the LP of the remaining options on the remaining budget, solved from
    scratch, and the same answer whether or not a basis is given."""
    from librex_alloc.oracles.relaxation import HotLP

    rng = np.random.default_rng(seed)
    values, requests, budget = normalized(*fair_instance(500 + seed, 80, 4))
    ok = np.all(requests <= budget, axis=1)
    values, requests = values[ok], requests[ok]
    m = len(values)
    hot = HotLP(values, requests, budget)
    _, _, basis = hot.solve(np.zeros(m), np.ones(m))
    for _ in range(4):
        ones = rng.random(m) < 0.05
        zeros = (rng.random(m) < 0.2) & ~ones
        if np.any(requests[ones].sum(axis=0) > budget):
            continue
        lower, upper = ones.astype(float), (~zeros).astype(float)
        x, lam, _ = hot.solve(lower, upper, basis)
        assert np.all(x[ones] == 1.0) and np.all(x[zeros] == 0.0)
        free = np.flatnonzero(~ones & ~zeros)
        rest = budget - requests[ones].sum(axis=0)
        ref = solve_relaxation(values[free], requests[free], rest,
                               Groups.from_labels(None, len(free)))
        got = float(values @ x)
        want = float(values[ones].sum()) + float(values[free] @ ref.x)
        assert got == pytest.approx(want, rel=1e-7)
        x2, _, _ = hot.solve(lower, upper)
        assert float(values @ x2) == pytest.approx(got, rel=1e-9)


def test_more_branching_lps_never_loosen_the_bound():
    """Best first with a budget of LPs: a larger budget explores a superset of the nodes (same
    order), so the bound never grows and the best answer never gets worse."""
    for seed in range(4):
        values, requests, budget = normalized(*fair_instance(400 + seed, 150, 4))
        ok = np.all(requests <= budget, axis=1)
        values, requests = values[ok], requests[ok]
        g = Groups.from_labels(None, len(values))
        relax = solve_relaxation(values, requests, budget, g)
        prev_bound, prev_value = np.inf, -np.inf
        for lps in (2, 6, 12, 24):
            br = branch(values, requests, budget, relax, incumbent=0.0,
                        fits=lambda s, r=requests, b=budget, g=g: selection_is_feasible(r, b, s, g),
                        time_left=lambda need: True, max_lps=lps)
            assert br.lps <= lps
            assert br.bound <= prev_bound and br.value >= prev_value
            prev_bound, prev_value = br.bound, br.value
        assert prev_bound < relax.bound


def test_auto_runs_no_cpsat_unless_asked():
    """By default ``auto`` runs no CP-SAT (the cause of the slow rounds under fairness): where
    its certified gap stays above the tolerance after branching it says so
    (``info["skipped"] == "cp-sat"``); given a time limit it runs CP-SAT on the same input,
    and that answer is at least as good. Both are valid and certified."""
    tol = solver_module.DEFAULT_GAP_TOLERANCE["auto"]
    skipped = 0
    for seed in range(8):
        # fair_instance's gaps are closed by auto's search: requests in whole units of
        # different sizes leave an integrality gap (~0.1 % after the search)
        rng = np.random.default_rng(seed)
        requests = rng.integers(1, 30, (150, 5)) * rng.uniform(1, 4, 150)[:, None]
        values = rng.uniform(0.1, 1.0, 150) * 10.0 ** rng.uniform(-2, 0, 150)
        budget = 0.25 * requests.sum(axis=0)
        res = solve(values, requests, budget, method="auto")
        check_answer(res, values, requests, budget)
        assert "exact_status" not in res.info
        if res.info.get("skipped") != "cp-sat":
            continue
        skipped += 1
        assert res.gap > tol and res.info["branch_lps"] >= 1
        searched = solve(values, requests, budget, method="auto", time_limit=0.05)
        check_answer(searched, values, requests, budget)
        assert "exact_status" in searched.info
        assert searched.objective >= res.objective * (1 - 1e-12)
    assert skipped >= 1


def test_branching_answers_are_at_least_the_fast_answer():
    for seed in range(5):
        values, requests, budget = fair_instance(300 + seed, 120, 5)
        fast = solve(values, requests, budget, method="fast")
        auto = solve(values, requests, budget, method="auto", time_limit=0.05)
        check_answer(auto, values, requests, budget)
        assert auto.objective >= fast.objective


@pytest.mark.parametrize("seed", range(6))
def test_root_relaxation_matches_the_lp_and_warm_starts_the_branching(seed):
    """The root LP in the branching's warm-started model (root_relaxation): the same LP
    optimum as solve_relaxation, a valid bound, and the same branching when handed over as
    ``warm``."""
    from librex_alloc.oracles.branching import root_relaxation

    values, requests, budget = normalized(*fair_instance(500 + seed, 120, 4))
    ok = np.all(requests <= budget, axis=1)
    values, requests = values[ok], requests[ok]
    g = Groups.from_labels(None, len(values))
    cold = solve_relaxation(values, requests, budget, g)
    hot, warm = root_relaxation(values, requests, budget)
    assert hot.converged
    assert abs(hot.bound - cold.bound) <= 1e-7 * cold.bound
    assert abs(float(values @ hot.x) - float(values @ cold.x)) <= 1e-7 * cold.bound

    def fits(sel):
        return selection_is_feasible(requests, budget, sel, g)

    kw = dict(incumbent=0.0, fits=fits, time_left=lambda need: True, max_lps=6)
    a = branch(values, requests, budget, hot, warm=warm, **kw)
    b = branch(values, requests, budget, hot, **kw)
    assert a.lps == b.lps and abs(a.bound - b.bound) <= 1e-9 * b.bound
    assert a.bound >= float(solve(values, requests, budget, method="exact").objective) * (1 - 1e-9)


def test_branching_picks_the_most_valuable_fractional_option():
    """The split is on the most valuable fractional option (x = 0.95 here, not x = 0.5);
    none when the LP is integral."""
    from librex_alloc.oracles.branching import _pick

    values = np.array([0.4, 1.0, 0.9, 0.3])
    x = np.array([0.5, 0.95, 1.0, 0.0])
    free = np.array([3, 5, 7, 9])
    big = np.zeros(10)
    big[free] = values
    assert _pick(big, x, free) == 5
    assert _pick(big, np.array([0.0, 1.0, 1.0, 0.0]), free) is None


@pytest.mark.parametrize("seed", [3, 16, 17, 29, 31])
def test_auto_reaches_the_optimum_under_proportional_values(seed):
    """Proportional-fair-like values on the mixed-unit instance (n = 150, K = 5). Seeds 16 and
    17: before the pair moves, auto stopped at 99.88 % and 99.85 % of exact's optimum. Seeds
    3, 29 and 31: with 6 LPs of HiGHS branching and without the pair moves from its best
    distinct answer, auto stopped at 99.76 %, 99.85 % and 99.88 %. The compiled search (no
    pair moves since) is at ≥ 99.9 % on every one."""
    req, budget, _ = mixed_instance(150)
    rng = np.random.default_rng(seed)
    values = rng.beta(2, 2, 150) / np.maximum(rng.uniform(0, 1, 150), 0.02)
    auto = solve(values, req, budget, method="auto")
    check_answer(auto, values, req, budget)
    exact = solve(values, req, budget, method="exact", time_limit=20)
    assert exact.status == "optimal"
    assert auto.objective >= 0.999 * exact.objective


# ----------------------------------------------------------------------------- the benchmark


def test_fairness_modes_parse():
    assert fairness_config("loss") == {"mode": "proportional", "max_reward_loss": 0.1}
    assert fairness_config("0.5") == {"mode": 0.5}
    assert set(FAIRNESS_MODES) >= {"none", "proportional", "maxmin", "loss", "minshare"}
    from librex_alloc.errors import InvalidConfigError

    for bad in ("fair", "-1", "nan"):
        with pytest.raises(InvalidConfigError):
            fairness_config(bad)


def test_mixed_instance_is_in_mixed_units():
    req, budget, mu = mixed_instance(150)
    assert req.shape == (150, 5) and budget.shape == (5,) and mu.shape == (150,)
    assert np.array_equal(req[:, :3], np.round(req[:, :3]))  # cores, GPUs, RDMA %: whole
    np.testing.assert_allclose(budget, 0.25 * req.sum(axis=0))


def test_fairness_benchmark_table(capsys):
    """Every mode, fast vs auto vs exact side by side, with gap and deadline columns; a bad
    mode is a usage error (exit 2, one line on stderr)."""
    from librex_alloc.cli import main

    df = fairness_benchmark(["none", "loss"], n=20, rounds=4, instances=["mixed"],
                            deadline=0.5, exact_rounds=2)
    assert list(df["method"]) == ["fast", "auto", "exact"] * 2
    assert set(df["fairness"]) == {"none", "loss"}
    auto = df[df["method"] == "auto"]
    assert (auto["rounds"] == 4).all() and (auto["obj_min"] <= 1 + 1e-9).all()
    assert auto["over_deadline_ms"].notna().all() and (df["gap_pct"] >= 0).all()
    # every bound is at least exact's objective: the bound's part of the gap is >= 0
    assert df["bound_gap_pct"].notna().all() and (df["bound_gap_pct"] >= -1e-7).all()
    assert main(["bench", "round", "--fairness", "maxmin", "--ns", "12", "--rounds", "2",
                 "--instances", "mixed", "--exact-rounds", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| gap_pct |" in out and "| bound_gap_pct |" in out and "| maxmin | exact |" in out
    with pytest.raises(SystemExit) as exc:
        main(["bench", "round", "--fairness", "fair"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--fairness" in err[-1]
