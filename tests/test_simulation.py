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
    assert frames[0].drop(columns="solve_time").equals(frames[1].drop(columns="solve_time"))
    df = frames[0]
    for col in ("reward", "oracle_reward", "regret", "gini_reward", "jain_reward",
                "utilization_0", "utilization_1", "solve_time"):
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
