"""The state contract the coordinator relies on: validated, copied, configuration-checked.

Every corrupt state is refused with StateError and leaves the object exactly as it was
(compared with get_state() and with the next rounds' draws of an untouched twin).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from librex_alloc import (
    ConstrainedThompsonSampling,
    FairnessConfig,
    LibrexAlloc,
    PolicyConfig,
    StateError,
)
from librex_alloc.checkpoint import load_state, save_state
from librex_alloc.environments import SyntheticEnvironment
from tests.conftest import assert_state_equal

REQ = np.array([[1.0, 2.0], [2.0, 1.0], [1.5, 1.5], [3.0, 0.5], [0.5, 3.0], [1.0, 1.0]])
IDS = ["a", "b", "c", "d", "e", "f"]
BUDGET = np.array([4.0, 4.0])


def _played(family="bernoulli", rounds=12, **kw) -> ConstrainedThompsonSampling:
    """A policy with learned state, a removed agent (free slots) and pending rounds."""
    cfg = dict(fairness=FairnessConfig(mode="proportional", min_share=0.1), oracle="fast",
               reward_family=family, seed=3, max_pending_rounds=5)
    cfg.update(kw)
    p = ConstrainedThompsonSampling(2, **cfg)
    rng = np.random.default_rng(0)
    for t in range(rounds):
        a = p.allocate_batch(IDS, REQ, BUDGET)
        got = a.allocated_agents()
        if t % 3 and got:  # leave some rounds unreported
            p.observe(a.round, got, rewards=rng.uniform(0, 1, len(got)))
    p.remove_agents(["f"])
    p.allocate_batch(IDS[:5], REQ[:5], BUDGET)
    return p


def _future(p, rounds=4):
    out = []
    for _ in range(rounds):
        a = p.allocate_batch(IDS, REQ, BUDGET)
        out.append((a.values.copy(), a.selected.copy()))
        got = a.allocated_agents()
        if got:
            p.observe(a.round, got, rewards=np.full(len(got), 0.5))
    return out


def _same_future(p, q):
    for (v1, s1), (v2, s2) in zip(_future(p), _future(q)):
        assert np.array_equal(v1, v2) and np.array_equal(s1, s2)


def _corruptions():
    """(name, function mutating a deep copy of a state) — each must be refused."""
    def setp(path, value):
        def f(s):
            node = s
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value(node[path[-1]]) if callable(value) else value
        return f

    def drop(path):
        def f(s):
            node = s
            for key in path[:-1]:
                node = node[key]
            del node[path[-1]]
        return f

    return [
        ("posterior truncated", setp(("posterior", "successes"), lambda a: a[:-1])),
        ("posterior arrays of unequal length",
         setp(("posterior", "failures"), lambda a: np.append(a, 0.0))),
        ("posterior NaN", setp(("posterior", "successes"), lambda a: np.where(
            np.arange(len(a)) == 0, np.nan, a))),
        ("posterior negative count", setp(("posterior", "failures"), lambda a: a - 1e6)),
        ("posterior prior changed", setp(("posterior", "alpha_prior"), 7.0)),
        ("fairness truncated", setp(("fairness", "active"), lambda a: a[:-1])),
        ("fairness NaN utility", setp(("fairness", "utility_sum"),
                                      lambda a: np.full_like(a, np.nan))),
        ("fairness negative weight", setp(("fairness", "weight"), lambda a: -a)),
        ("fairness huge weight", setp(("fairness", "weight"), lambda a: a * 1e300)),
        ("fairness min_share above 1", setp(("fairness", "min_share"), lambda a: a + 2)),
        ("fairness served more than active", setp(("fairness", "served"), lambda a: a + 1e6)),
        ("fairness field missing", drop(("fairness", "queue"))),
        ("round negative", setp(("round",), -5)),
        ("round not an int", setp(("round",), 3.5)),
        ("round behind the pending rounds", setp(("round",), 1)),
        ("oracle bogus", setp(("config", "oracle"), "bogus")),
        ("config key missing", drop(("config", "reward_family"))),
        ("config of another policy", setp(("config", "discount"), 0.5)),
        ("policy name", setp(("policy",), "cucb")),
        ("rng bogus", setp(("rng",), {"bit_generator": "MT19937"})),
        ("rng state garbage", setp(("rng", "state"), {"state": "x", "inc": 1})),
        ("registry ids shorter", setp(("registry", "agent_ids"), lambda a: a[:-1])),
        ("registry duplicate id", setp(("registry", "agent_ids"),
                                       lambda a: [a[0]] * len(a))),
        ("registry arm to free slot", setp(("registry", "arm_agent"),
                                           lambda a: np.where(a >= 0, 99, a))),
        ("pending agent out of range", setp(("pending", "agents"), lambda a: a + 100)),
        ("pending rows inconsistent", setp(("pending", "sizes"), lambda a: a + 1)),
        ("pending round in the future", setp(("pending", "rounds"), lambda a: a + 1000)),
        ("pending fractions NaN", setp(("pending", "fractions"),
                                       lambda a: np.full_like(a, np.nan))),
        ("pending reported as floats", setp(("pending", "reported"),
                                            lambda a: a.astype(float))),
        ("pending arm of another agent", setp(("pending", "arms"), lambda a: a[::-1].copy())),
        ("extra state", setp(("extra",), {"x": 1})),
        ("unknown top-level key", setp(("bogus",), 1)),
    ]


@pytest.mark.parametrize("name,corrupt", _corruptions(), ids=[c[0] for c in _corruptions()])
def test_corrupt_states_are_refused_and_change_nothing(name, corrupt):
    source = _played()
    state = source.get_state()
    bad = copy.deepcopy(state)
    corrupt(bad)
    target, twin = _played(), _played()
    before = target.get_state()
    with pytest.raises(StateError):
        target.set_state(bad)
    assert_state_equal(before, target.get_state())
    _same_future(target, twin)
    with pytest.raises(StateError):
        ConstrainedThompsonSampling.from_state(bad)


def test_every_corruption_is_detected_on_its_own():
    """Guard against a corruption list that only fails by accident: the uncorrupted state of
    the same source is accepted by the same target."""
    target = _played()
    target.set_state(_played().get_state())


@pytest.mark.parametrize("family", ["bernoulli", "gaussian"])
def test_replicas_restored_from_one_snapshot_share_nothing(family):
    p = _played(family)
    snapshot = p.get_state()
    frozen = copy.deepcopy(snapshot)
    q1 = ConstrainedThompsonSampling.from_state(snapshot)
    q2 = ConstrainedThompsonSampling.from_state(snapshot)
    rnd = q1.ledger.rounds[-1]
    agent = next(a for a in IDS[:5] if q1.ledger.pending(rnd).find(
        q1.registry.agent_slots([a]))[0] >= 0)
    assert q1.observe(rnd, [agent], rewards=[1.0]) == 1
    assert q2.observe(rnd, [agent], rewards=[1.0]) == 1  # not silently dropped
    assert q1.observe(rnd, [agent], rewards=[1.0]) == 0  # a retry, applied once
    assert_state_equal(frozen, snapshot)  # the snapshot was not mutated
    assert_state_equal(q1.get_state(), q2.get_state())
    state = q1.get_state()
    state["posterior"][next(iter(state["posterior"]))] = "mutated"  # get_state returns copies
    assert_state_equal(q2.get_state(), q1.get_state())


def test_set_state_refuses_another_configuration_and_from_state_takes_it(tmp_path):
    p = _played()
    save_state(p.get_state(), tmp_path / "p.parquet")
    other = ConstrainedThompsonSampling(2, oracle="fast", seed=3)
    before = other.get_state()
    with pytest.raises(StateError, match="configuration differs"):
        other.set_state(load_state(tmp_path / "p.parquet"))
    assert_state_equal(before, other.get_state())
    q = ConstrainedThompsonSampling.from_state(load_state(tmp_path / "p.parquet"))
    assert q.config == p.config and isinstance(q.config, PolicyConfig)
    _same_future(p, q)


def test_policy_config_is_frozen_and_round_trips():
    cfg = PolicyConfig(3, fairness=0.4, oracle="fast", prior={"alpha_prior": 2},
                       discount=0.9, seed=1)
    assert cfg.fairness.mode == "alpha" and cfg.fairness.alpha == 0.4
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(AttributeError):
        cfg.oracle = "exact"
    with pytest.raises(TypeError):
        cfg.prior["alpha_prior"] = 5.0
    assert cfg.replace(oracle="exact").oracle == "exact" and cfg.oracle == "fast"
    p = ConstrainedThompsonSampling.from_config(cfg.to_dict())
    assert p.config == cfg and p.oracle == "fast" and p.n_resources == 3


def test_librex_alloc_state_contract(tmp_path):
    a = LibrexAlloc(n_agents=4, n_resource_types=2, seed=5)
    reqs = {i: np.array([1.0, 1.0 + i]) for i in range(4)}
    for _ in range(5):
        for agent, vec in a.allocate(reqs, [3.0, 4.0]).items():
            if vec.any():
                a.update(agent, {"reward": 0.3})
    a.save(tmp_path / "a.parquet")
    save_state(a.policy.get_state(), tmp_path / "policy.parquet")
    b = LibrexAlloc(n_agents=4, n_resource_types=2, seed=5)
    before = b.get_state()
    with pytest.raises(StateError, match="policy-level"):
        b.load(tmp_path / "policy.parquet")
    bad = a.get_state()
    bad["n_agents"] = 9
    with pytest.raises(StateError):
        b.set_state(bad)
    del bad["policy"]
    with pytest.raises(StateError):
        b.set_state(bad)
    assert_state_equal(before, b.get_state())
    b.load(tmp_path / "a.parquet")
    c = LibrexAlloc.from_checkpoint(tmp_path / "a.parquet")
    assert_state_equal(a.get_state(), b.get_state())
    assert_state_equal(a.get_state(), c.get_state())


def test_environment_state_round_trip_and_refusal():
    env = SyntheticEnvironment(n_agents=5, n_resources=2, seed=3)
    twin = SyntheticEnvironment(n_agents=5, n_resources=2, seed=3)
    state = env.get_state()
    twin.set_state(state)
    assert_state_equal(state, twin.get_state())
    bad = copy.deepcopy(state)
    bad["means"] = bad["means"][:-1]
    with pytest.raises(StateError):
        twin.set_state(bad)
    bad = copy.deepcopy(state)
    bad["means"][0] = 2.0  # outside [0, 1] for Bernoulli rewards
    with pytest.raises(StateError):
        twin.set_state(bad)
    other = SyntheticEnvironment(n_agents=6, n_resources=2, seed=3)
    with pytest.raises(StateError):
        other.set_state(state)
    assert_state_equal(state, twin.get_state())


def _leaves(state, prefix=()):
    for key, value in state.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _mutations():
    return st.sampled_from(["nan", "neg", "huge", "truncate", "extend", "float", "int", "str",
                            "none", "bump"])


def _mutate(value, how):
    if isinstance(value, np.ndarray):
        a = value.copy()
        if how == "truncate":
            return a[:-1]
        if how == "extend":
            return np.append(a, a[-1:] if len(a) else np.zeros(1, a.dtype))
        if how == "float":
            return a.astype(np.float64)
        if how == "int":
            return a.astype(np.int64)
        if not len(a):
            return np.ones(1, a.dtype)
        bad = {"nan": np.nan, "neg": -3, "huge": 1e300, "bump": 1}[how] \
            if how in ("nan", "neg", "huge", "bump") else None
        if bad is None:
            return how  # a string or None instead of an array
        if a.dtype.kind == "b":
            a[0] = ~a[0]
        elif a.dtype.kind in "iu":
            a[0] = a[0] + (1 if how == "bump" else -3 if how == "neg" else 2**40)
        else:
            a[0] = a[0] + bad if how == "bump" else bad
        return a
    if how == "none":
        return None
    if how == "str":
        return "x"
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return {"nan": float("nan"), "neg": -3, "huge": 1e300, "bump": value + 1}.get(how, 0.5)
    return 7


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_corruptions_are_refused_or_restored_exactly(data):
    """Fuzz: one leaf of a real state is mutated. Either set_state refuses it (StateError,
    nothing changed), or it accepts it and get_state() returns exactly the mutated state
    (nothing silently re-padded, clipped or shared)."""
    source = _played("gaussian" if data.draw(st.booleans()) else "bernoulli")
    state = source.get_state()
    leaves = list(_leaves(state))
    path, value = leaves[data.draw(st.integers(0, len(leaves) - 1))]
    bad = copy.deepcopy(state)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = _mutate(value, data.draw(_mutations()))
    target = ConstrainedThompsonSampling.from_state(copy.deepcopy(state))
    before = target.get_state()
    try:
        target.set_state(bad)
    except StateError:
        assert_state_equal(before, target.get_state())
    else:
        assert_state_equal(bad, target.get_state())
