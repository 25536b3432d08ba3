"""The fairness knob with a bound on lost reward (``max_reward_loss = ε``).

The promise is about expected reward (true means) against the utilitarian constrained TS run;
the policy tracks it with the oracle's bound on the utilitarian optimum of its posterior means
(never its own rule) and credits the fair choice with its realized rewards."""

from __future__ import annotations

import numpy as np
import pytest

import librex_alloc.evaluation.design  # noqa: F401  (registers "design" in POLICIES)
from librex_alloc import (
    ConstrainedThompsonSampling,
    FairnessConfig,
    InvalidConfigError,
    LibrexAlloc,
    PolicyConfig,
    StateError,
    SyntheticEnvironment,
    oracles,
    simulate,
)
from librex_alloc.fairness import LAGRANGIAN_SLACK, REFERENCE_EVERY
from librex_alloc.policies import POLICIES, make_policy
from librex_alloc.request import RoundRequest
from tests.conftest import assert_state_equal

#: policies whose rule ignores the oracle values: they refuse the knob
REFUSERS = {"drf", "round-robin", "proportional-share", "fair-learn", "design"}


def _run(mode, eps, env, rounds=300, seed=0, v=1.0, policy="constrained-ts", **kw):
    fairness = FairnessConfig(mode=mode, max_reward_loss=eps, reward_loss_v=v)
    p = make_policy(policy, n_resources=env.n_resources, fairness=fairness, oracle="fast",
                    seed=seed, **kw)
    df = simulate(p, env, rounds, seed=seed, metrics_every=rounds)
    return p, df


@pytest.mark.slow
@pytest.mark.parametrize("eps", [0.1, 0.2])
def test_the_bound_holds_on_expected_reward(eps):
    """What the user measures: the expected reward (true means) of the fair run over the
    utilitarian TS run's on the same instance and seed, averaged over seeds, is ≥ 1 − ε.
    (Measured on the samples, the old queue kept 0.85–0.87 at ε = 0.1.)"""
    kept = []
    for seed in range(4):
        env = SyntheticEnvironment(n_agents=20, n_resources=3, tightness=0.3, seed=seed)
        _, fair = _run("proportional", eps, env, rounds=400, seed=seed)
        _, util = _run("none", None, env, rounds=400, seed=seed)
        kept.append(fair["expected_reward"].sum() / util["expected_reward"].sum())
    assert np.mean(kept) >= 1 - eps, kept
    assert np.mean(kept) <= 1 - eps + 0.1, f"the knob gives up far less than it may: {kept}"


@pytest.mark.parametrize("seed", [1, 2])
def test_the_queue_credits_realized_rewards_and_its_identity_holds(seed):
    env = SyntheticEnvironment(n_agents=20, n_resources=3, tightness=0.3, seed=seed)
    p, df = _run("proportional", 0.1, env, rounds=200, seed=seed)
    z, r_star, r, rounds = p.fairness.reward_loss[:4]
    assert rounds == 200
    # the fair choice is credited with what it really earned (every outcome arrived)
    assert r == pytest.approx(df["reward"].sum(), rel=1e-12)
    assert r >= 0.9 * r_star - z - 1e-9
    assert z / rounds <= 0.05 * r_star / rounds, "the deficit queue does not stay bounded"
    assert p.fairness.reward_kept_estimate == pytest.approx(r / r_star)


def _instance(rng, n=8, k=2):
    req = rng.uniform(1.0, 4.0, (n, k))
    return req, 0.4 * req.sum(axis=0)


def _policy(name, eps=0.2, **kw):
    divisible = name == "proportional-share"
    return make_policy(name, n_resources=2, seed=3, divisible=divisible,
                       fairness=FairnessConfig(mode="maxmin", max_reward_loss=eps), **kw)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_honours_the_knob_with_the_oracle_reference_or_refuses_it(name):
    """Honoured: each round's reference is the oracle's bound on the utilitarian optimum of
    the policy's estimates (true means for the oracle policy), whatever the policy's own rule.
    Refused: a clear error naming the policy and the setting."""
    if name in REFUSERS:
        with pytest.raises(InvalidConfigError, match=f"{name}.*max_reward_loss"):
            _policy(name)
        assert not POLICIES[name].follows_values
        return
    assert POLICIES[name].follows_values
    p = _policy(name)
    rng = np.random.default_rng(0)
    ids = list(range(8))
    mu = np.linspace(0.1, 0.9, 8)
    for _ in range(12):
        req, budget = _instance(rng)  # new rows every round: the reference is solved afresh
        if name == "oracle":
            p.set_true_means(ids, mu)
            est = mu
        else:
            p.register(ids)
            est = p.posterior.mean(p.registry.arms_of(p.registry.lookup(ids),
                                                      np.zeros(8, np.int64)))
        want = oracles.solve(est, req, budget, groups=np.arange(8), method="fast").bound
        best = oracles.solve(est, req, budget, groups=np.arange(8), method="exact").objective
        before, last = p.fairness.reward_loss[1], p.fairness.reward_loss[4]
        a = p.allocate_batch(ids, req, budget)
        got_ref = p.fairness.reward_loss[1] - before
        if p.fairness.reward_loss[6] == p.fairness.reward_loss[3] - 1:  # the oracle solved it
            assert got_ref == pytest.approx(want, rel=1e-12)
        else:  # between two solves: the Lagrangian bound, close to the last oracle bound
            assert got_ref <= (1 + LAGRANGIAN_SLACK) * last
        assert got_ref >= best * (1 - 1e-12)  # an upper bound on the utilitarian optimum
        got = np.flatnonzero(a.selected)
        p.observe(a.round, [ids[i] for i in got], rewards=(rng.random(len(got)) < mu[got]))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(POLICIES) - REFUSERS))
def test_the_knob_steers_every_policy_that_honours_it(name):
    """With the knob, each honouring policy earns more expected reward than its plain max-min
    rule on the same instance and seed: the bound moves its choices."""
    env = SyntheticEnvironment(n_agents=12, n_resources=2, tightness=0.3, seed=5)
    _, plain = _run("maxmin", None, env, rounds=150, seed=5, policy=name)
    _, knob = _run("maxmin", 0.05, env, rounds=150, seed=5, policy=name)
    assert knob["expected_reward"].sum() > plain["expected_reward"].sum()


def test_the_reference_is_reused_on_unchanged_rows_and_resolved_when_they_change():
    p = ConstrainedThompsonSampling(2, fairness=FairnessConfig(mode="proportional",
                                                               max_reward_loss=0.1), seed=1)
    rng = np.random.default_rng(1)
    req, budget = _instance(rng)
    ids = list(range(8))
    solved_at = []
    for t in range(2 * REFERENCE_EVERY + 3):
        if t == REFERENCE_EVERY + 2:
            req, budget = _instance(rng)  # the rows change: solved again at once
        a = p.allocate_batch(ids, req, budget)
        if p.fairness.reward_loss[6] == t:  # the round count when it was last solved
            solved_at.append(t)
        got = np.flatnonzero(a.selected)
        p.observe(a.round, [ids[i] for i in got], rewards=rng.random(len(got)))
    assert solved_at == [0, REFERENCE_EVERY, REFERENCE_EVERY + 2, 2 * REFERENCE_EVERY + 2]


def test_the_reference_is_never_reused_with_a_discount():
    p = ConstrainedThompsonSampling(2, fairness=FairnessConfig(mode="proportional",
                                                               max_reward_loss=0.1),
                                    discount=0.99, seed=1)
    req, budget = _instance(np.random.default_rng(1))
    for _ in range(4):
        p.allocate_batch(list(range(8)), req, budget)
        assert p.fairness.reward_loss[5] == -1.0  # no key kept: nothing to reuse


def test_horizon_mode_caps_the_reference_at_the_pace():
    p = ConstrainedThompsonSampling(2, fairness=FairnessConfig(mode="proportional",
                                                               max_reward_loss=0.1), seed=1)
    req, budget = _instance(np.random.default_rng(2))
    remaining, pace = 10 * budget, budget
    r = RoundRequest.build(list(range(8)), req, remaining, pace=pace)
    p.allocate(r)
    mean = p.posterior.mean(np.arange(8))
    want = oracles.solve(mean, req, pace, method="fast").bound
    assert p.fairness.reward_loss[1] == pytest.approx(want, rel=1e-12)


def test_a_restored_policy_continues_exactly_like_the_original():
    rng = np.random.default_rng(4)
    req, budget = _instance(rng)
    ids = list(range(8))
    cfg = dict(fairness=FairnessConfig(mode="maxmin", max_reward_loss=0.1), seed=2)
    a, b = ConstrainedThompsonSampling(2, **cfg), None
    outcomes = [rng.random(8) for _ in range(20)]
    for t in range(20):
        if t == 5:  # mid-way between two solves of the reference
            b = ConstrainedThompsonSampling.from_state(a.get_state())
        for p in (a,) if b is None else (a, b):
            al = p.allocate_batch(ids, req, budget)
            got = np.flatnonzero(al.selected)
            p.observe(al.round, [ids[i] for i in got], rewards=outcomes[t][got])
    assert_state_equal(a.get_state(), b.get_state())


def test_a_state_saved_before_the_reference_was_reused_is_accepted():
    p = ConstrainedThompsonSampling(2, fairness=FairnessConfig(mode="proportional",
                                                               max_reward_loss=0.1), seed=1)
    req, budget = _instance(np.random.default_rng(1))
    p.allocate_batch(list(range(8)), req, budget)
    state = p.get_state()
    state["fairness"]["reward_loss"] = state["fairness"]["reward_loss"][:4]
    q = ConstrainedThompsonSampling.from_state(state)
    assert q.fairness.reward_loss[5] == -1.0  # nothing to reuse: solved in the next round


@pytest.mark.parametrize("bad", [[-1.0, 0, 0, 0, 0, -1, 0], [0, 0, 0, 1.5, 0, -1, 0],
                                 [0, 0, 0, 2, 0, 0.5, 0], [0, 0, 0, 2, 0, -1, 3],
                                 [0, 0, 0, 2, 0, 2.0**49, 0], [0, 0, 0, 0, 0, -1]])
def test_a_bad_reward_loss_state_is_refused_and_changes_nothing(bad):
    p = ConstrainedThompsonSampling(2, fairness=FairnessConfig(mode="proportional",
                                                               max_reward_loss=0.1), seed=1)
    req, budget = _instance(np.random.default_rng(1))
    p.allocate_batch(list(range(8)), req, budget)
    twin = p.get_state()
    state = p.get_state()
    state["fairness"]["reward_loss"] = np.array(bad, dtype=np.float64)
    with pytest.raises(StateError, match="reward_loss"):
        p.set_state(state)
    assert_state_equal(p.get_state(), twin)


def test_eps_zero_is_the_utilitarian_policy_and_one_the_plain_rule():
    env = SyntheticEnvironment(n_agents=12, n_resources=2, tightness=0.3, seed=3)
    _, zero = _run("maxmin", 0.0, env, rounds=120)
    _, none = _run("none", None, env, rounds=120)
    assert np.array_equal(zero["expected_reward"], none["expected_reward"])
    _, one = _run("maxmin", 1.0, env, rounds=120)
    _, plain = _run("maxmin", None, env, rounds=120)
    assert np.array_equal(one["expected_reward"], plain["expected_reward"])


def test_the_knob_trades_fairness_for_reward_monotonically():
    env = SyntheticEnvironment(n_agents=20, n_resources=3, tightness=0.3, seed=4)
    rewards, ginis = [], []
    for eps in (0.0, 0.1, 0.3, 1.0):
        _, df = _run("proportional", eps, env, rounds=200)
        rewards.append(df["expected_reward"].sum())
        ginis.append(df["gini_service"].dropna().iloc[-1])
    assert rewards == sorted(rewards, reverse=True)
    assert ginis == sorted(ginis, reverse=True)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), "0.1", True,
                                 np.bool_(False), [0.1], {}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(InvalidConfigError, match="max_reward_loss"):
        FairnessConfig(mode="proportional", max_reward_loss=bad)
    with pytest.raises(InvalidConfigError, match="max_reward_loss"):
        PolicyConfig.from_dict({"n_resources": 1, "fairness": {"max_reward_loss": bad}})
    with pytest.raises(InvalidConfigError, match="max_reward_loss"):
        LibrexAlloc(n_agents=3, max_reward_loss=bad)


@pytest.mark.parametrize("bad", [0.0, -1.0, 2e6, float("nan"), "1", True, None])
def test_bad_correction_speeds_are_refused(bad):
    with pytest.raises(InvalidConfigError, match="reward_loss_v"):
        FairnessConfig(mode="proportional", max_reward_loss=0.1, reward_loss_v=bad)


def test_numpy_numbers_are_accepted():
    cfg = FairnessConfig(mode="proportional", max_reward_loss=np.float32(0.25),
                         reward_loss_v=np.int64(2))
    assert cfg.max_reward_loss == 0.25 and type(cfg.max_reward_loss) is float
    assert cfg.reward_loss_v == 2.0 and type(cfg.reward_loss_v) is float


def test_librex_alloc_takes_the_knob_and_the_gap_tolerance():
    """The original API reaches both settings; its per-agent updates credit the queue as the
    batch path does (twin policies, same decisions, same bookkeeping)."""
    alloc = LibrexAlloc(n_agents=8, n_resource_types=2, fairness_mode="maxmin", seed=7,
                        max_reward_loss=0.1, gap_tolerance=0.05, oracle="fast")
    assert alloc.policy.config.fairness.max_reward_loss == 0.1
    assert alloc.policy.config.gap_tolerance == 0.05
    twin = ConstrainedThompsonSampling(config=alloc.policy.config)
    twin.register(list(range(8)))
    rng = np.random.default_rng(7)
    req, budget = _instance(rng)
    for _ in range(10):
        out = alloc.allocate({i: req[i] for i in range(8)}, budget)
        b = twin.allocate_batch(list(range(8)), req, budget)
        got = [i for i in range(8) if b.selected[i]]
        assert [i for i in range(8) if np.any(out[i] > 0)] == got
        rewards = rng.random(len(got))
        for i, r in zip(got, rewards):
            alloc.update(i, {"reward": float(r)})
        twin.observe(b.round, got, rewards=rewards)
    np.testing.assert_allclose(alloc.policy.fairness.reward_loss, twin.fairness.reward_loss,
                               rtol=1e-12)  # the same but for the order of the sums
    assert alloc.policy.fairness.reward_loss[2] > 0
