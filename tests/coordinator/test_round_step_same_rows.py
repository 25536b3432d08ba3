"""One round step: the same seeded instance through ``simulate`` and through the coordinator
in-process (LocalTransport + AgentShard) gives identical metrics rows in every shared column.

Rewards are deterministic (Gaussian, noise 0), so the simulator's and the shards' reward
streams agree and the learning policies see the same outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from runtime_helpers import local_run, make_env

from agents import AgentShard
from librex_alloc import PolicyConfig, simulate
from librex_alloc.errors import InvalidConfigError
from librex_alloc.policies import POLICIES
from librex_alloc.round_step import FeedbackSampler, Reference

ROUNDS = 8
ENV = dict(n_agents=40, seed=3, reward_family="gaussian", noise_std=0.0)


@pytest.mark.parametrize("name,fairness", [("constrained-ts", "none"),
                                           ("constrained-ts", "proportional"),
                                           ("round-robin", "none")])
def test_simulate_and_coordinator_give_identical_rows(tmp_path, name, fairness):
    cfg = PolicyConfig(3, fairness=fairness, oracle="fast", seed=7, max_pending_rounds=20)
    cls = POLICIES[name]
    coord, _, _ = local_run(make_env(**ENV), tmp_path, n_shards=2, policy=cfg,
                            policy_class=cls, reference_oracle="fast", fairness_every=1)
    try:
        coord.run(until_round=ROUNDS)
        rt = pd.DataFrame(coord.metrics_since(0, 1000))
    finally:
        coord.close()
    sim = simulate(cls.from_config(cfg), make_env(**ENV), ROUNDS, seed=0, oracle_method="fast")
    # every shared column but the wall times (``*_s``: seconds measured, never reproducible)
    shared = [c for c in sim.columns if c in rt.columns and not c.endswith("_s")]
    assert "oracle_s" in rt.columns and "oracle_s" in sim.columns
    for c in ("round", "n_rows", "n_allocated", "reward", "expected_reward", "oracle_reward",
              "regret", "gini_reward", "jain_service", "utilization_0", "utilization_2",
              "n_reported", "oracle_gap"):
        assert c in shared
    assert len(rt) == len(sim) == ROUNDS
    assert sim["n_allocated"].min() > 0 and sim["regret"].notna().all()
    for c in shared:
        np.testing.assert_array_equal(sim[c].to_numpy(), rt[c].to_numpy(), err_msg=c)


def test_feedback_sampler_is_the_shards():
    env = make_env(n_agents=10, seed=1)
    idx, opts = np.arange(10), np.zeros(10, np.int64)
    fixed = FeedbackSampler(env, delay=2)
    rng = np.random.default_rng(0)
    assert fixed.draw(idx, opts, rng).tolist() == [2] * 10
    assert rng.random() == np.random.default_rng(0).random()  # nothing drawn
    lossy = FeedbackSampler(env, delay=(1, 3), report_prob=0.5)
    d = lossy.draw(idx, opts, np.random.default_rng(4))
    assert set(d.tolist()) <= {-1, 1, 2, 3} and (d == -1).any() and (d > 0).any()
    shard = AgentShard("s", env, delay=(1, 3), report_prob=0.5)
    assert (shard.feedback.delay, shard.feedback.report_prob) == ((1, 3), 0.5)
    with pytest.raises(InvalidConfigError):
        FeedbackSampler(env, delay=(3, 1))
    with pytest.raises(InvalidConfigError):
        FeedbackSampler(env, report_prob=1.5)
    with_env = make_env(n_agents=10, seed=1, delay=(0, 2), missing_prob=0.3)
    a = FeedbackSampler(with_env).draw(idx, opts, np.random.default_rng(5))
    b = with_env.feedback_delays(idx, opts, np.random.default_rng(5))
    assert a.tolist() == b.tolist()


def test_reference_solves_again_only_when_the_rows_change(monkeypatch):
    from librex_alloc import oracles
    calls = []
    real = oracles.solve
    monkeypatch.setattr(oracles, "solve", lambda *a, **k: calls.append(1) or real(*a, **k))
    ref = Reference("fast")
    mu = np.array([0.2, 0.9, 0.5])
    req = np.array([[1.0], [1.0], [1.0]])
    budget = np.array([1.0])
    groups = np.arange(3)
    assert ref.objective(mu, req, budget, groups, False) == pytest.approx(0.9)
    assert ref.objective(mu.copy(), req.copy(), budget.copy(), groups, False) == \
        pytest.approx(0.9)
    assert len(calls) == 1
    assert ref.objective(mu, req, np.array([2.0]), groups, False) == pytest.approx(1.4)
    assert len(calls) == 2
    with pytest.raises(InvalidConfigError):
        Reference("nope")


def test_named_resources_name_the_same_columns_in_both(tmp_path):
    names = ("cpu", "memory", "gpu")

    def named_env():
        env = make_env(**ENV)
        object.__setattr__(env, "resource_names", names)  # as a trace environment names them
        return env

    cfg = PolicyConfig(3, fairness="proportional", oracle="fast", seed=7,
                       max_pending_rounds=20)
    coord, _, _ = local_run(named_env(), tmp_path, policy=cfg, resource_names=list(names))
    try:
        coord.run(until_round=4)
        rt = pd.DataFrame(coord.metrics_since(0, 1000))
    finally:
        coord.close()
    sim = simulate(POLICIES["constrained-ts"].from_config(cfg), named_env(), 4, seed=0,
                   oracle_method="fast")
    cols = [f"utilization_{r}" for r in names]
    assert not any(c.startswith("utilization_0") for c in (*rt.columns, *sim.columns))
    np.testing.assert_array_equal(sim[cols].to_numpy(), rt[cols].to_numpy())
    assert (sim[cols].to_numpy() > 0).any()
    for bad in (("cpu", "cpu", "gpu"), ("cpu", "gpu"), ("cpu", "a b", "gpu"), "cpu"):
        with pytest.raises(InvalidConfigError, match="resource_names"):
            local_run(make_env(**ENV), tmp_path / "bad", policy=cfg, resource_names=bad)
