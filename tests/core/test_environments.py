"""Environments: synthetic families, OR-Library, the Alibaba and Bitbrains traces, their states,
and the simulator's handling of churn, delayed / missing feedback, drift and budgets."""

from __future__ import annotations

import copy
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import assert_state_equal

from librex_alloc import ConstrainedThompsonSampling, StateError, make_policy
from librex_alloc.datasets import load_mknap
from librex_alloc.environments import (
    DATA_ENV_VAR,
    FAMILIES,
    AlibabaGpuEnvironment,
    BitbrainsEnvironment,
    Environment,
    EnvironmentRound,
    OrlibEnvironment,
    SyntheticEnvironment,
    find_data,
    load_alibaba,
    load_bitbrains,
)
from librex_alloc.environments.base import SHARED_DATA
from librex_alloc.errors import InvalidConfigError
from librex_alloc.simulation import simulate, summarize

DATA = Path(__file__).parents[1] / "data"
MKNAP = DATA / "mknap1.txt"
ALIBABA = DATA / "alibaba_gpu_v2023_excerpt"
BITBRAINS = DATA / "bitbrains_rnd_excerpt"
FULL_ALIBABA = SHARED_DATA / "alibaba_gpu_v2023"
FULL_BITBRAINS = SHARED_DATA / "bitbrains_rnd" / "2013-7" / "1.csv"
needs_full_alibaba = pytest.mark.skipif(
    not (FULL_ALIBABA / "openb_pod_list_default.csv").is_file(),
    reason=f"the full Alibaba trace is not at {FULL_ALIBABA}")
needs_full_bitbrains = pytest.mark.skipif(
    not FULL_BITBRAINS.is_file(), reason=f"the full Bitbrains file is not at {FULL_BITBRAINS}")


def _h(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()[:16]


# -- the package ---------------------------------------------------------------------------------
def test_package_reexports_what_was_importable():
    import librex_alloc
    from librex_alloc import environments

    for name in ("Environment", "EnvironmentRound", "SyntheticEnvironment", "FAMILIES"):
        assert hasattr(environments, name)
    assert librex_alloc.SyntheticEnvironment is SyntheticEnvironment
    assert FAMILIES == ("bernoulli", "beta", "gaussian")
    assert isinstance(SyntheticEnvironment(n_agents=2), Environment)
    assert SyntheticEnvironment(n_agents=2).is_static
    assert not SyntheticEnvironment(n_agents=2, churn_rate=0.1).is_static
    assert not SyntheticEnvironment(n_agents=2, drift="periodic", drift_rate=0.1).is_static
    assert OrlibEnvironment(path=MKNAP).is_static
    assert AlibabaGpuEnvironment(n_agents=3, path=ALIBABA).is_static
    assert not BitbrainsEnvironment(n_agents=3, path=BITBRAINS).is_static


# -- bit-identical defaults ----------------------------------------------------------------------
# sha256 prefixes of the arrays, computed with the single-module environment before the split
REFERENCE = {
    "default": ({}, "18059d8135465d0c", "ea2e2790ee8821f6", "f9418555503d580f",
                "13ab7dcfb251666f"),
    "options": ({"n_agents": 10, "n_resources": 3, "tightness": 0.25, "options_per_agent": 2,
                 "seed": 1}, "92bc3255fd41634c", "f0d54d5e082a3062", "12472ac43f6da765",
                "4eb87b2ea85bac6e"),
    "hetero": ({"n_agents": 7, "n_resources": 2, "heterogeneity": 0.5, "seed": 5},
               "ccb39abd1bd3163b", "400dcc754d0a702b", "6da8c1c98c468d13", "111f119b4a897135"),
    "beta": ({"n_agents": 6, "n_resources": 2, "reward_family": "beta",
              "beta_concentration": 4.0, "seed": 2}, "aaf2a0ade5a5d772", "53904d60ab3cb7ab",
             "69a8ce7ff8c9b6bb", "7669e9b09f6602a2"),
    "gauss": ({"n_agents": 6, "n_resources": 1, "reward_family": "gaussian",
               "mean_range": (-1.0, 2.0), "noise_std": 0.5, "seed": 3}, "08cc056cf031a39a",
              "aaae32c6cf2abd3d", "2764c937b298b335", "448096c855bf01ef"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_synthetic_defaults_are_bit_identical_to_the_original(name):
    kw, means, table, budget, sample = REFERENCE[name]
    env = SyntheticEnvironment(**kw)
    rnd = env.requests(1)
    rewards = env.sample(rnd.agent_index, rnd.request.options, np.random.default_rng(11))
    assert (_h(env.means), _h(env.request_table), _h(env.budget)) == (means, table, budget)
    assert _h(rnd.request.requests) == table and _h(rewards) == sample
    if name == "default":
        assert env.means.flat[0] == float.fromhex("0x1.3819794c8f9dap-1")
        assert env.budget[0] == float.fromhex("0x1.636db656d7709p+6")


# -- reward families, tightness, heterogeneity, options ---------------------------------------
def test_reward_families_have_the_configured_means():
    rng = np.random.default_rng(0)
    m = 40_000
    idx, opt = np.zeros(m, np.int64), np.zeros(m, np.int64)
    for family, extra in (("bernoulli", {}), ("beta", {"beta_concentration": 4.0}),
                          ("gaussian", {"noise_std": 2.0})):
        env = SyntheticEnvironment(n_agents=1, n_resources=1, reward_family=family, seed=7,
                                   **extra)
        mu = env.means[0, 0]
        r = env.sample(idx, opt, rng)
        if family == "bernoulli":
            assert set(np.unique(r)) <= {0.0, 1.0}
            sd = np.sqrt(mu * (1 - mu))
        elif family == "beta":
            assert r.min() >= 0 and r.max() <= 1 and len(np.unique(r)) > m // 2
            sd = np.sqrt(mu * (1 - mu) / (4.0 + 1))
            assert abs(r.std() - sd) < 0.03 * sd + 0.005  # Beta(μc, (1 − μ)c) variance
        else:
            sd = 2.0
            assert abs(r.std() - 2.0) < 0.05
        assert abs(r.mean() - mu) < 4 * sd / np.sqrt(m), family  # ≈ 4σ confidence interval


def test_tightness_heterogeneity_and_options():
    env = SyntheticEnvironment(n_agents=200, n_resources=2, tightness=0.2, options_per_agent=3,
                               seed=4)
    rnd = env.requests(1)
    assert rnd.request.requests.shape == (600, 2)
    assert np.array_equal(rnd.request.options, np.tile([0, 1, 2], 200))
    assert np.allclose(rnd.request.budget, 0.2 * env.request_table[:, 0, :].sum(axis=0))
    flat = SyntheticEnvironment(n_agents=300, seed=1, mean_heterogeneity=0.0)
    assert np.allclose(flat.means, 0.5)
    half = SyntheticEnvironment(n_agents=300, seed=1, mean_heterogeneity=0.5)
    full = SyntheticEnvironment(n_agents=300, seed=1)
    assert np.allclose(half.means - 0.5, 0.5 * (full.means - 0.5))
    assert 0.29 <= half.means.min() and half.means.max() <= 0.71
    spread = [np.log(SyntheticEnvironment(n_agents=400, seed=2, heterogeneity=h)
                     .request_table.mean(axis=(1, 2))).std() for h in (0.0, 0.5, 1.0)]
    assert spread[0] < 0.4 < spread[1] < 0.8 < spread[2]  # log-size spread √(0.3² + h²)
    for bad in ({"mean_heterogeneity": 1.5}, {"drift": "sideways"}, {"churn_rate": 2.0},
                {"delay": (3, 1)}, {"delay": -1}, {"missing_prob": -0.1}, {"drift_rate": -1},
                {"seed": -1}, {"reward_family": "poisson"}):
        with pytest.raises(InvalidConfigError):
            SyntheticEnvironment(**bad)


# -- drift ---------------------------------------------------------------------------------------
def test_random_walk_drift_moves_the_means_at_the_configured_rate():
    env = SyntheticEnvironment(n_agents=400, drift="random_walk", drift_rate=0.01, seed=3)
    path = np.stack([env.means_at(t) for t in range(0, 101)])
    steps = np.diff(path, axis=0)
    assert np.array_equal(path[0], env.means)
    assert abs(np.sqrt(np.mean(steps ** 2)) - 0.01) < 0.0005
    assert path.min() >= 0.1 and path.max() <= 0.9  # reflected into the range
    fresh = SyntheticEnvironment(n_agents=400, drift="random_walk", drift_rate=0.01, seed=3)
    assert np.array_equal(fresh.means_at(100), path[100])  # round t does not depend on history
    assert np.array_equal(env.means_at(37), path[37])  # going back recomputes
    rnd = env.requests(37)
    assert np.array_equal(env.expected(rnd.agent_index, rnd.request.options),
                          path[37].ravel())


def test_periodic_drift_has_the_configured_period():
    env = SyntheticEnvironment(n_agents=50, drift="periodic", drift_rate=0.05, seed=2)
    path = np.stack([env.means_at(t) for t in range(0, 41)])
    assert np.allclose(path[0], env.means)
    assert np.allclose(path[20], path[0]) and np.allclose(path[40], path[0])  # period 1 / 0.05
    assert np.allclose(path.max(axis=0), 0.9, atol=0.01)
    assert np.allclose(path.min(axis=0), 0.1, atol=0.01)


# -- churn ---------------------------------------------------------------------------------------
def test_churn_requests_only_active_agents_and_names_who_left():
    p, q = 0.1, 0.3
    env = SyntheticEnvironment(n_agents=300, options_per_agent=2, churn_rate=p, join_rate=q,
                               seed=5)
    active_before = np.zeros(300, bool)
    shares, stays = [], []
    for t in range(1, 121):
        rnd = env.requests(t)
        prev, cur = env.active_at(t)
        assert np.array_equal(prev, active_before)
        ids = np.asarray(rnd.request.agent_ids)
        assert np.array_equal(ids, np.repeat(np.flatnonzero(cur), 2))
        assert np.array_equal(rnd.agent_index, ids)
        assert np.array_equal(rnd.left, np.flatnonzero(prev & ~cur))
        assert rnd.left_ids == rnd.left.tolist()
        assert np.array_equal(rnd.joined, np.flatnonzero(cur & ~prev))
        if t > 1:
            stays.append((prev & cur).sum() / max(prev.sum(), 1))
        shares.append(cur.mean())
        active_before = cur
    assert abs(np.mean(shares) - q / (p + q)) < 0.03  # the stationary share
    assert abs(np.mean(stays) - (1 - p)) < 0.01
    again = SyntheticEnvironment(n_agents=300, options_per_agent=2, churn_rate=p, join_rate=q,
                                 seed=5).requests(77)
    assert again.request.agent_ids == env.requests(77).request.agent_ids


# -- feedback ------------------------------------------------------------------------------------
def test_feedback_delays_and_missing_outcomes():
    env = SyntheticEnvironment(n_agents=3, delay=(1, 4), missing_prob=0.2, seed=0)
    d = env.feedback_delays(np.zeros(50_000, np.int64), np.zeros(50_000, np.int64),
                            np.random.default_rng(1))
    assert set(np.unique(d)) == {-1, 1, 2, 3, 4}
    assert abs((d < 0).mean() - 0.2) < 0.01
    assert np.allclose(np.bincount(d[d >= 0])[1:] / (d >= 0).sum(), 0.25, atol=0.01)
    plain = SyntheticEnvironment(n_agents=3, seed=0)
    rng = np.random.default_rng(2)
    before = rng.bit_generator.state
    assert not plain.feedback_delays(np.zeros(5, np.int64), np.zeros(5, np.int64), rng).any()
    assert rng.bit_generator.state == before  # the defaults draw nothing


class RecordingEnv(SyntheticEnvironment):
    """Remembers the delays it hands out: (round, agent, delay)."""

    def feedback_delays(self, agent_index, options, rng):
        d = super().feedback_delays(agent_index, options, rng)
        self.log.extend(zip([self.round] * len(d), np.asarray(agent_index).tolist(),
                            d.tolist()))
        return d


class RecordingTS(ConstrainedThompsonSampling):
    """Remembers every observe call: (round of the call, round reported, ids, applied)."""

    def observe(self, round_id, agent_ids, rewards=None, *, successes=None):
        applied = super().observe(round_id, agent_ids, rewards=rewards, successes=successes)
        self.log.append((self.round, round_id, list(agent_ids), applied))
        return applied


def _recording(env_kw, policy_kw=None, rounds=60):
    env = RecordingEnv(**env_kw)
    env.log = []
    policy = RecordingTS(env.n_resources, oracle="fast", seed=1, **(policy_kw or {}))
    policy.log = []
    df = simulate(policy, env, rounds, seed=3, oracle_method="fast")
    return env, policy, df


def test_delayed_outcomes_arrive_exactly_d_rounds_later_once_and_missing_never():
    rounds = 60
    env, policy, df = _recording({"n_agents": 12, "n_resources": 2, "delay": (0, 5),
                                  "missing_prob": 0.25, "seed": 4}, rounds=rounds)
    calls = {(rid, a): now for now, rid, ids, _ in policy.log for a in ids}
    assert sum(len(ids) for *_, ids, _ in policy.log) == len(calls)  # each pair reported once
    assert all(applied == len(ids) for _, _, ids, applied in policy.log)
    due = {(t, a): t + d for t, a, d in env.log if d >= 0 and t + d <= rounds}
    assert calls == due  # arrived in round t + d, for round t; missing ones never
    assert df["n_lost"].sum() == sum(d < 0 for *_, d in env.log)
    assert df["n_reported"].sum() == len(due)
    assert df["n_expired"].sum() == 0 and df["n_orphaned"].sum() == 0
    assert {d for *_, d in env.log} == {-1, 0, 1, 2, 3, 4, 5}


def test_outcomes_older_than_the_pending_window_are_dropped_and_counted():
    env, policy, df = _recording({"n_agents": 10, "n_resources": 2, "delay": (0, 4), "seed": 2},
                                 {"max_pending_rounds": 2}, rounds=50)
    arrived = [(t, d) for t, _, d in env.log if t + d <= 50]
    assert df["n_expired"].sum() == sum(d >= 2 for _, d in arrived) > 0
    assert df["n_reported"].sum() == sum(d < 2 for _, d in arrived)
    assert all(now - rid < 2 for now, rid, _, _ in policy.log)


def test_simulator_removes_leavers_and_drops_their_late_outcomes():
    env, policy, df = _recording({"n_agents": 30, "n_resources": 2, "churn_rate": 0.15,
                                  "join_rate": 0.3, "delay": (0, 3), "seed": 6}, rounds=80)
    prev, cur = env.active_at(80)
    live = set(policy.registry.agents())
    assert live <= set(np.flatnonzero(cur).tolist())  # leavers were removed
    assert df["n_left"].sum() > 0 and df["n_orphaned"].sum() > 0
    assert np.array_equal(df["n_active"], [env.active_at(t)[1].sum() for t in range(1, 81)])
    # every outcome is reported, lost, orphaned, or still on its way after the last round
    pending = sum(t + d > 80 for t, _, d in env.log if d >= 0)
    total = df[["n_reported", "n_lost", "n_orphaned", "n_expired"]].to_numpy().sum()
    assert total + pending == len(env.log)


def test_an_empty_round_under_churn_is_played():
    env = SyntheticEnvironment(n_agents=2, n_resources=1, churn_rate=0.9, join_rate=0.05,
                               seed=1)
    df = simulate(ConstrainedThompsonSampling(1, oracle="fast", seed=0), env, 30, seed=0)
    assert (df["n_active"] == 0).any() and (df.loc[df["n_active"] == 0, "regret"] == 0).all()


# -- drift and the oracle reference; the true-means hook -----------------------------------------
def test_true_means_are_passed_before_allocate_and_regret_uses_current_means():
    env = SyntheticEnvironment(n_agents=8, n_resources=2, drift="random_walk", drift_rate=0.05,
                               churn_rate=0.1, seed=9)
    policy = make_policy("oracle", n_resources=2, oracle="exact", seed=0)
    seen = []
    original = policy.set_true_means

    def spy(agent_ids, means, *, options=None):
        seen.append((policy.round, list(agent_ids), np.array(means)))
        original(agent_ids, means, options=options)

    policy.set_true_means = spy
    df = simulate(policy, env, 40, seed=1, oracle_method="exact")
    assert [r for r, _, _ in seen] == list(range(40))  # once per round, before allocate
    for t, (_, ids, means) in enumerate(seen, start=1):
        assert np.array_equal(means, env.means_at(t)[np.asarray(ids, dtype=np.int64), 0])
    assert np.allclose(df["regret"], 0.0, atol=1e-9)  # the oracle's choice is the reference's
    assert df["oracle_reward"].nunique() > 10  # the reference follows the drifting means


# -- budgets -------------------------------------------------------------------------------------
class PaceSpy(ConstrainedThompsonSampling):
    def allocate(self, request):
        self.seen.append((request.budget.copy(), None if request.pace is None
                          else request.pace.copy()))
        return super().allocate(request)


def test_horizon_mode_never_exceeds_the_budget_and_paces():
    env = SyntheticEnvironment(n_agents=15, n_resources=2, tightness=0.3, seed=2)
    rounds, hb = 60, 60 * env.budget * 0.8
    spy = PaceSpy(2, oracle="fast", seed=0)
    spy.seen = []
    df = simulate(spy, env, rounds, seed=0, budget_mode="horizon", horizon_budget=hb)
    spent = df[["spend_0", "spend_1"]].to_numpy()
    assert np.all(spent.sum(axis=0) <= hb * (1 + 1e-12))
    left = hb.copy()
    for t, (budget, pace) in enumerate(spy.seen, start=1):
        assert np.allclose(budget, left) and np.allclose(pace, left / (rounds - t + 1))
        left = np.maximum(left - spent[t - 1], 0)
    assert np.allclose(df[["remaining_0", "remaining_1"]].to_numpy()[-1], left)
    assert (df["budget_mode"] == "horizon").all()
    s = summarize(df)
    assert s["budget_mode"] == "horizon" and max(s["budget_spent"]) > 0.99  # burns it all
    default = simulate(ConstrainedThompsonSampling(2, oracle="fast", seed=0), env, 20,
                       seed=0, budget_mode="horizon")
    assert np.allclose(default[["budget_0", "budget_1"]].iloc[0], 20 * env.budget)


def test_a_pacing_policy_spends_close_to_the_horizon_budget():
    env = SyntheticEnvironment(n_agents=20, n_resources=3, tightness=0.3, seed=3)
    policy = make_policy("constrained-ts-pacing", n_resources=3, oracle="fast", seed=0)
    df = simulate(policy, env, 150, seed=0, budget_mode="horizon")
    s = summarize(df)
    assert all(f <= 1 + 1e-12 for f in s["budget_spent"])
    assert max(s["budget_spent"]) > 0.95
    assert (df[[f"remaining_{j}" for j in range(3)]].to_numpy() >= 0).all()


def test_time_varying_budget_is_the_rounds_cap():
    env = BitbrainsEnvironment(n_agents=6, vary="budget", path=BITBRAINS, seed=1)
    df = simulate(ConstrainedThompsonSampling(4, oracle="fast", seed=0), env, 40, seed=0)
    names = ("cpu", "memory", "disk", "network")  # the trace's resources name the columns
    caps = df[[f"budget_{r}" for r in names]].to_numpy()
    assert np.allclose(caps, [env.budget_at(t) for t in range(1, 41)])
    assert len(np.unique(caps[:, 0])) > 5
    assert (df[[f"utilization_{r}" for r in names]] <= 1 + 1e-9).all().all()
    assert (df["budget_mode"] == "round").all() and df["remaining_cpu"].isna().all()
    assert not any(c.endswith("_0") for c in df.columns)


# -- OR-Library ----------------------------------------------------------------------------------
def test_orlib_instances_scale_profits_and_keep_the_optimum():
    from librex_alloc import oracles

    raw = load_mknap(MKNAP)
    for j, inst in enumerate(raw):
        env = OrlibEnvironment(instance=j, path=MKNAP)
        rnd = env.requests(1)
        assert np.allclose(env.means, inst.profits / inst.profits.max()) and env.means.max() == 1
        assert np.array_equal(rnd.request.requests, inst.weights)
        assert np.array_equal(rnd.request.budget, inst.capacities)
        best = oracles.solve(env.expected(rnd.agent_index, rnd.request.options),
                             rnd.request.requests, rnd.request.budget, method="exact")
        assert best.objective == pytest.approx(env.optimum, rel=1e-9)
        assert env.optimum == pytest.approx(inst.optimum / inst.profits.max())
    assert OrlibEnvironment(instance=6, path=MKNAP).n_agents == 50
    with pytest.raises(InvalidConfigError):
        OrlibEnvironment(instance=7, path=MKNAP)


# -- Alibaba -------------------------------------------------------------------------------------
def _pods(path=ALIBABA):
    return pd.read_csv(Path(path) / "openb_pod_list_default.csv")


def _nodes(path=ALIBABA):
    return pd.read_csv(Path(path) / "openb_node_list_all_node.csv")


def test_alibaba_requests_keep_the_trace_units():
    env = AlibabaGpuEnvironment(n_agents=60, n_nodes=10, path=ALIBABA, seed=3)
    pods = _pods().iloc[env.pod_rows]
    want = np.column_stack([pods["cpu_milli"], pods["memory_mib"], pods["num_gpu"],
                            pods["num_gpu"] * pods["gpu_milli"]])
    rnd = env.requests(1)
    assert np.array_equal(rnd.request.requests, want)
    assert len(set(env.pod_rows.tolist())) == 60  # without replacement
    sub = AlibabaGpuEnvironment(n_agents=60, resources=["gpu_milli", "cpu_milli"], path=ALIBABA,
                                seed=3)
    assert np.array_equal(sub.request_table, want[:, [3, 0]])


def test_alibaba_budget_comes_from_node_capacities():
    nodes = _nodes()
    cap = np.column_stack([nodes["cpu_milli"], nodes["memory_mib"], nodes["gpu"],
                           1000 * nodes["gpu"]])
    env = AlibabaGpuEnvironment(n_agents=40, n_nodes=7, path=ALIBABA, seed=1)
    assert len(set(env.node_rows.tolist())) == 7
    assert np.array_equal(env.budget, cap[env.node_rows].sum(axis=0))
    share = AlibabaGpuEnvironment(n_agents=40, path=ALIBABA, seed=1)
    assert np.allclose(share.budget, cap.sum(axis=0) * 40 / len(_pods()))
    tight = AlibabaGpuEnvironment(n_agents=40, tightness=0.25, path=ALIBABA, seed=1)
    assert np.allclose(tight.budget, 0.25 * tight.request_table.sum(axis=0))
    with pytest.raises(InvalidConfigError):
        AlibabaGpuEnvironment(n_agents=4, n_nodes=2, tightness=0.3, path=ALIBABA)


def test_alibaba_outcomes_are_success_rates_of_the_recorded_phases():
    pods = _pods()
    ok = pods["pod_phase"].isin(["Succeeded", "Running"])
    by_qos = ok.groupby(pods["qos"]).mean()
    env = AlibabaGpuEnvironment(n_agents=100, path=ALIBABA, seed=2)
    assert env.group_means == pytest.approx(by_qos.to_dict())
    assert np.allclose(env.means, by_qos[pods["qos"].iloc[env.pod_rows]].to_numpy())
    gpu = np.select([pods["num_gpu"] == 0, pods["num_gpu"] > 1, pods["gpu_milli"] < 1000],
                    ["none", "multi", "shared"], "one")
    by_both = ok.groupby(pods["qos"] + "/" + gpu).mean()
    both = AlibabaGpuEnvironment(n_agents=100, outcome_groups="qos_gpu", path=ALIBABA, seed=2)
    assert both.group_means == pytest.approx(by_both.to_dict())
    rewards = both.sample(np.arange(100), np.zeros(100, np.int64), np.random.default_rng(0))
    assert set(np.unique(rewards)) <= {0.0, 1.0}


@needs_full_alibaba
def test_alibaba_full_trace_is_read_from_the_shared_folder():
    trace = load_alibaba()  # found without a path
    assert len(trace.pods) == 8152 and len(trace.nodes) == 1523
    assert np.array_equal(trace.capacity[:, :3].sum(axis=0), [125_514_000, 612_028_416, 6212])
    rates = trace.success_rates("qos")
    assert rates["LS"] == pytest.approx(3990 / 4647) and rates["BE"] == pytest.approx(1330 / 3398)
    env = AlibabaGpuEnvironment(n_agents=10_000, seed=0)  # more agents than pods: replacement
    assert env.pod_rows.max() < 8152 and len(np.unique(env.pod_rows)) < 8152


# -- Bitbrains -----------------------------------------------------------------------------------
def _vm(path):
    df = pd.read_csv(path, sep=";\t", engine="python")
    usage = np.column_stack([
        df["CPU usage [MHZ]"], df["Memory usage [KB]"],
        df["Disk read throughput [KB/s]"] + df["Disk write throughput [KB/s]"],
        df["Network received throughput [KB/s]"] + df["Network transmitted throughput [KB/s]"]])
    return df["Timestamp [ms]"].to_numpy(), usage


def test_bitbrains_demand_follows_the_series_in_its_units():
    ts, usage = _vm(BITBRAINS / "2013-7" / "1.csv")
    env = BitbrainsEnvironment(n_agents=8, tightness=0.5, path=BITBRAINS, seed=4)
    assert np.allclose(env.requests(1).request.budget, 0.5 * 8 * usage.mean(axis=0))
    rel = ts - ts[0]
    for t in (1, 2, 50, 400):  # 400 rounds wrap around the 24 h excerpt
        rows = np.searchsorted(rel, (env.offsets + 300 * (t - 1)) % env.trace.span, "right") - 1
        assert np.array_equal(env.requests(t).request.requests, usage[rows])
    one = BitbrainsEnvironment(n_agents=3, resources=["memory"], path=BITBRAINS, seed=4)
    assert one.n_resources == 1 and np.all(np.isin(one.requests(7).request.requests, usage[:, 1]))


def test_bitbrains_budget_follows_the_free_capacity():
    ts, usage = _vm(BITBRAINS / "2013-7" / "1.csv")
    raw = pd.read_csv(BITBRAINS / "2013-7" / "1.csv", sep=";\t", engine="python")
    cap = np.column_stack([raw["CPU capacity provisioned [MHZ]"],
                           raw["Memory capacity provisioned [KB]"],
                           np.full(len(raw), usage[:, 2].max()),
                           np.full(len(raw), usage[:, 3].max())])
    free = 1 - usage / cap
    env = BitbrainsEnvironment(n_agents=5, vary="budget", tightness=0.4, path=BITBRAINS, seed=0)
    r = env.request_table
    assert r.shape == (5, 4) and np.allclose(env.requests(9).request.requests, r)
    for t in (1, 10, 200):
        row = np.searchsorted(ts - ts[0], 300 * (t - 1), "right") - 1
        assert np.allclose(env.requests(t).request.budget,
                           0.4 * r.sum(axis=0) * free[row] / free.mean(axis=0))


@needs_full_bitbrains
def test_bitbrains_full_file_is_read_from_the_shared_folder():
    trace = load_bitbrains()
    assert trace.usage.shape == (8260, 4)
    assert 29 * 86_400 < trace.span < 31 * 86_400
    env = BitbrainsEnvironment(n_agents=50, seed=1)
    assert env.offsets.max() > 2 * 86_400  # agents start on different days


# -- data lookup ---------------------------------------------------------------------------------
def test_data_lookup_order(tmp_path, monkeypatch):
    assert find_data(MKNAP, "orlib_mknap", "mknap1.txt") == MKNAP
    assert find_data(DATA, "orlib_mknap", "mknap1.txt") == DATA / "mknap1.txt"
    with pytest.raises(FileNotFoundError):
        find_data(tmp_path / "nope.txt", "orlib_mknap", "mknap1.txt")
    (tmp_path / "orlib_mknap").mkdir()
    shutil.copy(MKNAP, tmp_path / "orlib_mknap" / "mknap1.txt")
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert find_data(None, "orlib_mknap", "mknap1.txt") == tmp_path / "orlib_mknap" / "mknap1.txt"
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "empty"))
    if SHARED_DATA.is_dir():
        assert find_data(None, "orlib_mknap", "mknap1.txt").parent.parent == SHARED_DATA
    with pytest.raises(FileNotFoundError):
        find_data(None, "no_such_dataset", "x.csv")


# -- state round trips ---------------------------------------------------------------------------
FACTORIES = {
    "synthetic": lambda: SyntheticEnvironment(
        n_agents=9, n_resources=2, options_per_agent=2, reward_family="beta", drift="periodic",
        drift_rate=0.1, churn_rate=0.2, delay=(1, 2), missing_prob=0.1, seed=5),
    "synthetic-walk": lambda: SyntheticEnvironment(n_agents=5, drift="random_walk",
                                                   drift_rate=0.05, seed=1),
    "orlib": lambda: OrlibEnvironment(instance=2, path=MKNAP),
    "alibaba": lambda: AlibabaGpuEnvironment(n_agents=20, n_nodes=4, path=ALIBABA, seed=2),
    "bitbrains": lambda: BitbrainsEnvironment(n_agents=6, path=BITBRAINS, seed=3),
    "bitbrains-budget": lambda: BitbrainsEnvironment(n_agents=6, vary="budget",
                                                     path=BITBRAINS, seed=3),
}


def _corruptions(state):
    """(description, corrupted copy) pairs."""
    out = []
    bad = copy.deepcopy(state)
    bad["config"] = {**bad["config"], "seed": bad["config"].get("seed", 0) + 1}
    out.append(("config", bad))
    bad = copy.deepcopy(state)
    bad["round"] = -1
    out.append(("round", bad))
    bad = copy.deepcopy(state)
    del bad["means"]
    out.append(("missing key", bad))
    for key, value in state.items():
        if isinstance(value, np.ndarray) and len(value):
            bad = copy.deepcopy(state)
            bad[key] = value[:-1]
            out.append((f"{key} length", bad))
            bad = copy.deepcopy(state)
            bad[key] = value.copy()
            bad[key][0] = -5 if value.dtype.kind == "i" else np.nan
            out.append((f"{key} value", bad))
    bad = copy.deepcopy(state)
    bad["means"] = bad["means"].copy()
    bad["means"][0] = 2.0 if state["config"].get("reward_family") != "gaussian" else np.inf
    out.append(("means range", bad))
    if "trace" in state:
        out.append(("trace", {**copy.deepcopy(state), "trace": "0" * 64}))
    return out


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_round_trip_and_refusal(name):
    env, twin = FACTORIES[name](), FACTORIES[name]()
    assert isinstance(env, Environment)
    env.requests(7)
    state = env.get_state()
    twin.set_state(state)
    assert_state_equal(state, twin.get_state())
    a, b = env.requests(8), twin.requests(8)
    assert a.request.agent_ids == b.request.agent_ids
    assert np.array_equal(a.request.requests, b.request.requests)
    assert np.array_equal(a.request.budget, b.request.budget)
    assert np.array_equal(env.expected(a.agent_index, a.request.options),
                          twin.expected(b.agent_index, b.request.options))
    before = twin.get_state()
    for what, bad in _corruptions(twin.get_state()):
        with pytest.raises(StateError):
            twin.set_state(bad)
        assert_state_equal(before, twin.get_state(), f"after a bad {what}")
    assert isinstance(a, EnvironmentRound)


def test_synthetic_state_restores_the_round_cursor():
    env = FACTORIES["synthetic"]()
    env.requests(13)
    twin = FACTORIES["synthetic"]()
    twin.set_state(env.get_state())
    idx, opts = np.arange(9), np.zeros(9, np.int64)
    assert np.array_equal(twin.expected(idx, opts), env.expected(idx, opts))
    assert not np.array_equal(twin.expected(idx, opts), env.expected(idx, opts, t=0))
