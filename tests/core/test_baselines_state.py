"""Every registered baseline, on random instances: the budget is never exceeded (divisible
or not, with or without a pace), bad input changes nothing, and the state round-trips
exactly (get_state / from_state and save_state / load_state) with identical future
decisions; a corrupted extra state is refused with StateError.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from librex_alloc import (
    FairnessConfig,
    RoundRequest,
    StateError,
    load_state,
    make_policy,
    save_state,
)
from librex_alloc.policies import BASELINES
from tests.conftest import assert_state_equal

NAMES = [cls.name for cls in BASELINES]


def _make(name: str, k: int, divisible: bool, family: str = "bernoulli", seed: int = 0):
    kw = {}
    if name == "fair-learn":
        kw["fairness"] = FairnessConfig(min_share=0.25)
    return make_policy(name, n_resources=k, seed=seed, divisible=divisible,
                       reward_family=family, max_pending_rounds=8, **kw)


def _rounds(rng: np.random.Generator, k: int, n_rounds: int, tight: bool):
    """Random rounds over a pool of 6 agents with 1–2 options: zero and equal requests, zero
    budgets, budgets equal to the float sum of a random subset (the boundary), paces."""
    pool = [f"a{i}" for i in range(5)] + [("t", 1)]
    n_opt = rng.integers(1, 3, size=len(pool))
    table = rng.choice([0.0, 0.1, 1.0, 2.5, 3.0], size=(len(pool), 2, k)) * \
        rng.uniform(0.5, 1.5, size=(len(pool), 2, k))
    out = []
    for _ in range(n_rounds):
        agents = np.flatnonzero(rng.random(len(pool)) < 0.8)
        ids, opts, req = [], [], []
        for a in agents:
            for o in range(n_opt[a]):
                ids.append(pool[a])
                opts.append(o)
                req.append(table[a, o])
        req = np.array(req).reshape(-1, k)
        if tight and len(req):
            budget = req[rng.random(len(req)) < 0.5].sum(axis=0)
        else:
            budget = rng.choice([0.0, 1.0, 3.0, 7.5], size=k) * (rng.random(k) < 0.9)
        pace = budget * rng.uniform(0.1, 1.0, size=k) if rng.random() < 0.5 else None
        out.append(RoundRequest.build(ids, req, budget, opts, n_resources=k, pace=pace))
    return pool, n_opt, out


def _play(policy, requests, rng, family):
    """Allocate each round, check the hard invariant, report some outcomes; the decisions."""
    seen = []
    for req in requests:
        a = policy.allocate(req)
        b = req.budget
        assert np.all(a.fractions >= 0) and np.all(a.fractions <= 1)
        # both modes, exactly: the BLAS order and Allocation.usage (tests/core/test_budget_exact.py
        # checks every other summation order)
        assert np.all(a.fractions @ req.requests <= b), (policy.name, req)
        assert np.all(a.usage <= b), (policy.name, req)
        if not policy.divisible:  # the canonical check of a 0/1 answer
            assert np.array_equal(a.fractions, a.selected.astype(float))
            assert np.all(req.requests[a.selected].sum(axis=0) <= b), (policy.name, req)
        agents = [req.agent_ids[i] for i in np.flatnonzero(a.selected)]
        assert len(set(agents)) == len(agents)  # at most one option per agent
        report = [x for x in agents if rng.random() < 0.7]
        if report:
            rewards = rng.normal(size=len(report)) if family == "gaussian" else \
                rng.random(len(report))
            policy.observe(a.round, report, rewards=rewards)
        seen.append((a.fractions.copy(), a.values.copy()))
    return seen


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 3), divisible=st.booleans(),
       tight=st.booleans(), gaussian=st.booleans())
def test_budget_and_state_round_trip(name, tmp_path, seed, k, divisible, tight, gaussian):
    if name == "proportional-share":
        divisible = True
    family = "gaussian" if gaussian and name != "oracle" else "bernoulli"
    rng = np.random.default_rng(seed)
    pool, n_opt, requests = _rounds(rng, k, 6, tight)
    p = _make(name, k, divisible, family, seed=seed % 1000)
    if name == "oracle":
        ids = [a for a, m in zip(pool, n_opt) for _ in range(m)]
        opts = [o for m in n_opt for o in range(m)]
        p.set_true_means(ids, rng.random(len(ids)), options=opts)
    _play(p, requests[:4], rng, family)
    state = p.get_state()
    q = type(p).from_state(state)
    assert_state_equal(q.get_state(), state)
    path = tmp_path / f"{name}-{seed}.parquet"
    save_state(state, path)
    r = type(p).from_state(load_state(path))
    assert_state_equal(r.get_state(), state)
    futures = []
    for policy in (p, q, r):
        futures.append(_play(policy, requests[4:], np.random.default_rng(seed + 1), family))
    for other in futures[1:]:
        for (fa, va), (fb, vb) in zip(futures[0], other):
            assert np.array_equal(fa, fb) and np.array_equal(va, vb)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_changes_nothing(name):
    p = _make(name, 2, name == "proportional-share")
    if name == "oracle":
        p.set_true_means(["a", "b"], [0.3, 0.6])
    a = p.allocate_batch(["a", "b"], [[1.0, 1.0], [1.0, 2.0]], [2.0, 2.0])
    before = p.get_state()
    bad = [
        lambda: p.allocate_batch(["a", "b"], [[np.nan, 1.0], [1.0, 1.0]], [2.0, 2.0]),
        lambda: p.allocate_batch(["a", "b"], [[1.0, 1.0], [1.0, 1.0]], [-1.0, 2.0]),
        lambda: p.allocate_batch(["a"], [[1.0, 1.0, 1.0]], [2.0, 2.0]),
        lambda: p.observe(a.round, ["nobody"], rewards=[0.5]),
        lambda: p.observe(a.round, a.allocated_agents()[:1], rewards=[2.0]),
        lambda: RoundRequest.build(["a"], [[1.0, 1.0]], [1.0, 1.0], pace=[-1.0, 0.0]),
    ]
    for call in bad:
        with pytest.raises(ValueError):
            call()
    assert_state_equal(p.get_state(), before)


def _played(name: str):
    p = _make(name, 2, name == "proportional-share")
    if name == "oracle":
        p.set_true_means(["a", "b", "c"], [0.2, 0.5, 0.8])
    rng = np.random.default_rng(0)
    req = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 1.0]])
    for _ in range(5):
        pace = np.array([2.0, 2.0])
        a = p.allocate(RoundRequest.build(list("abc"), req, [3.0, 3.0], pace=pace))
        got = a.allocated_agents()
        if got:
            p.observe(a.round, got, rewards=rng.random(len(got)))
    return p


CORRUPT_EXTRA = {
    "oracle": [
        lambda e: e.pop("known"),
        lambda e: e.update(means=e["means"].astype(np.float32)),
        lambda e: e.update(means=np.r_[e["means"], 0.5]),
        lambda e: e.update(means=e["means"] * 0 + 1.5),
        lambda e: e.update(means=np.where(e["known"], np.nan, 0.0)),
        lambda e: e.update(known=np.zeros_like(e["known"])),  # values without their flag
        lambda e: e.update(extra_key=1),
    ],
    "epsilon-greedy": [
        lambda e: e.update(explorations=-1),
        lambda e: e.update(explorations=1.0),
        lambda e: e.update(explorations=10**6),  # more than the rounds played
        lambda e: e.update(explorations=True),
    ],
    "pd-bwk": [
        lambda e: e.update(log_weights=e["log_weights"] - 1.0),  # not normalized
        lambda e: e.update(log_weights=np.array([0.0])),
        lambda e: e.update(log_weights=np.array([0.0, np.nan])),
        lambda e: e.update(log_weights=np.array([0.0, 5.0])),
        lambda e: e.update(log_weights=[0.0, 0.0]),
    ],
    "constrained-ts-pacing": [
        lambda e: e.update(price=np.array([-1.0, 0.0])),
        lambda e: e.update(price=np.array([np.inf, 0.0])),
        lambda e: e.update(price=np.zeros(3)),
        lambda e: e.update(price=np.zeros(2, dtype=np.int64)),
        lambda e: e.clear(),
    ],
}


@pytest.mark.parametrize("name", NAMES)
def test_corrupted_extra_state_is_refused(name):
    p = _played(name)
    good = p.get_state()
    corruptions = CORRUPT_EXTRA.get(name, [lambda e: e.update(unexpected=1)])
    for corrupt in corruptions:
        state = copy.deepcopy(good)
        corrupt(state["extra"])
        with pytest.raises(StateError):
            p.set_state(state)
        with pytest.raises(StateError):
            type(p).from_state(state)
        assert_state_equal(p.get_state(), good)
    p.set_state(copy.deepcopy(good))  # the good state is accepted
    assert_state_equal(p.get_state(), good)


def test_pacing_state_matters_and_round_trips():
    """The learned extra state is what it should be after play, and it is restored."""
    p = _played("constrained-ts-pacing")
    assert p.price.max() > 0  # it overspent a pace of 2 with budgets of 3
    q = type(p).from_state(p.get_state())
    assert np.array_equal(q.price, p.price)
    w = _played("pd-bwk")
    assert np.isclose(w.dual_weights.sum(), 1.0) and w.log_weights.max() == 0.0
    e = _played("epsilon-greedy")
    assert type(e).from_state(e.get_state()).explorations == e.explorations
