"""The batch interface: budget, options, outcomes ledger, state, reproducibility, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from librex_alloc import (
    ConstrainedThompsonSampling,
    FairnessConfig,
    InvalidConfigError,
    InvalidInputError,
    LibrexError,
    NotAllocatedError,
    StateError,
    UnknownAgentError,
)
from librex_alloc.checkpoint import load_state, save_state
from tests.conftest import assert_state_equal


def _run(policy, requests, budget, mu, rounds, rng, ids=None):
    ids = list(range(len(requests))) if ids is None else ids
    out = []
    for _ in range(rounds):
        a = policy.allocate_batch(ids, requests, budget)
        rows = np.nonzero(a.selected)[0]
        if len(rows):
            policy.observe(a.round, [ids[i] for i in rows],
                           rewards=(rng.random(len(rows)) < mu[rows]).astype(float))
        out.append(a)
    return out


@st.composite
def batches(draw):
    n = draw(st.integers(0, 30))
    k = draw(st.integers(1, 4))
    elems = st.floats(0, 10, allow_nan=False, allow_infinity=False)
    req = np.array(draw(st.lists(st.lists(elems, min_size=k, max_size=k), min_size=n,
                                 max_size=n)), dtype=float).reshape(n, k)
    budget = np.array(draw(st.lists(st.floats(0, 60), min_size=k, max_size=k)))
    n_agents = draw(st.integers(1, max(1, n)))
    ids = [draw(st.integers(0, n_agents - 1)) for _ in range(n)]
    return ids, req, budget


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.sampled_from(["none", "proportional", "maxmin"]),
       st.sampled_from(["fast", "auto"]), st.booleans())
def test_policy_never_exceeds_budget(batch, mode, oracle, divisible):
    ids, req, budget = batch
    p = ConstrainedThompsonSampling(req.shape[1], fairness=mode, oracle=oracle, time_limit=0.05,
                                    divisible=divisible, seed=0)
    for _ in range(3):
        a = p.allocate_batch(ids, req, budget)
        assert np.all(a.fractions >= 0) and np.all(a.fractions <= 1)
        assert np.all(a.fractions @ req <= budget) if len(ids) else True
        assert np.all(a.usage <= budget)
        if not divisible:
            assert np.all(req[a.selected].sum(axis=0) <= budget)
        per_agent = {}
        for i in np.nonzero(a.fractions > 0)[0]:
            per_agent[ids[i]] = per_agent.get(ids[i], 0) + a.fractions[i]
        # binary: one option per agent; divisible: a mixture of options, fractions sum ≤ 1
        limit = 1.0 + 1e-9 if divisible else 1.0
        assert all(c <= limit for c in per_agent.values()), "an agent got more than one share"


def test_same_seed_same_run(rng):
    req = rng.uniform(1, 5, (20, 3))
    mu = rng.uniform(0.1, 0.9, 20)
    runs = []
    for _ in range(2):
        p = ConstrainedThompsonSampling(3, fairness="proportional", oracle="fast", seed=7)
        runs.append(_run(p, req, 0.3 * req.sum(0), mu, 40, np.random.default_rng(1)))
    for a, b in zip(*runs):
        assert np.array_equal(a.selected, b.selected)
        assert np.array_equal(a.values, b.values)
    p3 = ConstrainedThompsonSampling(3, fairness="proportional", oracle="fast", seed=8)
    other = _run(p3, req, 0.3 * req.sum(0), mu, 40, np.random.default_rng(1))
    assert any(not np.array_equal(a.values, b.values) for a, b in zip(runs[0], other))


@pytest.mark.parametrize("family", ["bernoulli", "gaussian"])
def test_state_round_trip_gives_same_future(tmp_path, rng, family):
    req = rng.uniform(1, 5, (15, 2))
    mu = rng.uniform(0.1, 0.9, 15)
    cfg = FairnessConfig(mode="proportional", min_share=0.1, horizon=50.0)
    p = ConstrainedThompsonSampling(2, fairness=cfg, oracle="fast", reward_family=family,
                                    discount=0.99, seed=3)
    _run(p, req, 0.4 * req.sum(0), mu, 30, rng)
    a = p.allocate_batch(list(range(15)), req, 0.4 * req.sum(0))  # leave a round pending
    save_state(p.get_state(), tmp_path / "policy.parquet")
    other = ConstrainedThompsonSampling(2, fairness="none", oracle="fast", seed=999)
    with pytest.raises(StateError, match="configuration differs"):
        other.set_state(load_state(tmp_path / "policy.parquet"))
    q = ConstrainedThompsonSampling.from_state(load_state(tmp_path / "policy.parquet"))
    assert q.config == p.config
    assert_state_equal(p.get_state(), q.get_state())
    ids = a.allocated_agents()
    p.observe(a.round, ids, rewards=np.full(len(ids), 0.5))
    q.observe(a.round, ids, rewards=np.full(len(ids), 0.5))
    r1 = _run(p, req, 0.4 * req.sum(0), mu, 20, np.random.default_rng(5))
    r2 = _run(q, req, 0.4 * req.sum(0), mu, 20, np.random.default_rng(5))
    for x, y in zip(r1, r2):
        assert np.array_equal(x.values, y.values) and np.array_equal(x.selected, y.selected)


def test_outcome_is_applied_once():
    p = ConstrainedThompsonSampling(1, oracle="fast", seed=0)
    a = p.allocate_batch(["a", "b"], [[1.0], [1.0]], [5.0])
    assert p.observe(a.round, ["a", "b"], rewards=[1.0, 0.0]) == 2
    before = p.get_state()
    assert p.observe(a.round, ["a", "b"], rewards=[1.0, 0.0]) == 0  # a retried call
    assert p.observe(a.round, ["b"], successes=[1]) == 0
    assert_state_equal(before, p.get_state())


def test_late_outcomes_and_expiry():
    p = ConstrainedThompsonSampling(1, oracle="fast", max_pending_rounds=3, seed=0)
    first = p.allocate_batch(["a", "b"], [[1.0], [1.0]], [5.0])
    for _ in range(2):
        p.allocate_batch(["a"], [[1.0]], [5.0])
    assert p.observe(first.round, ["a"], rewards=[0.3]) == 1  # late but still pending
    p.allocate_batch(["a"], [[1.0]], [5.0])
    with pytest.raises(NotAllocatedError):  # round 1 expired after 3 newer rounds
        p.observe(first.round, ["b"], rewards=[0.3])
    assert p.observe(first.round + 1, ["a"], rewards=[0.3]) == 1


def test_options_at_most_one_per_agent_and_learned_per_option():
    rng = np.random.default_rng(0)
    p = ConstrainedThompsonSampling(2, oracle="fast", seed=0)
    ids = ["x", "x", "y", "y"]
    req = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    mu = np.array([0.9, 0.1, 0.2, 0.8])
    counts = np.zeros(4)
    for _ in range(400):
        a = p.allocate_batch(ids, req, [1.0, 1.0])
        rows = np.nonzero(a.selected)[0]
        assert len({ids[i] for i in rows}) == len(rows)
        counts[rows] += 1
        p.observe(a.round, [ids[i] for i in rows], rewards=(rng.random(len(rows)) < mu[rows]))
    # the best assignment: x on resource 0 (0.9) and y on resource 1 (0.8)
    assert counts[0] > 300 and counts[3] > 300


def test_agents_join_and_leave():
    p = ConstrainedThompsonSampling(1, oracle="fast", seed=0)
    a = p.allocate_batch(["a", "b"], [[1.0], [1.0]], [5.0])
    p.observe(a.round, ["a", "b"], rewards=[1.0, 1.0])
    p.remove_agents(["a"])
    with pytest.raises(UnknownAgentError):
        p.observe(a.round, ["a"], rewards=[1.0])
    b = p.allocate_batch(["c", "b"], [[1.0], [1.0]], [5.0])
    assert set(b.allocated_agents()) == {"b", "c"}
    assert sorted(p.registry.agents()) == ["b", "c"]
    assert p.registry.n_agent_slots == 2  # the freed slot was reused


# -- bad input: a clear error and no change ---------------------------------------------------
def _fresh_policy():
    p = ConstrainedThompsonSampling(2, fairness="proportional", oracle="fast", seed=0)
    a = p.allocate_batch(["a", "b", "c"], [[1.0, 1.0], [2.0, 1.0], [9.0, 9.0]], [3.0, 3.0])
    return p, a


BAD_ALLOCATE = [
    ((["a"], [[np.nan, 1.0]], [3.0, 3.0]), InvalidInputError),
    ((["a"], [[np.inf, 1.0]], [3.0, 3.0]), InvalidInputError),
    ((["a"], [[-1.0, 1.0]], [3.0, 3.0]), InvalidInputError),
    ((["a"], [[1.0, 1.0]], [-3.0, 3.0]), InvalidInputError),
    ((["a"], [[1.0, 1.0]], [np.nan, 3.0]), InvalidInputError),
    ((["a"], [[1.0, 1.0]], [3.0]), InvalidInputError),
    ((["a"], [[1.0, 1.0, 1.0]], [3.0, 3.0]), InvalidInputError),
    ((["a", "b"], [[1.0, 1.0]], [3.0, 3.0]), InvalidInputError),
    (([["unhashable"]], [[1.0, 1.0]], [3.0, 3.0]), InvalidInputError),
    (("ab", [[1.0, 1.0], [1.0, 1.0]], [3.0, 3.0]), InvalidInputError),
]


@pytest.mark.parametrize("args,error", BAD_ALLOCATE)
def test_bad_allocate_input_changes_nothing(args, error):
    p, _ = _fresh_policy()
    before = p.get_state()
    with pytest.raises(error):
        p.allocate_batch(*args)
    assert_state_equal(before, p.get_state())


def test_bad_outcomes_change_nothing():
    p, a = _fresh_policy()
    allocated = a.allocated_agents()
    assert "c" not in allocated  # c's request exceeds the budget
    before = p.get_state()
    cases = [
        (lambda: p.observe(a.round, ["zzz"], rewards=[1.0]), UnknownAgentError),
        (lambda: p.observe(a.round, ["c"], rewards=[1.0]), NotAllocatedError),
        (lambda: p.observe(a.round + 5, allocated, rewards=[1.0] * len(allocated)),
         NotAllocatedError),
        (lambda: p.observe(a.round, allocated[:1], rewards=[1.5]), InvalidInputError),
        (lambda: p.observe(a.round, allocated[:1], rewards=[-0.1]), InvalidInputError),
        (lambda: p.observe(a.round, allocated[:1], rewards=[np.nan]), InvalidInputError),
        (lambda: p.observe(a.round, allocated[:1], rewards=[0.5, 0.5]), InvalidInputError),
        (lambda: p.observe(a.round, allocated[:1], successes=[2]), InvalidInputError),
        (lambda: p.observe(a.round, allocated[:1]), InvalidInputError),
        (lambda: p.observe(a.round, allocated[:1] * 2, rewards=[1.0, 1.0]), InvalidInputError),
        # one bad row spoils the whole call: nothing is applied
        (lambda: p.observe(a.round, allocated + ["c"], rewards=[1.0] * (len(allocated) + 1)),
         NotAllocatedError),
    ]
    for call, error in cases:
        with pytest.raises(error):
            call()
        assert_state_equal(before, p.get_state())
    assert issubclass(error, LibrexError) and issubclass(error, ValueError)


def test_bad_config():
    with pytest.raises(InvalidConfigError):
        ConstrainedThompsonSampling(2, fairness="fairest")
    with pytest.raises(InvalidConfigError):
        ConstrainedThompsonSampling(2, oracle="gurobi")
    with pytest.raises(InvalidConfigError):
        ConstrainedThompsonSampling(0)
    with pytest.raises(InvalidConfigError):
        ConstrainedThompsonSampling(2, reward_family="poisson")
    with pytest.raises(InvalidConfigError):
        ConstrainedThompsonSampling(2, discount=0.0)
    with pytest.raises(InvalidConfigError):
        ConstrainedThompsonSampling(2, fairness=FairnessConfig(mode="alpha"))


def test_state_of_another_policy_is_refused():
    p, _ = _fresh_policy()
    q = ConstrainedThompsonSampling(3, oracle="fast")
    before = q.get_state()
    with pytest.raises(StateError):
        q.set_state(p.get_state())
    assert_state_equal(before, q.get_state())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["bernoulli", "gaussian"]), st.booleans(), st.integers(0, 10_000))
def test_observe_one_equals_observe(family, flags, seed):
    """The per-agent path (observe_one, used by LibrexAlloc.update) has the same effects and
    the same random draws as the batch observe."""
    rng = np.random.default_rng(seed)
    req = rng.uniform(1, 3, (8, 2))
    ps = [ConstrainedThompsonSampling(2, fairness=FairnessConfig(mode="proportional",
                                                                 horizon=20.0),
                                      oracle="fast", reward_family=family, seed=seed)
          for _ in range(2)]
    for _ in range(6):
        allocs = [p.allocate_batch(list(range(8)), req, [6.0, 6.0]) for p in ps]
        assert np.array_equal(allocs[0].selected, allocs[1].selected)
        for agent in allocs[0].allocated_agents():
            value = float(rng.integers(0, 2)) if flags else float(rng.uniform(0, 1))
            kw = {"successes": [value]} if flags else {"rewards": [value]}
            one = {"success": bool(value)} if flags else {}
            a = ps[0].observe(allocs[0].round, [agent], **kw)
            b = ps[1].observe_one(allocs[1].round, agent, None if flags else value, **one)
            assert a == 1 and b is True
            assert ps[1].observe_one(allocs[1].round, agent, None if flags else value,
                                     **one) is False
    assert_state_equal(ps[0].get_state(), ps[1].get_state())


def test_the_same_request_object_again_decides_as_a_fresh_one():
    """A caller that passes one RoundRequest every round (the coordinator) skips the id
    look-ups; decisions, state and draws must equal those of a twin given fresh copies, also
    when agents leave and join in between."""
    from conftest import assert_state_equal

    from librex_alloc import ConstrainedThompsonSampling, RoundRequest

    rng = np.random.default_rng(0)
    ids = list(range(200))
    req = rng.uniform(1, 10, (200, 3))
    budget = 0.3 * req.sum(axis=0)
    one = RoundRequest.build(ids, req, budget)
    a = ConstrainedThompsonSampling(3, oracle="fast", seed=4)
    b = ConstrainedThompsonSampling(3, oracle="fast", seed=4)
    for t in range(12):
        if t == 5:
            for p in (a, b):
                p.remove_agents(ids[:50])
        x = a.allocate(one)
        y = b.allocate(RoundRequest.build(list(ids), req.copy(), budget.copy()))
        assert np.array_equal(x.fractions, y.fractions)
        sel = np.flatnonzero(x.selected)
        outcomes = rng.random(len(sel)) < 0.5
        a.observe(x.round, [ids[i] for i in sel], successes=outcomes)
        b.observe(y.round, [ids[i] for i in sel], successes=outcomes)
    assert_state_equal(a.get_state(), b.get_state())
