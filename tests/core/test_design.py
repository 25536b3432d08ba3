"""The original design's fairness modes, reimplemented for the evaluation (SPEC §8)."""

from __future__ import annotations

import numpy as np
import pytest

from librex_alloc import InvalidConfigError, make_policy
from librex_alloc.evaluation import design  # noqa: F401  (registers "design")

REQ = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 1.0], [3.0, 3.0]])


def test_design_maxmin_is_optimal_at_the_empty_allocation():
    """SPEC §8.1: the big-M max-min model's optimum is m = M with nobody allocated."""
    p = make_policy("design", n_resources=2, params={"mode": "maxmin"}, seed=0)
    for _ in range(5):
        a = p.allocate_batch(list(range(4)), REQ, [4.0, 4.0])
        assert not a.selected.any()


def test_design_proportional_uses_its_count_weights(monkeypatch):
    """Values are θ̃_i / (count_i / rounds + 0.1): the draws θ̃ come from a twin "none"
    policy with the same seed (no outcomes, so both draw the same samples)."""
    p = make_policy("design", n_resources=2, params={"mode": "proportional"}, seed=0,
                    oracle="exact")
    twin = make_policy("design", n_resources=2, params={"mode": "none"}, seed=0,
                       oracle="exact")
    seen = []
    real = design.solve
    monkeypatch.setattr(design, "solve", lambda v, *a, **k: seen.append(np.array(v)) or
                        real(v, *a, **k))
    served = np.zeros(4)
    for t in range(6):
        a = p.allocate_batch(list(range(4)), REQ, [3.0, 3.0])
        twin.allocate_batch(list(range(4)), REQ, [3.0, 3.0])
        theta = seen[-1]  # the twin's call: plain θ̃
        weighted = seen[-2]
        assert np.allclose(weighted, theta / (served / max(t, 1) + 0.1))
        served += a.selected
    assert served.min() < served.max()  # the weights do not equalize service


def test_design_thresholds_continuous_rewards():
    """SPEC §8.3: the design learns P(reward > 0.5), not the mean reward."""
    p = make_policy("design", n_resources=1, params={"mode": "none"}, seed=0, oracle="fast")
    for _ in range(200):
        a = p.allocate_batch(["a"], [[1.0]], [1.0])
        p.observe(a.round, ["a"], rewards=[0.45])  # mean 0.45, never above the threshold
    assert p.posterior.mean(np.array([0]))[0] < 0.01


def test_design_refuses_a_fairness_rule_or_bad_params():
    with pytest.raises(InvalidConfigError):
        make_policy("design", n_resources=1, fairness="proportional")
    with pytest.raises(InvalidConfigError):
        make_policy("design", n_resources=1, params={"mode": "leximin"})
    with pytest.raises(InvalidConfigError):
        make_policy("design", n_resources=1, params={"threshold": 2.0})
