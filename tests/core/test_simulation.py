"""Synthetic environment, simulator and the demo command."""

from __future__ import annotations

import numpy as np
import pytest

from librex_alloc import ConstrainedThompsonSampling, InvalidConfigError
from librex_alloc.cli import main
from librex_alloc.environments import SyntheticEnvironment
from librex_alloc.simulation import simulate, summarize


def test_environment_budget_and_shapes():
    env = SyntheticEnvironment(n_agents=10, n_resources=3, tightness=0.25, options_per_agent=2,
                               seed=1)
    req = env.requests().request
    assert req.requests.shape == (20, 3) and len(req.agent_ids) == 20
    assert np.allclose(req.budget, 0.25 * env.request_table[:, 0, :].sum(axis=0))
    with pytest.raises(InvalidConfigError):
        SyntheticEnvironment(reward_family="poisson")


def test_simulate_is_reproducible_and_learns():
    env = SyntheticEnvironment(n_agents=20, n_resources=2, tightness=0.3, seed=2)
    frames = [simulate(ConstrainedThompsonSampling(2, oracle="fast", seed=4), env, 300, seed=9)
              for _ in range(2)]
    assert frames[0].drop(columns="oracle_s").equals(frames[1].drop(columns="oracle_s"))
    df = frames[0]
    for col in ("reward", "oracle_reward", "regret", "gini_reward", "jain_reward",
                "utilization_0", "utilization_1", "oracle_s"):
        assert col in df.columns
    assert (df[["utilization_0", "utilization_1"]] <= 1.0 + 1e-12).all().all()
    early, late = df["regret"][:50].mean(), df["regret"][-50:].mean()
    assert late < early, "regret per round does not shrink: the policy does not learn"
    s = summarize(df)
    assert 0.8 < s["reward_vs_oracle"] <= 1.05


def test_demo_command_writes_a_plot(tmp_path, capsys):
    assert main(["demo", "--agents", "8", "--rounds", "30", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "proportional" in text and "Jain" in text
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def _plain_loop(policy, env, rounds, seed):
    """The simulator's round loop as it was before churn, delays and budget modes."""
    from librex_alloc import oracles

    rng = np.random.default_rng(seed)
    out = []
    for t in range(1, rounds + 1):
        rnd = env.requests(t)
        req, idx = rnd.request, rnd.agent_index
        alloc = policy.allocate(req)
        rows = np.nonzero(alloc.fractions > 0)[0]
        frac = alloc.fractions[rows]
        mu = env.expected(idx, req.options)
        rewards = env.sample(idx[rows], req.options[rows], rng)
        if len(rows):
            policy.observe(alloc.round, [req.agent_ids[i] for i in rows],
                           rewards=np.clip(rewards, 0, 1))
        best = oracles.solve(mu, req.requests, req.budget, groups=idx, method="fast")
        used = frac @ req.requests[rows]
        out.append((float(rewards @ frac), float(mu[rows] @ frac), best.objective,
                    len(rows), *(used / req.budget)))
    return out


def test_default_simulation_is_the_plain_loop():
    """With the default settings the new simulator makes exactly the old calls and draws."""
    env = SyntheticEnvironment(n_agents=12, n_resources=2, tightness=0.3, options_per_agent=2,
                               reward_family="beta", seed=5)
    df = simulate(ConstrainedThompsonSampling(2, oracle="fast", seed=1), env, 40, seed=3,
                  oracle_method="fast")
    ref = _plain_loop(ConstrainedThompsonSampling(2, oracle="fast", seed=1), env, 40, 3)
    cols = ["reward", "expected_reward", "oracle_reward", "n_allocated", "utilization_0",
            "utilization_1"]
    assert df[cols].to_numpy().tolist() == [list(r) for r in ref]
    assert (df["budget_mode"] == "round").all()
    assert (df["n_reported"] == df["n_allocated"]).all()
    assert (df[["n_lost", "n_expired", "n_orphaned", "n_left"]] == 0).all().all()
    assert np.allclose(df[["budget_0", "budget_1"]].to_numpy(), env.budget)
    assert np.allclose(df["spend_0"] / df["budget_0"], df["utilization_0"])


@pytest.mark.parametrize("kwargs", [{"budget_mode": "bogus"}, {"budget_mode": None},
                                    {"horizon_budget": [1.0, 1.0]},
                                    {"budget_mode": "horizon", "horizon_budget": [1.0]},
                                    {"budget_mode": "horizon", "horizon_budget": [1.0, -1.0]},
                                    {"budget_mode": "horizon", "horizon_budget": [1.0, np.nan]},
                                    {"budget_mode": "horizon", "horizon_budget": "ab"}])
def test_budget_arguments_are_checked_before_the_first_round(kwargs):
    env = SyntheticEnvironment(n_agents=4, n_resources=2, seed=0)
    p = ConstrainedThompsonSampling(2, oracle="fast", seed=0)
    before, env_before = p.get_state(), env.get_state()
    calls = []
    with pytest.raises(InvalidConfigError):
        simulate(p, env, 5, progress=calls.append, **kwargs)
    assert calls == [] and p.round == 0
    assert p.get_state()["round"] == before["round"]
    assert env.get_state()["round"] == env_before["round"]


def test_progress_and_summary_of_the_new_columns():
    env = SyntheticEnvironment(n_agents=6, n_resources=2, delay=(0, 2), missing_prob=0.3, seed=1)
    calls = []
    df = simulate(ConstrainedThompsonSampling(2, oracle="fast", seed=0), env, 25, seed=2,
                  progress=calls.append)
    assert calls == list(range(1, 26))
    s = summarize(df)
    assert s["budget_mode"] == "round" and s["n_lost"] > 0
    assert s["n_reported"] + s["n_lost"] <= df["n_allocated"].sum()
    assert len(s["spend"]) == 2 and "budget_spent" not in s
