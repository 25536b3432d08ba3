"""The original design's API: LibrexAlloc, ResourceManager, BudgetTracker."""

from __future__ import annotations

import numpy as np
import pytest

from librex_alloc import (
    BudgetTracker,
    InvalidConfigError,
    InvalidInputError,
    LibrexAlloc,
    NotAllocatedError,
    ResourceManager,
    StateError,
    UnknownAgentError,
    metrics,
)
from librex_alloc.checkpoint import save_state
from tests.conftest import assert_state_equal


def test_allocate_update_and_metrics():
    alloc = LibrexAlloc(n_agents=5, n_resource_types=3, fairness_mode="proportional", seed=0)
    requests = {i: np.array([1.0 + i, 2.0, 0.5]) for i in range(5)}
    budget = np.array([6.0, 6.0, 6.0])
    for _ in range(30):
        out = alloc.allocate(requests, budget)
        assert set(out) == set(requests)
        total = np.sum(list(out.values()), axis=0)
        assert np.all(total <= budget)
        for agent, vec in out.items():
            assert np.array_equal(vec, requests[agent]) or not vec.any()
            if vec.any():
                assert alloc.update(agent, {"success": agent % 2 == 0}) is True
    m = alloc.compute_fairness_metrics()
    for key in ("gini", "allocation_variance", "min_allocation_ratio", "jain"):
        assert key in m and np.isfinite(m[key])
    assert 0 <= m["gini"] <= 1 and 0 < m["jain"] <= 1


def test_continuous_rewards_learn_the_mean_not_a_threshold():
    alloc = LibrexAlloc(n_agents=1, n_resource_types=1, fairness_mode="none", seed=0)
    for _ in range(3000):
        alloc.allocate({0: [1.0]}, [1.0])
        alloc.update(0, {"reward": 0.3})
    mean = float(alloc.policy.posterior.mean(np.array([0]))[0])
    assert abs(mean - 0.3) < 0.03  # thresholding at 0.5 would give ~0


def test_options_per_agent_through_the_dict_api():
    alloc = LibrexAlloc(n_resource_types=2, fairness_mode="none", seed=0)
    out = alloc.allocate({"gpu-or-cpu": np.array([[1.0, 0.0], [0.0, 4.0]])}, [2.0, 2.0])
    assert np.array_equal(out["gpu-or-cpu"], [1.0, 0.0])  # only the first option fits


def test_update_errors_change_nothing():
    alloc = LibrexAlloc(n_agents=3, n_resource_types=1, seed=0)
    alloc.allocate({0: [1.0], 1: [5.0]}, [2.0])  # agent 1 does not fit
    before = alloc.get_state()
    for agent, outcome, error in [
        (7, {"success": True}, UnknownAgentError),
        (1, {"success": True}, NotAllocatedError),
        (2, {"reward": 0.5}, NotAllocatedError),  # registered, never allocated
        (0, {"reward": 1.5}, InvalidInputError),
        (0, {"reward": float("nan")}, InvalidInputError),
        (0, {}, InvalidInputError),
        (0, {"success": True, "reward": 1.0}, InvalidInputError),
        (0, {"success": 3}, InvalidInputError),
        (0, {"reward": 0.5, "round": 99}, NotAllocatedError),
    ]:
        with pytest.raises(error):
            alloc.update(agent, outcome)
        assert_state_equal(before, alloc.get_state())
    assert alloc.update(0, {"reward": 0.5}) is True
    after = alloc.get_state()
    assert alloc.update(0, {"reward": 0.5}) is False  # a retry without a round: a duplicate
    assert alloc.update(0, {"reward": 0.5, "round": 1}) is False  # a retry is applied once
    assert_state_equal(after, alloc.get_state())


def test_retry_without_round_never_reports_an_older_round():
    """Issue 5.4: two rounds pending for agent "a"; a report without "round" goes to the newest
    one, and its retry is a duplicate: it must not be applied to the older round."""
    alloc = LibrexAlloc(n_resource_types=1, seed=0)
    manager = ResourceManager(alloc)
    manager.manage_resources({"a": [1.0]}, [1.0])
    manager.manage_resources({"a": [1.0]}, [1.0])
    assert manager.report_outcome("a", {"reward": 1.0}) is True  # round 2
    state = alloc.get_state()
    assert manager.report_outcome("a", {"reward": 1.0}) is False  # the retry
    assert_state_equal(state, alloc.get_state())
    assert alloc.policy.posterior.count(np.array([0]))[0] == 1.0
    assert manager.report_outcome("a", {"reward": 1.0, "round": 1}) is True  # explicit round


def test_allocate_errors_change_nothing():
    alloc = LibrexAlloc(n_agents=2, n_resource_types=2, seed=0)
    before = alloc.get_state()
    for reqs, budget in [
        ({0: [1.0, np.nan]}, [1.0, 1.0]),
        ({0: [1.0, -1.0]}, [1.0, 1.0]),
        ({0: [1.0, 1.0, 1.0]}, [1.0, 1.0]),
        ({0: [1.0, 1.0]}, [1.0, np.inf]),
        ({0: [1.0, 1.0]}, [[1.0, 1.0]]),
        ([1.0, 1.0], [1.0, 1.0]),
    ]:
        with pytest.raises(InvalidInputError):
            alloc.allocate(reqs, budget)
        assert_state_equal(before, alloc.get_state())


def test_constructor_errors():
    with pytest.raises(InvalidConfigError):
        LibrexAlloc(n_agents=2, n_resource_types=2, fairness_mode="fair-ish")
    with pytest.raises(InvalidConfigError):
        LibrexAlloc(n_agents=2, n_resource_types=2, use_gurobi=True)
    with pytest.raises(InvalidConfigError):
        LibrexAlloc(n_agents=2, n_resource_types=2, oracle="simplex")
    with pytest.raises(InvalidConfigError):
        LibrexAlloc(n_agents=2, n_resource_types=2, alpha_prior=0.0)


def test_resource_manager_and_budget_tracker():
    alloc = LibrexAlloc(n_agents=4, n_resource_types=2, fairness_mode="none", seed=0)
    rm = ResourceManager(alloc)
    budget = np.array([4.0, 10.0])
    used = []
    for _ in range(10):
        out = rm.manage_resources({i: np.array([2.0, 1.0]) for i in range(4)}, budget)
        used.append(np.sum(list(out.values()), axis=0))
        for agent, vec in out.items():
            if vec.any():
                rm.report_outcome(agent, {"reward": 1.0})
    util = rm.budget_tracker.get_utilization(budget)
    assert np.allclose(util, np.mean(used, axis=0) / budget)
    assert np.allclose(util, [1.0, 0.2])  # two agents of size 2 fill resource 0 exactly
    assert np.allclose(rm.budget_tracker.get_utilization(), util)
    tracker = BudgetTracker()
    assert tracker.get_utilization(budget).tolist() == [0.0, 0.0]
    with pytest.raises(InvalidInputError):
        tracker.record_allocation([1.0, np.nan])


def test_save_and_load(tmp_path):
    a = LibrexAlloc(n_agents=6, n_resource_types=2, fairness_mode="proportional", seed=5)
    reqs = {i: np.array([1.0, 1.0 + i / 3]) for i in range(6)}
    for _ in range(10):
        for agent, vec in a.allocate(reqs, [3.0, 4.0]).items():
            if vec.any():
                a.update(agent, {"reward": 0.7})
    a.save(tmp_path / "ckpt.parquet")
    other = LibrexAlloc(n_resource_types=2, seed=0)  # another configuration: refused
    with pytest.raises(StateError):
        other.load(tmp_path / "ckpt.parquet")
    b = LibrexAlloc.from_checkpoint(tmp_path / "ckpt.parquet")
    c = LibrexAlloc(n_agents=6, n_resource_types=2, fairness_mode="proportional", seed=5)
    c.load(tmp_path / "ckpt.parquet")  # the same configuration: restored in place
    assert_state_equal(b.get_state(), c.get_state())
    with pytest.raises(StateError, match="policy-level"):
        save_state(a.policy.get_state(), tmp_path / "policy.parquet")
        a.load(tmp_path / "policy.parquet")
    for _ in range(10):
        oa, ob = a.allocate(reqs, [3.0, 4.0]), b.allocate(reqs, [3.0, 4.0])
        assert all(np.array_equal(oa[k], ob[k]) for k in reqs)


def test_per_agent_min_share_and_weights_through_the_api():
    alloc = LibrexAlloc(n_resource_types=1, fairness_mode="none", min_share={"low": 0.5},
                        weights={"vip": 4.0}, seed=0)
    reqs = {"low": [1.0], "vip": [1.0], "x": [1.0], "y": [1.0]}
    served = {a: 0 for a in reqs}
    for _ in range(300):
        for agent, vec in alloc.allocate(reqs, [1.0]).items():
            if vec.any():
                served[agent] += 1
                alloc.update(agent, {"reward": 0.9 if agent != "low" else 0.05})
    assert served["low"] >= 0.45 * 300
    assert served["vip"] > max(served["x"], served["y"])
    before = alloc.get_state()
    with pytest.raises(InvalidInputError):
        alloc.set_min_share({"x": 1.5})
    with pytest.raises(InvalidInputError):
        alloc.set_weights({"x": 0.0})
    with pytest.raises(InvalidInputError):  # a new id with a bad value is not registered
        alloc.set_weights({"newcomer": -1.0})
    assert_state_equal(before, alloc.get_state())


def test_fairness_metrics_measure_what_the_rule_equalizes_by_default():
    """Issue 7.2: the α-fair rule equalizes realized reward by default; the metrics report the
    same vector by default (service counts only when asked)."""
    rng = np.random.default_rng(0)
    for utility in ("reward", "service"):
        alloc = LibrexAlloc(n_agents=4, n_resource_types=1, fairness_mode="maxmin",
                            utility=utility, seed=1)
        for _ in range(60):
            for agent, vec in alloc.allocate({i: [1.0] for i in range(4)}, [2.0]).items():
                if vec.any():
                    alloc.update(agent, {"reward": float(rng.uniform(0.2 * agent, 0.2 * agent
                                                                       + 0.2))})
        m = alloc.compute_fairness_metrics()
        assert m["utility"] == utility
        _, x = alloc.policy.utilities(utility)
        assert m["gini"] == pytest.approx(metrics.gini(x))
        assert alloc.compute_fairness_metrics("service")["utility"] == "service"
