"""Helpers shared by the runtime tests (imported by name: tests/runtime is on sys.path)."""

from __future__ import annotations

import numpy as np

from agents import AgentShard
from coordinator import Coordinator, CoordinatorConfig, LocalTransport
from librex_alloc import PolicyConfig, SyntheticEnvironment

K = 3


def assert_state_equal(a, b, path="state"):
    """Deep equality of nested get_state() dicts (arrays bitwise, with dtype)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            assert_state_equal(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, path
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), path
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_state_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and a != a:
        assert isinstance(b, float) and b != b, path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def make_env(n_agents=200, seed=0, **kw) -> SyntheticEnvironment:
    return SyntheticEnvironment(n_agents=n_agents, n_resources=K, tightness=0.3, seed=seed, **kw)


def make_config(env, checkpoint_dir, **kw) -> CoordinatorConfig:
    policy = kw.pop("policy", None) or PolicyConfig(
        K, fairness=kw.pop("fairness", "proportional"), oracle="fast", seed=7,
        max_pending_rounds=kw.pop("max_pending_rounds", 20))
    kw.setdefault("checkpoint_every", 10)
    kw.setdefault("round_deadline_s", 30.0)
    return CoordinatorConfig(policy, env.budget, str(checkpoint_dir), **kw)


def local_run(env, checkpoint_dir, n_shards=2, rounds=0, shard_kw=None, **cfg_kw):
    """(coordinator, transport, shards) in-process, shards registered, ``rounds`` played."""
    transport = LocalTransport()
    coord = Coordinator(make_config(env, checkpoint_dir, **cfg_kw), transport)
    shards = []
    for i, idx in enumerate(np.array_split(np.arange(env.n_agents), n_shards)):
        shard = AgentShard(f"shard-{i}", env, idx, seed=11, **(shard_kw or {}))
        shard.set_credential(coord.register(shard.name, shard.agent_ids(), handle=shard))
        shards.append(shard)
    if rounds:
        coord.run(until_round=rounds)
    return coord, transport, shards


def metrics_rounds(coord) -> list[int]:
    return coord.metrics_since(0, 1_000_000)["round"]
