"""The agent registry: any hashable id, joins and leaves, vectorized lookups, state."""

from __future__ import annotations

import numpy as np
import pytest

from librex_alloc import InvalidInputError, StateError, UnknownAgentError
from librex_alloc.registry import AgentRegistry

IDS = [("node", 1), "b", 7, ("node", 2), frozenset({"x"}), 2.5] + [f"a{i}" for i in range(40)]


def test_slots_are_stable_and_vectorized_lookup_agrees_with_dict():
    reg = AgentRegistry()
    agents, arms, new_agents, new_arms = reg.add(IDS, np.zeros(len(IDS), np.int64))
    assert agents.tolist() == list(range(len(IDS))) and len(new_agents) == len(IDS)
    shuffled = [IDS[i] for i in np.random.default_rng(0).permutation(len(IDS))]
    big = reg.agent_slots(shuffled)  # > 16 distinct ids: the pandas index path
    small = np.array([reg.agent_slots([a])[0] for a in shuffled])  # the dict path
    assert np.array_equal(big, small)
    assert [reg.agent_id(s) for s in big] == shuffled
    again, arms2, na, narms = reg.add(IDS, np.zeros(len(IDS), np.int64))
    assert np.array_equal(again, agents) and np.array_equal(arms2, arms)
    assert len(na) == 0 and len(narms) == 0


def test_options_get_their_own_arms():
    reg = AgentRegistry()
    _, arms, _, new = reg.add(["a", "a", "b"], np.array([0, 3, 0]))
    assert len(set(arms.tolist())) == 3 and len(new) == 3
    assert reg.arm_option[arms].tolist() == [0, 3, 0]
    assert reg.arm_agent[arms].tolist() == [0, 0, 1]


def test_remove_frees_and_reuses_slots():
    reg = AgentRegistry()
    reg.add(["a", "b", "c"], np.array([0, 0, 0]))
    reg.remove(["b"])
    assert "b" not in reg and len(reg) == 2
    with pytest.raises(UnknownAgentError):
        reg.agent_slots(["b"])
    agents, arms, new_agents, new_arms = reg.add(["d"], np.array([0]))
    assert agents.tolist() == [1] and arms.tolist() == [1]  # b's slots come back
    assert reg.agents() == ["a", "d", "c"]


def test_bad_ids():
    reg = AgentRegistry()
    for ids in ([["list"]], [None], [float("nan")], "abc", 5):
        with pytest.raises(InvalidInputError):
            reg.add(ids, np.zeros(1, np.int64))
    assert len(reg) == 0


def test_state_round_trip_and_bad_state():
    reg = AgentRegistry()
    reg.add(IDS, np.arange(len(IDS)) % 3)
    reg.remove([IDS[3], IDS[10]])
    other = AgentRegistry()
    other.set_state(reg.get_state())
    assert other.agents() == reg.agents()
    assert np.array_equal(other.agent_slots(reg.agents()), reg.agent_slots(reg.agents()))
    _, arms, _, new = other.add(IDS[:3], np.arange(3) % 3)
    assert len(new) == 0
    bad = reg.get_state()
    bad["arm_agent"] = bad["arm_agent"].copy()
    bad["arm_agent"][0] = len(bad["agent_ids"]) + 5
    with pytest.raises(StateError):
        AgentRegistry().set_state(bad)
