"""The baselines of SPEC §5 do what their papers say on small cases.

Each test names the property it checks; budgets are checked with the canonical float64 sum.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from librex_alloc import (
    FairnessConfig,
    InvalidConfigError,
    InvalidInputError,
    RoundRequest,
    SyntheticEnvironment,
    make_policy,
    simulate,
)
from librex_alloc.policies import BASELINES, POLICIES
from librex_alloc.policies._common import greedy_fill
from librex_alloc.policies.irs import lookahead_sample, remaining_plays
from librex_alloc.posteriors import make_posterior

NAMES = [cls.name for cls in BASELINES]


def test_every_baseline_is_made_by_name():
    assert set(NAMES) <= set(POLICIES)
    assert {"oracle", "cucb", "epsilon-greedy", "ts-unconstrained", "greedy", "round-robin",
            "proportional-share", "bts", "fair-learn", "irs-fh", "drf", "pd-bwk",
            "constrained-ts-pacing"} <= set(NAMES)
    for name in NAMES:
        p = make_policy(name, n_resources=2, seed=0,
                        divisible=name == "proportional-share")
        assert p.name == name and type(p) is POLICIES[name]
        assert p.params == type(p).Params() and p.params.to_dict() == type(p).PARAMS
    p = make_policy("cucb", n_resources=3, oracle="fast", params={"exploration": 1.5})
    assert p.params.to_dict() == {"exploration": 1.5} and p.params.exploration == 1.5


# ------------------------------------------------------------------------------ heuristics
def test_round_robin_serves_everyone_equally():
    """7 identical agents, room for 3 a round: after every round the service counts differ
    by at most 1, and everyone's turn comes (also with 2 resources)."""
    p = make_policy("round-robin", n_resources=2, seed=0)
    ids = [f"a{i}" for i in range(7)]
    counts = np.zeros(7)
    for _ in range(40):
        a = p.allocate_batch(ids, np.ones((7, 2)), [3.0, 3.5])
        assert a.selected.sum() == 3
        counts += a.selected
        assert counts.max() - counts.min() <= 1
        p.observe(a.round, a.allocated_agents(), rewards=np.zeros(3))  # rewards are ignored
    _, served = p.utilities("service")
    assert np.array_equal(served, counts)


def test_round_robin_skips_what_does_not_fit_and_keeps_its_turn():
    p = make_policy("round-robin", n_resources=1, seed=0)
    req = np.array([[3.0], [1.0], [1.0]])
    a = p.allocate_batch(["big", "s1", "s2"], req, [2.0])
    assert list(a.selected) == [False, True, True]  # "big" does not fit this round
    a = p.allocate_batch(["big", "s1", "s2"], req, [3.0])
    assert list(a.selected) == [True, False, False]  # least served goes first


def _nsdi_round(divisible: bool):
    """The NSDI 2011 example: capacity ⟨9 CPU, 18 GB⟩; user A's tasks need ⟨1, 4⟩, user B's
    ⟨3, 1⟩. Tasks are modelled as options: option k−1 of a user is a bundle of k tasks
    (k = 1..9), so the user's level is how many tasks it runs."""
    ids = ["A"] * 9 + ["B"] * 9
    k = np.arange(1, 10, dtype=float)[:, None]
    req = np.vstack([k * [1.0, 4.0], k * [3.0, 1.0]])
    return ids, req, np.r_[np.arange(9), np.arange(9)]


def test_drf_reproduces_the_nsdi_2011_example():
    ids, req, opts = _nsdi_round(False)
    p = make_policy("drf", n_resources=2, seed=0)
    a = p.allocate_batch(ids, req, [9.0, 18.0], options=opts)
    tasks = {ids[i]: int(opts[i]) + 1 for i in np.flatnonzero(a.selected)}
    assert tasks == {"A": 3, "B": 2}
    # equal dominant shares 12/18 = 6/9 = 2/3, CPU exhausted
    assert np.array_equal(a.usage, [9.0, 14.0])
    # the same with the users the other way round (ties are broken by slot, not name)
    q = make_policy("drf", n_resources=2, seed=0)
    b = q.allocate_batch(ids[::-1], req[::-1], [9.0, 18.0], options=opts[::-1])
    assert {ids[::-1][i]: int(opts[::-1][i]) + 1 for i in np.flatnonzero(b.selected)} == tasks


def test_drf_divisible_is_the_continuous_progressive_filling():
    """Divisible mode, one demand of 10 tasks per user: A gets 3 tasks' worth (0.3 of
    ⟨10, 40⟩) and B 2 (0.2 of ⟨30, 10⟩), the paper's continuous solution."""
    p = make_policy("drf", n_resources=2, seed=0, divisible=True)
    a = p.allocate_batch(["A", "B"], [[10.0, 40.0], [30.0, 10.0]], [9.0, 18.0])
    assert np.allclose(a.fractions, [0.3, 0.2], rtol=1e-12)
    assert np.all(a.usage <= [9.0, 18.0])
    # weighted DRF: B with weight 2 gets twice A's dominant share
    w = make_policy("drf", n_resources=2, seed=0, divisible=True)
    w.set_weights({"B": 2.0})
    b = w.allocate_batch(["A", "B"], [[10.0, 40.0], [30.0, 10.0]], [9.0, 18.0])
    share = b.fractions * np.array([40 / 18, 30 / 9])
    assert share[1] == pytest.approx(2 * share[0])


def test_proportional_share_gives_every_agent_the_same_fraction():
    p = make_policy("proportional-share", n_resources=2, divisible=True)
    a = p.allocate_batch(list("abc"), [[1.0, 2.0], [2.0, 1.0], [3.0, 3.0]], [3.0, 4.0])
    assert np.allclose(a.fractions, 0.5) and np.all(a.usage <= [3.0, 4.0])
    # shares of each resource are proportional to the requests
    b = p.allocate_batch(list("ab"), [[1.0, 1.0], [1.0, 1.0]], [10.0, 10.0])
    assert np.array_equal(b.fractions, [1.0, 1.0])  # everything fits: full requests
    with pytest.raises(InvalidConfigError, match="divisible"):
        make_policy("proportional-share", n_resources=1)


def test_ts_unconstrained_truncates_the_ranking_while_greedy_fills():
    """The fill rules: a ranking truncated at the first misfit vs first fit."""
    req = np.array([[2.0], [2.0], [1.0]])
    groups = np.arange(3)
    prefix = greedy_fill(np.arange(3), req, np.array([3.0]), groups, prefix_only=True)
    first_fit = greedy_fill(np.arange(3), req, np.array([3.0]), groups)
    assert list(prefix) == [1, 0, 0] and list(first_fit) == [1, 0, 1]
    frac = greedy_fill(np.arange(3), req, np.array([3.0]), groups, divisible=True)
    assert list(frac) == [1.0, 0.5, 0.0]  # the fractional knapsack's last item


def test_greedy_takes_by_density():
    """Posterior means from a strong prior of observations: a (0.9, size 3) is worth less per
    unit than b and c (0.6, size 1 each)."""
    p = make_policy("greedy", n_resources=1, seed=0)
    req = np.array([[3.0], [1.0], [1.0]])
    for reward, who in ((0.9, "a"), (0.6, "b"), (0.6, "c")):
        for i in range(20):
            a = p.allocate_batch([who], req[:1], [3.0])
            p.observe(a.round, [who], successes=[1.0 if i < 20 * reward else 0.0])
    a = p.allocate_batch(list("abc"), req, [3.0])
    assert list(a.selected) == [False, True, True]


# ------------------------------------------------------------------------------ learners
def _instance():
    """5 agents, 2 resources; room for two of the small ones or the big one plus one."""
    means = np.array([0.9, 0.15, 0.8, 0.3, 0.1])
    req = np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    return list("abcde"), means, req, np.array([3.0, 3.0])


def _play(policy, ids, means, req, budget, rounds, seed=0, true_means=False):
    rng = np.random.default_rng(seed)
    if true_means:
        policy.set_true_means(ids, means)
    chosen = []
    for _ in range(rounds):
        a = policy.allocate_batch(ids, req, budget)
        assert np.all(req[a.selected].sum(axis=0) <= budget)
        rows = np.flatnonzero(a.selected)
        if len(rows):
            policy.observe(a.round, [ids[i] for i in rows],
                           successes=(rng.random(len(rows)) < means[rows]).astype(float))
        chosen.append(a.selected.copy())
    return np.array(chosen)


def test_cucb_indices_are_ucb1():
    """Every arm is played once first; then index = empirical mean + sqrt(c ln t / n) with t
    the round number (c = 2: UCB1, Auer et al. 2002)."""
    p = make_policy("cucb", n_resources=1, seed=0)
    rng = np.random.default_rng(1)
    means = np.array([0.7, 0.5, 0.2])
    hits, plays = np.zeros(3), np.zeros(3)
    for t in range(1, 31):
        a = p.allocate_batch([0, 1, 2], np.ones((3, 1)), [1.0])
        (arm,) = np.flatnonzero(a.selected)
        if t <= 3:
            assert plays[arm] == 0  # an untried arm first
        else:
            expect = hits / plays + np.sqrt(2.0 * np.log(t) / plays)
            assert np.allclose(a.values, expect, rtol=1e-12) and arm == np.argmax(expect)
        flag = float(rng.random() < means[arm])
        p.observe(a.round, [int(arm)], successes=[flag])
        hits[arm] += flag
        plays[arm] += 1


@pytest.mark.parametrize("name", ["cucb", "constrained-ts"])
def test_learners_converge_to_the_oracle_set(name):
    ids, means, req, budget = _instance()
    best = _play(make_policy("oracle", n_resources=2, oracle="exact"), ids, means, req, budget,
                 1, true_means=True)[0]
    assert list(best) == [True, False, True, False, False]  # a + c: 1.7
    chosen = _play(make_policy(name, n_resources=2, oracle="exact", seed=1), ids, means, req,
                   budget, 500)
    hits = np.all(chosen == best, axis=1)
    assert hits[-100:].mean() >= 0.9, hits[-100:].mean()
    assert hits[-100:].mean() > hits[:20].mean()


def test_oracle_regret_is_zero():
    env = SyntheticEnvironment(n_agents=12, n_resources=2, options_per_agent=2, seed=3)
    p = make_policy("oracle", n_resources=2, seed=0)
    first = env.requests(1)
    p.set_true_means(first.request.agent_ids, env.expected(first.agent_index,
                                                           first.request.options),
                     options=first.request.options)
    df = simulate(p, env, 30, seed=0)
    assert np.allclose(df["regret"], 0.0, atol=1e-12)
    assert df["expected_reward"].iloc[0] > 0


def test_oracle_needs_its_means_and_validates_them():
    p = make_policy("oracle", n_resources=1, seed=0)
    p.set_true_means(["a"], [0.5])
    before = p.get_state()
    with pytest.raises(InvalidInputError, match="no true mean"):
        p.allocate_batch(["a", "b"], [[1.0], [1.0]], [2.0])
    with pytest.raises(InvalidInputError):
        p.set_true_means(["a", "b"], [0.5, 1.5])
    with pytest.raises(InvalidInputError):
        p.set_true_means(["a", "a"], [0.5, 0.4])
    with pytest.raises(InvalidInputError):
        p.set_true_means(["c"], [float("nan")])
    after = p.get_state()
    assert after["registry"]["agent_ids"] == before["registry"]["agent_ids"] == ["a"]
    p.remove_agents(["a"])
    p.set_true_means(["z"], [0.25])  # takes the freed slot, with its own mean only
    a = p.allocate_batch(["z"], [[1.0]], [1.0])
    assert a.values[0] == 0.25


def test_epsilon_greedy_explores_at_rate_epsilon():
    """One unit of budget among 10 arms: once the means are learned, the greedy rounds play
    the best arm, so a non-best arm is played in about ε·9/10 of the rounds."""
    eps, rounds = 0.2, 1500
    means = np.array([0.9] + [0.3] * 9)
    p = make_policy("epsilon-greedy", n_resources=1, seed=4, params={"epsilon": eps})
    chosen = _play(p, list(range(10)), means, np.ones((10, 1)), np.ones(1), rounds, seed=4)
    assert abs(p.explorations / rounds - eps) < 4 * np.sqrt(eps * (1 - eps) / rounds)
    late = chosen[rounds // 2:]
    off = 1.0 - late[:, 0].mean()
    assert abs(off - eps * 0.9) < 0.05, off
    greedy = make_policy("epsilon-greedy", n_resources=1, seed=4, params={"epsilon": 0.0})
    _play(greedy, list(range(10)), means, np.ones((10, 1)), np.ones(1), 50)
    assert greedy.explorations == 0


def test_fair_learn_keeps_every_deficit_within_its_tolerance():
    """6 unit-size agents, room for 2 a round; the three worst need ρ = 0.3 of the rounds.
    Fair-Learn is α-fair in Patil et al.'s sense, N_i(t) ≥ ⌊ρ_i t − α⌋ at every round
    (deficits ρ_i t − N_i below α + 1); constrained TS starves them."""
    ids = list("abcdef")
    means = np.array([0.9, 0.85, 0.8, 0.2, 0.1, 0.05])
    rho = np.array([0.0, 0.0, 0.0, 0.3, 0.3, 0.3])
    alpha = 2.0
    req, budget = np.ones((6, 1)), np.array([2.0])

    def worst_deficit(policy, shares=True):
        if shares:
            policy.set_min_share(ids, rho)
        chosen = _play(policy, ids, means, req, budget, 200, seed=2)
        served = np.cumsum(chosen, axis=0)
        t = np.arange(1, len(chosen) + 1)[:, None]
        return (rho * t - served).max(axis=0)

    fair = make_policy("fair-learn", n_resources=1, seed=2, params={"alpha": alpha})
    worst = worst_deficit(fair)
    assert np.all(worst < alpha + 1), worst
    assert worst.max() > alpha  # the tolerance is used: served only when beyond it
    plain = make_policy("constrained-ts", n_resources=1, seed=2)  # without minimum shares
    assert worst_deficit(plain, shares=False).max() > 10 * alpha
    with pytest.raises(InvalidConfigError, match="fair-learn"):
        make_policy("fair-learn", n_resources=1, fairness="proportional")


def test_irs_fh_look_ahead():
    """μ̂ is the posterior mean after H simulated plays: H = 0 gives the posterior mean, H = ∞
    a Thompson sample; its mean is the posterior mean for every H (a martingale) and its
    spread grows with H."""
    post = make_posterior("bernoulli", alpha_prior=3.0, beta_prior=5.0)
    post.resize(1)
    slots = np.zeros(20000, dtype=np.int64)
    rng = np.random.default_rng(0)
    h0 = lookahead_sample(post, slots, np.zeros(len(slots)), rng)
    assert np.all(h0 == 3.0 / 8.0)
    spread = []
    for h in (1.0, 10.0, np.inf):
        mu = lookahead_sample(post, slots, np.full(len(slots), h), rng)
        assert abs(mu.mean() - 3.0 / 8.0) < 0.01
        spread.append(mu.std())
    beta_sd = np.sqrt(3 * 5 / (8**2 * 9))
    assert spread[0] < spread[1] < spread[2] == pytest.approx(beta_sd, rel=0.05)
    # H: remaining rounds from the pace, capped by what the agent's own request allows
    h = remaining_plays(np.array([[1.0, 0.0], [4.0, 1.0]]), np.array([10.0, 10.0]),
                        np.array([2.0, 1.0]), np.inf)
    assert list(h) == [5.0, 2.0]
    # per-round budgets: the budget renews, H is the rounds left (params["horizon"])
    assert list(remaining_plays(np.ones((2, 1)), np.ones(1), None, 7.0)) == [7.0, 7.0]
    p = make_policy("irs-fh", n_resources=1, seed=0, params={"horizon": 20})
    values = [p.allocate_batch(list("ab"), np.ones((2, 1)), [1.0]).values for _ in range(21)]
    assert len({v for vs in values[:5] for v in vs}) > 5  # random while plays remain
    assert np.array_equal(values[20], [0.5, 0.5])  # round 21: H = 0, the posterior mean
    g = make_posterior("gaussian")
    g.resize(1)
    assert np.allclose(lookahead_sample(g, slots[:5], np.zeros(5), rng), 0.0)


# ------------------------------------------------------------------------------ pacing
def _horizon_run(name, seed=0, rounds=160, tightness=0.3, **kw):
    """Horizon-budget mode: one budget B = τ·Σ_i r_i·T for the run; each round the hard cap
    is what is left and the pace what is left over the rounds left."""
    env = SyntheticEnvironment(n_agents=10, n_resources=2, tightness=tightness, seed=seed)
    p = make_policy(name, n_resources=2, seed=seed, **kw)
    rng = np.random.default_rng(seed)
    total = env.budget * rounds
    left = total.copy()
    spend, paces = [], []
    for t in range(rounds):
        er = env.requests(t)
        pace = left / (rounds - t)
        req = RoundRequest.build(er.request.agent_ids, er.request.requests, left, pace=pace)
        a = p.allocate(req)
        used = a.fractions @ req.requests
        assert np.all(req.requests[a.selected].sum(axis=0) <= left)
        assert np.all(used <= left)
        rows = np.flatnonzero(a.selected)
        if len(rows):
            p.observe(a.round, [req.agent_ids[i] for i in rows],
                      rewards=env.sample(er.agent_index[rows], er.request.options[rows], rng))
        left = left - used
        spend.append(used)
        paces.append(pace)
    return np.array(spend), np.array(paces), total, p


@pytest.mark.parametrize("name", ["constrained-ts-pacing", "pd-bwk", "bts", "irs-fh"])
def test_pacing_policies_spend_the_pace_and_never_the_budget(name):
    spend, paces, total, _ = _horizon_run(name)
    if name != "constrained-ts-pacing":  # one "pull" a round: at most the pace
        assert np.all(spend <= paces)
    used = spend.sum(axis=0) / total
    assert np.all(used <= 1.0) and used.max() >= 0.9, used  # the budget is (nearly) spent
    # ... evenly: every quarter of the run spends about a quarter of it
    quarters = spend.reshape(4, -1, 2).sum(axis=1) / total
    k = int(np.argmax(used))
    assert np.all(np.abs(quarters[:, k] - 0.25) < 0.08), quarters[:, k]
    ratio = spend[:, k].sum() / paces[:, k].sum()
    assert 0.85 <= ratio <= 1.15, ratio


def test_dual_prices_do_the_pacing():
    """Without its price, constrained TS under the remaining budget spends it up front."""
    spend, _, total, p = _horizon_run("constrained-ts")
    assert np.any(spend[:60].sum(axis=0) >= 0.99 * total)  # gone in the first rounds
    spend, _, total, p = _horizon_run("constrained-ts-pacing")
    assert np.all(spend[:60].sum(axis=0) <= 0.45 * total)
    assert p.price.max() > 0


# ------------------------------------------------------------------------------ params
BAD_PARAMS = {
    "cucb": [{"exploration": -1.0}, {"exploration": "2"}, {"exploration": True}],
    "epsilon-greedy": [{"epsilon": 1.5}, {"epsilon": -0.1}, {"epsilon": None}],
    "fair-learn": [{"alpha": -1.0}, {"alpha": "x"}],
    "irs-fh": [{"horizon": 0}, {"horizon": 1.5}, {"horizon": True}],
    "pd-bwk": [{"epsilon": 0.0}, {"epsilon": 2.0}, {"exploration": -1.0}],
    "constrained-ts-pacing": [{"eta": 0.0}, {"eta": -1.0}, {"initial_price": -1.0}],
}


@pytest.mark.parametrize("name", NAMES)
def test_bad_params_are_refused(name):
    kw = {"n_resources": 1, "divisible": name == "proportional-share"}
    with pytest.raises(InvalidConfigError, match="unknown params"):
        make_policy(name, params={"no_such_param": 1}, **kw)
    for bad in BAD_PARAMS.get(name, []):
        with pytest.raises(InvalidConfigError, match=name):
            make_policy(name, params=bad, **kw)
    ok = make_policy(name, params=dict(POLICIES[name].PARAMS), **kw)
    assert ok.params.to_dict() == POLICIES[name].PARAMS
    with pytest.raises(dataclasses.FrozenInstanceError):
        ok.params.x = 1


def test_fair_learn_refuses_a_reward_loss_bound():
    with pytest.raises(InvalidConfigError, match="fair-learn"):
        make_policy("fair-learn", n_resources=1,
                    fairness=FairnessConfig(max_reward_loss=0.1))
