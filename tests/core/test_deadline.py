"""The round deadline (issue 18, item 3): ``solve(..., deadline=...)``, ``PolicyConfig``'s
``round_deadline`` and the original API's keyword.

The deadline's timing is measured by ``librex-alloc bench round --fairness ...``; these tests
check its logic with a clock that is made to run out at chosen steps, and that every answer a
deadline cuts short is still valid and certified (its bound is never below the optimum, which
brute force or the exact oracle gives independently)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle_reference import brute_force, check_answer, exact_value

from librex_alloc import oracles
from librex_alloc.api import LibrexAlloc
from librex_alloc.config import PolicyConfig
from librex_alloc.errors import InvalidConfigError
from librex_alloc.oracles import solve
from librex_alloc.oracles import solver as solver_module
from librex_alloc.policies import ConstrainedThompsonSampling

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=40)
BAD = [0, 0.0, -1.0, float("nan"), float("inf"), True, False, "0.1", None, [0.1]]


def instance(seed: int, n: int, k: int, tau: float = 0.25):
    """Requests in unrelated units, values over two decades (as under a fairness rule)."""
    rng = np.random.default_rng(seed)
    requests = rng.uniform(1.0, 10.0, (n, k)) * 10.0 ** rng.uniform(-2, 4, k)
    values = rng.uniform(0.1, 1.0, n) * 10.0 ** rng.uniform(-2, 0, n)
    return values, requests, tau * requests.sum(axis=0)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [b for b in BAD if b is not None])
def test_solve_rejects_a_bad_deadline(bad):
    values, requests, budget = instance(0, 20, 2)
    with pytest.raises(InvalidConfigError, match="deadline"):
        solve(values, requests, budget, deadline=bad)


@pytest.mark.parametrize("bad", [b for b in BAD if b is not None])
def test_policy_config_rejects_a_bad_round_deadline(bad):
    with pytest.raises(InvalidConfigError, match="round_deadline"):
        PolicyConfig(2, round_deadline=bad)
    with pytest.raises(InvalidConfigError, match="round_deadline"):
        LibrexAlloc(n_agents=2, n_resource_types=1, round_deadline=bad)


def test_a_bad_round_deadline_changes_nothing():
    """A live policy asked for a configuration with a bad deadline: an error, and the policy
    decides afterwards exactly as an untouched twin does."""
    twins = [ConstrainedThompsonSampling(2, seed=3) for _ in range(2)]
    values, requests, budget = instance(1, 30, 2)
    ids = list(range(30))
    for p in twins:
        p.allocate_batch(ids, requests, budget)
    with pytest.raises(InvalidConfigError, match="round_deadline"):
        twins[0].config.replace(round_deadline=float("nan"))
    a, b = (p.allocate_batch(ids, requests, budget) for p in twins)
    assert np.array_equal(a.selected, b.selected) and np.array_equal(a.values, b.values)
    assert twins[0].config == twins[1].config and twins[0].round_deadline is None


def test_round_deadline_round_trips_and_old_checkpoints_load():
    cfg = PolicyConfig(3, round_deadline=0.004)
    assert cfg.round_deadline == 0.004
    assert PolicyConfig.from_dict(cfg.to_dict(), complete=True) == cfg
    old = cfg.to_dict()
    del old["round_deadline"]  # a checkpoint written before the field existed
    assert PolicyConfig.from_dict(old, complete=True).round_deadline is None
    assert PolicyConfig(3, round_deadline=1).round_deadline == 1.0  # an int is fine


# ----------------------------------------------------------------------------- plumbing


def test_policy_and_original_api_pass_the_deadline(monkeypatch):
    seen = []
    real = oracles.solve

    def spy(*args, **kwargs):
        seen.append(kwargs.get("deadline"))
        return real(*args, **kwargs)

    monkeypatch.setattr(oracles, "solve", spy)
    alloc = LibrexAlloc(n_agents=3, n_resource_types=1, fairness_mode="none",
                        round_deadline=0.02, seed=0)
    alloc.allocate({0: [1.0], 1: [1.0], 2: [2.0]}, [2.0])
    policy = ConstrainedThompsonSampling(1, round_deadline=0.5, seed=0)
    policy.allocate_batch([0, 1], [[1.0], [1.0]], [1.0])
    ConstrainedThompsonSampling(1, seed=0).allocate_batch([0, 1], [[1.0], [1.0]], [1.0])
    assert len(seen) == 3 and 0 < seen[0] <= 0.02 and 0 < seen[1] <= 0.5 and seen[2] is None


def test_the_round_deadline_covers_both_calls_of_a_round(monkeypatch):
    """Under the reward-loss bound a round calls the oracle twice (the utilitarian reference,
    then the fair choice): the second gets only the time the first left."""
    from librex_alloc.fairness import FairnessConfig

    seen = []
    real = oracles.solve

    def slow(*args, **kwargs):
        seen.append(kwargs.get("deadline"))
        out = real(*args, **kwargs)
        time.sleep(0.02)
        return out

    monkeypatch.setattr(oracles, "solve", slow)
    policy = ConstrainedThompsonSampling(
        1, fairness=FairnessConfig(mode="proportional", max_reward_loss=0.1),
        round_deadline=0.03, seed=0)
    policy.allocate_batch([0, 1, 2], [[1.0], [1.0], [1.0]], [2.0])
    assert len(seen) == 2 and 0 < seen[1] <= seen[0] - 0.02 <= 0.01


# ----------------------------------------------------------------------------- cut short


class Clock:
    """The solver module's ``time.perf_counter``: real time until ``expire()`` (or, with
    ``expire_after``, after that many readings), then far beyond any deadline."""

    def __init__(self, expire_after: int | None = None):
        self.real = time.perf_counter
        self.offset = 0.0
        self.left = expire_after

    def __call__(self) -> float:
        if self.left is not None:
            self.left -= 1
            if self.left < 0:
                self.expire()
        return self.real() + self.offset

    def expire(self) -> None:
        self.offset = 1e6


def use_clock(monkeypatch, clock: Clock) -> Clock:
    monkeypatch.setattr(solver_module, "time", SimpleNamespace(perf_counter=clock))
    return clock


@pytest.fixture
def clock(monkeypatch):
    return use_clock(monkeypatch, Clock())


def after_the_lp(monkeypatch, hook) -> None:
    """Call ``hook()`` right after the solver's LP (``_relaxation``: HiGHS, or for auto the
    compiled simplex)."""
    def wrap(real):
        def lp(*args, **kwargs):
            out = real(*args, **kwargs)
            hook()
            return out
        return lp

    monkeypatch.setattr(solver_module, "_relaxation", wrap(solver_module._relaxation))


@pytest.mark.parametrize("method", ["fast", "auto", "exact"])
def test_past_the_deadline_from_the_start(clock, method):
    """Out of time from the start: the fast answer all the same (the LP and its rounding are
    the deadline's slack), with the LP bound, valid and certified against the proven optimum;
    no later step runs."""
    values, requests, budget = instance(2, 60, 3)
    clock.left = 1  # the call's start is read, then time is up
    res = solve(values, requests, budget, method=method, deadline=1e-3, gap_tolerance=0.0)
    check_answer(res, values, requests, budget)
    assert res.info["proof"] == "lp" and "lp_rows" in res.info
    assert "exact_status" not in res.info and "branch_lps" not in res.info
    assert res.objective == solve(values, requests, budget, method="fast").objective
    if method != "fast" and res.status != "optimal":
        assert res.info["cut_short"]
    best = solve(values, requests, budget, method="exact", time_limit=5.0)
    assert res.bound >= best.objective


@pytest.mark.parametrize("method", ["auto", "exact"])
def test_past_the_deadline_after_the_lp(clock, monkeypatch, method):
    """Out of time right after the LP: the rounded LP answer with the LP bound; no search."""
    after_the_lp(monkeypatch, clock.expire)
    values, requests, budget = instance(3, 150, 5)
    res = solve(values, requests, budget, method=method, deadline=0.01, gap_tolerance=0.0)
    check_answer(res, values, requests, budget)
    assert res.info["proof"] == "lp" and "exact_status" not in res.info
    fast = solve(values, requests, budget, method="fast")
    assert res.objective >= fast.objective * (1 - 1e-12)
    if res.status != "optimal":
        assert res.info["cut_short"]
    best = solve(values, requests, budget, method="exact", time_limit=5.0)
    assert res.bound >= best.objective


@pytest.mark.parametrize("method", ["auto", "exact"])
def test_a_step_expected_to_end_after_the_deadline_does_not_start(clock, monkeypatch, method):
    """The LP and its rounding appear to take 10 ms of a 15 ms deadline: a local search or a
    split, expected to take about as long, would end after it, so neither starts (before, both
    started with 5 ms left and could overrun the deadline by their whole time)."""
    def ten_ms_later():
        clock.offset += 0.010

    after_the_lp(monkeypatch, ten_ms_later)
    values, requests, budget = instance(3, 150, 5)
    res = solve(values, requests, budget, method=method, deadline=0.015, gap_tolerance=0.0)
    check_answer(res, values, requests, budget)
    assert res.info["cut_short"] and "branch_lps" not in res.info
    assert "improved" not in res.info and "exact_status" not in res.info
    assert res.objective == solve(values, requests, budget, method="fast").objective
    # with time enough for them (a generous deadline), the same call searches
    clock.offset = 0.0
    res = solve(values, requests, budget, method=method, deadline=5.0, gap_tolerance=0.0)
    assert "branch_lps" in res.info or "improved" in res.info


def test_auto_search_stops_between_its_slices(clock, monkeypatch):
    """With a deadline ``auto``'s compiled search runs in slices of AUTO_BNB_SLICE LPs and
    stops when the time is up after one: its answer and bound so far, valid and certified."""
    from librex_alloc.oracles import _bnb

    real, slices = _bnb.Search.run, []

    def run(self, lps=None):
        slices.append(lps)
        out = real(self, lps)
        clock.expire()
        return out

    monkeypatch.setattr(_bnb.Search, "run", run)
    values, requests, budget = instance(3, 150, 5)
    res = solve(values, requests, budget, deadline=1.0, gap_tolerance=0.0)
    check_answer(res, values, requests, budget)
    size = solver_module.AUTO_BNB_SLICE
    assert slices == [size]
    assert res.info["cut_short"] and 1 < res.info["branch_lps"] <= 1 + size
    best = solve(values, requests, budget, method="exact", time_limit=5.0)
    assert res.bound >= best.objective
    # without a deadline: one run, up to AUTO_BNB_LPS
    clock.offset, slices[:] = 0.0, []
    full = solve(values, requests, budget, gap_tolerance=0.0)
    assert slices == [None] and full.info["branch_lps"] > 1 + size
    assert full.objective >= res.objective and full.bound <= res.bound


def test_the_enumeration_stops_at_the_deadline():
    """``enumerate_optimum`` asks ``time_left`` before each group: False at any point gives
    None (as too many states would); always True, the answer without it."""
    from librex_alloc.oracles._problem import Groups
    from librex_alloc.oracles.enumeration import enumerate_optimum

    rng = np.random.default_rng(0)
    values = rng.uniform(0.1, 0.9, 14)
    requests = rng.uniform(0.0, 1.0, (14, 2))
    budget = requests.sum(axis=0) * 0.4
    groups = Groups.from_labels(None, 14)

    def fits(sel):
        return bool(np.all(requests[sel].sum(axis=0) <= budget))

    free = enumerate_optimum(values, requests, budget, groups, fits)
    assert free is not None
    same = enumerate_optimum(values, requests, budget, groups, fits, time_left=lambda: True)
    assert np.array_equal(same.selected, free.selected)
    for allowed in (0, 1, 7):
        answers = iter([True] * allowed + [False] * 100)
        assert enumerate_optimum(values, requests, budget, groups, fits,
                                 time_left=answers.__next__) is None


def test_cpsat_gets_only_the_time_left(monkeypatch):
    """CP-SAT's wall-clock limit is the time left before the deadline (less a margin); with no
    deadline it has none."""
    seen = []
    real = solver_module.solve_exact

    def spy(*args, **kwargs):
        seen.append(kwargs["wall_limit"])
        return real(*args, **kwargs)

    monkeypatch.setattr(solver_module, "solve_exact", spy)
    monkeypatch.setattr(solver_module, "max_states", lambda *a: 0)  # no enumeration
    values, requests, budget = instance(4, 150, 5)
    solve(values, requests, budget, method="exact", time_limit=0.05, deadline=0.5)
    solve(values, requests, budget, method="exact", time_limit=0.05)
    assert len(seen) == 2
    assert 0 < seen[0] <= 0.5 - solver_module.CPSAT_MARGIN_SECONDS and seen[1] is None


def test_no_cpsat_when_too_little_time_is_left(clock, monkeypatch):
    def never(*args, **kwargs):  # pragma: no cover - the point of the test
        raise AssertionError("CP-SAT started with too little time left")

    monkeypatch.setattr(solver_module, "solve_exact", never)
    monkeypatch.setattr(solver_module, "max_states", lambda *a: 0)
    # every clock reading after the LP is within CPSAT_MIN_SECONDS of the deadline
    real = solver_module._relaxation
    deadline = 1.0

    def lp_then_almost(*args, **kwargs):
        out = real(*args, **kwargs)
        clock.offset = deadline - solver_module.CPSAT_MIN_SECONDS / 2 - (clock.real() - start)
        return out

    monkeypatch.setattr(solver_module, "_relaxation", lp_then_almost)
    values, requests, budget = instance(5, 150, 5)
    start = clock.real()
    res = solve(values, requests, budget, method="exact", deadline=deadline)
    check_answer(res, values, requests, budget)
    assert res.info.get("cut_short")


@settings(**SETTINGS)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(13, 15), k=st.integers(1, 3),
       groups=st.booleans(), stage=st.sampled_from(["start", "lp", "never"]),
       method=st.sampled_from(["fast", "auto", "exact"]))
def test_every_cut_short_answer_is_valid_and_certified(seed, n, k, groups, stage, method):
    """Whatever step the deadline stops, the answer passes the canonical check and its bound
    is at least the brute-force optimum (exact rational sums)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, n) * 10.0 ** rng.uniform(-3, 0, n)
    requests = rng.uniform(0.0, 1.0, (n, k)) * 10.0 ** rng.uniform(-3, 3, k)
    budget = requests.sum(axis=0) * rng.uniform(0.2, 0.6, k)
    labels = rng.integers(0, n // 2, n) if groups else None
    with pytest.MonkeyPatch.context() as mp:
        clock = use_clock(mp, Clock(1 if stage == "start" else None))
        real = solver_module._relaxation

        def lp(*args, **kwargs):
            out = real(*args, **kwargs)
            if stage == "lp":
                clock.expire()
            return out

        mp.setattr(solver_module, "_relaxation", lp)
        res = solve(values, requests, budget, groups=labels, method=method, deadline=0.05)
    check_answer(res, values, requests, budget, groups=labels)
    opt = brute_force(values, requests, budget, groups=labels)
    assert exact_value(values, res.selected) <= opt
    assert res.bound >= float(opt) * (1 - 1e-12)
    if stage != "never" and "lp_rows" in res.info:  # out of time: nothing after the LP
        assert "exact_status" not in res.info and "branch_lps" not in res.info
