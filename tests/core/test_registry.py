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


def test_integer_fast_path_agrees_with_the_dict_semantics():
    """Large id lists of plain integers take an int64 path; it must give exactly what the
    dict (and the object path) gives, whatever mix of ids the registry holds."""
    from librex_alloc.registry import factorize_ids

    rng = np.random.default_rng(3)
    ids = rng.integers(-(2**40), 2**40, 500).tolist()
    ids_np = np.asarray(ids)
    for form in (ids, ids_np, [np.int64(a) for a in ids]):
        codes, uniques = factorize_ids(list(form))
        assert [uniques[c] for c in codes] == ids
        assert all(type(u) is int for u in uniques)
    # bools are the ints 0/1 as dict keys; the fast path agrees
    codes, uniques = factorize_ids([True, 1, 0, False] * 20)
    assert uniques == [1, 0] and len(set(codes.tolist())) == 2
    # anything else falls back to the object path
    big = [2**70 + i for i in range(100)]
    assert factorize_ids(big)[1] == big
    mixed = list(range(99)) + ["a"]
    assert factorize_ids(mixed)[1] == mixed
    with pytest.raises(InvalidInputError):
        factorize_ids(list(range(99)) + [None])
    with pytest.raises(InvalidInputError):
        factorize_ids(list(range(99)) + [float("nan")])

    reg = AgentRegistry()
    reg.add(ids[:300], np.zeros(300, np.int64))
    query = ids[250:] + [2**70, "x", ids[0]]
    expect = np.array([reg._agent_slot.get(a, -1) for a in query])
    assert np.array_equal(reg.lookup(query), expect)
    assert np.array_equal(reg.lookup(np.asarray(ids[250:])), expect[:250])
    # a registry holding non-integer ids keeps the object index
    reg.add(["x", 2.5], np.zeros(2, np.int64))
    expect = np.array([reg._agent_slot.get(a, -1) for a in query])
    assert np.array_equal(reg.lookup(query), expect)
    assert reg.lookup(["x"] * 1 + list(range(30)))[0] == reg.slot_of("x")


def test_generation_counts_every_write():
    reg = AgentRegistry()
    g0 = reg.generation
    reg.add([1, 2], np.zeros(2, np.int64))
    g1 = reg.generation
    assert g1 > g0
    reg.add([1, 2], np.zeros(2, np.int64))  # nothing new: no write
    assert reg.generation == g1
    reg.add([1], np.ones(1, np.int64))  # a new option
    g2 = reg.generation
    assert g2 > g1
    reg.remove([2])
    g3 = reg.generation
    assert g3 > g2
    reg.set_state(reg.get_state())
    assert reg.generation > g3
