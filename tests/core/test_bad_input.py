"""Bad input × every public entry point: a clear LibrexError, and nothing changes.

"Nothing changes" is checked twice: get_state() equals the state before the call, and the next
rounds' draws equal those of an untouched twin. Each reproducer of issue 5 item 1 is a test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from librex_alloc import (
    ConstrainedThompsonSampling,
    FairnessConfig,
    InvalidConfigError,
    LibrexAlloc,
    LibrexError,
    OracleError,
    SyntheticEnvironment,
    simulate,
)
from librex_alloc.checkpoint import load_state, save_state
from librex_alloc.posteriors import MAX_GAUSSIAN_REWARD
from tests.conftest import assert_state_equal

IDS = [0, 1, 2, 3, 4]
REQ = np.array([[1.0, 2.0], [2.0, 1.0], [1.5, 1.5], [3.0, 0.5], [0.5, 3.0]])
BUDGET = np.array([3.0, 3.0])


def _policy(family="bernoulli") -> ConstrainedThompsonSampling:
    p = ConstrainedThompsonSampling(2, fairness="proportional", oracle="fast",
                                    reward_family=family, discount=0.98, seed=11)
    p.set_min_share({0: 0.2})
    for _ in range(3):
        a = p.allocate_batch(IDS, REQ, BUDGET)
        got = a.allocated_agents()
        p.observe(a.round, got, rewards=np.full(len(got), 0.25))
    p.allocate_batch(IDS, REQ, BUDGET)  # round 4 stays pending
    return p


def _draws(p, rounds=3):
    out = []
    for _ in range(rounds):
        a = p.allocate_batch(IDS, REQ, BUDGET)
        out.append((a.values, a.selected))
        got = a.allocated_agents()
        if got:
            p.observe(a.round, got, rewards=np.full(len(got), 0.75))
    return out


def _assert_untouched(p, before, family="bernoulli"):
    assert_state_equal(before, p.get_state())
    twin = _policy(family)
    for (v1, s1), (v2, s2) in zip(_draws(p), _draws(twin)):
        assert np.array_equal(v1, v2) and np.array_equal(s1, s2)


BAD_FLOATS = [np.nan, np.inf, -np.inf, -1.0, "x", None]
bad_float = st.sampled_from(BAD_FLOATS)


def _calls():
    """(name, strategy of a call taking the policy) for every public entry point."""
    def with_bad(arr, bad, pos):
        a = np.array(arr, dtype=object)
        a.flat[pos % a.size] = bad
        return a.tolist()

    calls = {
        "allocate requests": st.builds(
            lambda bad, pos: lambda p: p.allocate_batch(IDS, with_bad(REQ, bad, pos), BUDGET),
            bad_float, st.integers(0, 9)),
        "allocate budget": st.builds(
            lambda bad, pos: lambda p: p.allocate_batch(IDS, REQ, with_bad(BUDGET, bad, pos)),
            bad_float, st.integers(0, 1)),
        "allocate shapes": st.sampled_from([
            lambda p: p.allocate_batch(IDS, REQ[:, :1], BUDGET),
            lambda p: p.allocate_batch(IDS, REQ[:4], BUDGET),
            lambda p: p.allocate_batch(IDS, REQ, BUDGET[:1]),
            lambda p: p.allocate_batch(IDS, REQ[None], BUDGET),
            lambda p: p.allocate_batch("abcde", REQ, BUDGET),
            lambda p: p.allocate_batch([[0], 1, 2, 3, 4], REQ, BUDGET),
            lambda p: p.allocate_batch([None, 1, 2, 3, 4], REQ, BUDGET),
            lambda p: p.allocate_batch([9, 1, 2, 3, 4], REQ, BUDGET, options=[0, 0, 0, 0, 10**12]),
            lambda p: p.allocate_batch([0, 0, 2, 3, 4], REQ, BUDGET, options=[1, 1, 0, 0, 0]),
            lambda p: p.allocate_batch(IDS, REQ, BUDGET, options=[0, 0, 0, 0, -1]),
            lambda p: p.allocate_batch(IDS, REQ, BUDGET, options=[0, 0, 0, 0, 0.5]),
        ]),
        "observe rewards": st.builds(
            lambda bad: lambda p: p.observe(4, p.ledger.pending(4).agents[:1].tolist() and
                                            [p.registry.agent_id(int(p.ledger.pending(4)
                                                                     .agents[0]))],
                                            rewards=[bad]),
            st.sampled_from([np.nan, np.inf, -0.5, 1.5, 1e200, "x", None])),
        "observe other": st.sampled_from([
            lambda p: p.observe(99, [0], rewards=[0.5]),  # a round that was not played
            lambda p: p.observe(-1, [0], rewards=[0.5]),
            lambda p: p.observe("4", [0], rewards=[0.5]),
            lambda p: p.observe(4, ["nobody"], rewards=[0.5]),  # unknown agent
            lambda p: p.observe(4, [0, 0], rewards=[0.5, 0.5]),  # twice in one call
            lambda p: p.observe(4, IDS, rewards=[0.5] * 5),  # some were not allocated
            lambda p: p.observe(4, [0], rewards=[0.5], successes=[1]),
            lambda p: p.observe(4, [0], successes=[2]),
            lambda p: p.observe(4, [0], rewards=[0.5, 0.5]),
        ]),
        "register": st.sampled_from([
            lambda p: p.register(["new"], options=[10**12]),
            lambda p: p.register(["new", "new2"], options=[0]),
            lambda p: p.register("new"),
            lambda p: p.register([{}]),
        ]),
        "weights": st.builds(
            lambda bad: lambda p: p.set_weights({"new": 1.0, 0: bad}),
            st.sampled_from([np.nan, np.inf, -1.0, 0.0, 1e-300, 1e308, "x", None])),
        "min shares": st.builds(
            lambda bad: lambda p: p.set_min_share({"new": 0.5, 0: bad}),
            st.sampled_from([np.nan, np.inf, -1.0, 1.5, 1e308, "x", None])),
        "remove": st.sampled_from([
            lambda p: p.remove_agents([0, "nobody"]),
            lambda p: p.remove_agents(0),
        ]),
        "set_state": st.sampled_from([
            lambda p: p.set_state({}),
            lambda p: p.set_state(None),
            lambda p: p.set_state({**p.get_state(), "round": -5}),
        ]),
    }
    return calls


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(*_calls().values()))
def test_bad_input_to_the_policy_raises_and_changes_nothing(call):
    p = _policy()
    before = p.get_state()
    with pytest.raises(LibrexError):
        call(p)
    _assert_untouched(p, before)


def test_gaussian_reward_rejected_by_the_posterior_leaves_the_outcome_reportable():
    """Reproducer: observe marked (round, agent) as reported before the Gaussian posterior
    rejected rewards=[1e200]; the corrected retry then returned 0 and the outcome was lost."""
    p = _policy("gaussian")
    agent = p.registry.agent_id(int(p.ledger.pending(4).agents[0]))
    before = p.get_state()
    with pytest.raises(LibrexError):
        p.observe(4, [agent], rewards=[1e200])
    assert_state_equal(before, p.get_state())
    assert p.observe(4, [agent], rewards=[2.0]) == 1


def test_accepted_gaussian_rewards_never_brick_the_policy(tmp_path):
    """Reproducer: two rewards of 1e154 overflowed the running sums to inf, every later round
    raised and the checkpoint was refused. Now |y| ≤ 1e100 is accepted (Welford statistics
    stay finite) and larger values are rejected at the boundary."""
    p = ConstrainedThompsonSampling(1, oracle="fast", reward_family="gaussian", seed=0)
    huge = 0
    for t in range(40):
        a = p.allocate_batch(["a", "b"], [[1.0], [1.0]], [2.0])
        got = a.allocated_agents()
        value = {"a": (-1) ** t * MAX_GAUSSIAN_REWARD, "b": 1e-300}
        if got:
            p.observe(a.round, got, rewards=[value[x] for x in got])
        huge += "a" in got
    assert huge >= 4
    state = p.get_state()
    assert all(np.all(np.isfinite(v)) for k, v in state["posterior"].items()
               if isinstance(v, np.ndarray))
    save_state(state, tmp_path / "g.parquet")
    q = ConstrainedThompsonSampling.from_state(load_state(tmp_path / "g.parquet"))
    assert_state_equal(state, q.get_state())
    a = q.allocate_batch(["a", "b"], [[1.0], [1.0]], [2.0])
    assert np.all(np.isfinite(a.values))
    with pytest.raises(LibrexError):
        q.observe(a.round, ["a"], rewards=[1e154])


@pytest.mark.parametrize("call", [
    lambda: FairnessConfig(mode=1e308),
    lambda: FairnessConfig(mode="alpha", alpha=101.0),
    lambda: FairnessConfig(mode="none", alpha=2.0),
    lambda: LibrexAlloc(n_resource_types=1, fairness_mode=1e308),
    lambda: LibrexAlloc(n_resource_types=1, weights={0: 1e308}),
    lambda: LibrexAlloc(n_agents=10**12),
    lambda: ConstrainedThompsonSampling(1, prior={"discount": 0.5}),
    lambda: ConstrainedThompsonSampling(1, reward_family="gaussian", prior={"mu_prior": 1e200}),
    lambda: ConstrainedThompsonSampling(1, seed=-1),
    lambda: ConstrainedThompsonSampling(1, max_pending_rounds=10**12),
])
def test_configurations_that_would_break_later_are_refused_up_front(call):
    with pytest.raises(LibrexError):
        call()


def test_huge_weight_is_refused_before_registering():
    alloc = LibrexAlloc(n_agents=2, n_resource_types=1, seed=0)
    before = alloc.get_state()
    with pytest.raises(LibrexError):
        alloc.set_weights({"new": 2.0, 0: 1e308})
    assert_state_equal(before, alloc.get_state())
    assert "new" not in alloc.policy.registry


@pytest.mark.parametrize("kwargs", [{"metrics_every": 0}, {"oracle_method": "bogus"},
                                    {"oracle_time_limit": 0.0}, {"progress": 3},
                                    {"seed": -1}])
def test_simulate_checks_its_arguments_before_the_first_round(kwargs):
    env = SyntheticEnvironment(n_agents=4, n_resources=2, seed=0)
    p = ConstrainedThompsonSampling(2, oracle="fast", seed=0)
    before, env_before = p.get_state(), env.get_state()
    with pytest.raises(InvalidConfigError):
        simulate(p, env, 5, **kwargs)
    assert_state_equal(before, p.get_state())
    assert_state_equal(env_before, env.get_state())


def test_an_oracle_failure_rolls_back_the_round(monkeypatch):
    """What is only discovered deep inside (the oracle failing) leaves no trace: the RNG,
    new agents and options, and the decayed posterior are all restored."""
    p = _policy()
    before = p.get_state()

    def broken(*args, **kwargs):
        raise OracleError("solver failed")

    monkeypatch.setattr(ConstrainedThompsonSampling, "_decide", broken)
    with pytest.raises(OracleError):  # new agents, a new option of a known agent
        p.allocate_batch(IDS + ["new", 0], np.vstack([REQ, REQ[:2]]), BUDGET,
                         options=[0, 0, 0, 0, 0, 0, 1])
    monkeypatch.undo()
    _assert_untouched(p, before)


def test_librex_alloc_bad_input_changes_nothing():
    alloc = LibrexAlloc(n_agents=3, n_resource_types=2, seed=0)
    alloc.allocate({0: [1.0, 1.0], 1: [1.0, 1.0]}, [2.0, 2.0])
    before = alloc.get_state()
    for call in [
        lambda: alloc.allocate({0: [1.0, np.nan]}, [2.0, 2.0]),
        lambda: alloc.allocate({0: [1.0, 1.0], 5: [1.0]}, [2.0, 2.0]),
        lambda: alloc.allocate({0: [[1.0, 1.0]] * 2000}, [2.0, 2.0]),
        lambda: alloc.allocate([1.0, 1.0], [2.0, 2.0]),
        lambda: alloc.allocate({0: [1.0, 1.0]}, [2.0, -1.0]),
        lambda: alloc.update(0, {"reward": 1e300}),
        lambda: alloc.update(0, {"reward": 0.5, "round": "1"}),
        lambda: alloc.update(0, "good"),
        lambda: alloc.set_min_share({0: 1.5}),
        lambda: alloc.set_state({"api": "LibrexAlloc"}),
    ]:
        with pytest.raises(LibrexError):
            call()
        assert_state_equal(before, alloc.get_state())


EXTREME = st.sampled_from([0.0, 5e-324, 1e-300, 1e-10, 0.3, 1.0, 7.0, 1e10, 1e300, 1.7e308])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 8), st.integers(1, 3), st.data(),
       st.sampled_from(["fast", "auto", "exact"]), st.booleans(),
       st.sampled_from(["none", "proportional", "maxmin"]))
def test_huge_and_tiny_finite_input_is_served_within_budget(n, k, data, oracle, divisible,
                                                            mode):
    """Huge or tiny but finite requests and budgets are valid input: the round is decided,
    the budget holds in float64 and the state stays finite (nothing bricks)."""
    req = np.array(data.draw(st.lists(EXTREME, min_size=n * k, max_size=n * k))).reshape(n, k)
    budget = np.array(data.draw(st.lists(EXTREME, min_size=k, max_size=k)))
    p = ConstrainedThompsonSampling(k, fairness=mode, oracle=oracle, divisible=divisible,
                                    time_limit=0.05, seed=0)
    for _ in range(3):
        a = p.allocate_batch(list(range(n)), req, budget)
        assert np.all(a.fractions @ req <= budget)
        assert np.all(a.granted.sum(axis=0) <= budget)
        if not divisible:
            assert np.all(req[a.selected].sum(axis=0) <= budget)
        got = a.allocated_agents()
        if got:
            p.observe(a.round, got, rewards=np.ones(len(got)))
    assert all(np.all(np.isfinite(v)) for v in p.get_state()["fairness"].values())
