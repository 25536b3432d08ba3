"""States saved by an earlier version still load and continue with the same draws.

tests/data/policy_states/ holds, per registered policy, a state saved at dbbb5ad (before the
policy base took a round context and typed parameters) and the values and fractions of the
rounds that followed it there (make_states.py in that folder wrote them).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from librex_alloc.checkpoint import load_state
from librex_alloc.policies import BASELINES, POLICIES
from tests.data.policy_states.make_states import IDS, MEANS, REQ, play

FOLDER = os.path.join(os.path.dirname(__file__), "..", "data", "policy_states")


@pytest.mark.parametrize("name", sorted(cls.name for cls in BASELINES))
def test_saved_state_loads_and_repeats_its_future(name):
    state = load_state(os.path.join(FOLDER, f"{name}.parquet"))
    expected = np.load(os.path.join(FOLDER, f"{name}.npz"))
    policy = POLICIES[name].from_state(state)
    assert policy.get_state()["round"] == state["round"] == 11
    future = play(policy, 4, np.random.default_rng(2), IDS[:5], REQ[:5])
    assert np.array_equal(np.stack([v for v, _ in future]), expected["values"])
    assert np.array_equal(np.stack([f for _, f in future]), expected["fractions"])
    assert len(MEANS) == len(IDS)


def test_every_policy_has_a_saved_state():
    saved = {f[:-len(".parquet")] for f in os.listdir(FOLDER) if f.endswith(".parquet")}
    assert saved == {cls.name for cls in BASELINES}  # POLICIES may hold tests' own
