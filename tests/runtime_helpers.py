"""Helpers shared by the runtime tests (imported by name: tests/runtime is on sys.path)."""

from __future__ import annotations

import numpy as np
from conftest import assert_state_equal  # noqa: F401 (re-exported for the runtime tests)

from agents import AgentShard
from coordinator import Coordinator, CoordinatorConfig, LocalTransport
from librex_alloc import PolicyConfig, SyntheticEnvironment

K = 3



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
