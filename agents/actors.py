"""Ray actors around the submitters: :class:`ShardActor` and :class:`LiveAgentActor`.

Each is named (the coordinator reaches it by name), restarts forever (``max_restarts=-1``)
and registers with the coordinator in its constructor, so a restarted submitter registers
again and gets a fresh credential; its agents keep their posteriors (they live in the
coordinator). Calls from the coordinator are not retried (``max_task_retries=0``): a round
closes without a submitter that died, and the next round calls the restarted one.
"""

from __future__ import annotations

import os

import numpy as np
import ray

from agents.live import LiveAgentHost
from agents.protocol import Report

SUBMITTER_OPTIONS = {"max_restarts": -1, "max_task_retries": 0, "num_cpus": 0,
                     "allow_out_of_order_execution": True}


class _Server:
    """Registration and the exchange, shared by both actor bodies."""

    submitter = None

    def _setup(self, coordinator: str | None, namespace: str | None) -> None:
        self.coordinator = coordinator
        self.namespace = namespace or ray.get_runtime_context().namespace
        self.registrations = 0
        if coordinator is not None:
            self._register(coordinator)

    def _check_admin(self, admin) -> None:
        """Raise the coordinator's ``CredentialError`` unless ``admin`` is the admin credential
        of the job this actor serves (a submitter attached to no live job answers anyone:
        one whose coordinator was removed for good belongs to nobody)."""
        if self.coordinator is None:
            return
        try:
            coord = ray.get_actor(self.coordinator, namespace=self.namespace)
        except ValueError:  # no actor of that name any more: the job is gone
            return
        try:
            ray.get(coord.check_admin.remote(admin=admin))
        except ray.exceptions.ActorDiedError:
            # killed for good between the lookup and the call (a coordinator that Ray is
            # restarting retries the call instead): the job is gone
            return

    def attach(self, coordinator: str, *, admin: str | None = None) -> int:
        """Register with the coordinator actor named ``coordinator``; returns its next round.
        Once attached, moving to another coordinator (or registering again) needs the current
        job's admin credential (``admin``): without it anyone in the cluster could take a
        job's agents away from it."""
        if type(coordinator) is not str:
            raise TypeError(f"attach: coordinator must be an actor name, got {coordinator!r}")
        self._check_admin(admin)
        return self._register(coordinator)

    def _register(self, coordinator: str) -> int:
        coord = ray.get_actor(coordinator, namespace=self.namespace)
        me = ray.get_runtime_context().current_actor
        reg = ray.get(coord.register.remote(self.submitter.name, self.submitter.agent_ids(), me))
        self.submitter.set_credential(reg)
        self.coordinator = coordinator
        self.registrations += 1
        return reg.next_round

    def exchange(self, msg):
        return self.submitter.exchange(msg)

    def report(self, rnd: int, agent_ids, values, kind: str = "reward",
               report_id: str | None = None, *, admin: str | None = None) -> dict:
        """Push outcomes to the coordinator now (instead of with the next reply); returns its
        acknowledgement once they are durable. The caller must hold the job's admin
        credential (``admin``; checked by the coordinator): this actor reports in its own
        name, with its own credential. Raises the coordinator's rejection error."""
        coord = ray.get_actor(self.coordinator, namespace=self.namespace)
        ray.get(coord.check_admin.remote(admin=admin))
        s = self.submitter
        rep = Report(report_id or s.next_report_id(), int(rnd), list(agent_ids),
                     np.asarray(values, dtype=np.float64), kind)
        return ray.get(coord.report.remote(s.token, rep))

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this submitter runs on."""
        return ray.get_runtime_context().get_node_id()

    def stats(self) -> dict:
        s = self.submitter
        return {"name": s.name, "incarnation": s.incarnation, "pid": os.getpid(),
                "registrations": self.registrations, "granted_rows": s.granted_rows,
                "reported_rows": s.reported_rows, "outbox": len(s.outbox),
                "dropped_reports": s.dropped_reports, "notices": list(s.notices)}


def build_env(spec: dict):
    """The environment described by a small spec ``{"synthetic": {SyntheticEnvironment
    keyword arguments}}`` (built where it is used: an actor restarted by Ray gets its
    constructor arguments again only when they were passed by value)."""
    if not isinstance(spec, dict) or list(spec) != ["synthetic"]:
        raise ValueError(f"env spec: expected {{'synthetic': {{...}}}}, got {spec!r}")
    from librex_alloc import SyntheticEnvironment

    return SyntheticEnvironment(**spec["synthetic"])


class ShardServer(_Server):
    """Actor body hosting an :class:`AgentShard` (arguments as AgentShard's, plus the
    coordinator's actor name to register with, if any). ``env`` may be an environment spec
    (:func:`build_env`) and ``agent_range=(lo, hi)`` may replace ``agent_index``: small
    arguments, passed by value, so that Ray can restart the actor once its creator is gone."""

    def __init__(self, name: str, env, agent_index=None, *, coordinator: str | None = None,
                 namespace: str | None = None, agent_range=None, **shard_options):
        from agents.shard import AgentShard  # the core library: shard processes only

        if isinstance(env, dict):
            env = build_env(env)
        if agent_range is not None:
            agent_index = np.arange(int(agent_range[0]), int(agent_range[1]))
        self.submitter = AgentShard(name, env, agent_index, **shard_options)
        self._setup(coordinator, namespace)


class LiveAgentServer(_Server):
    """Actor body hosting a :class:`LiveAgentHost` around the user's agent object(s)."""

    def __init__(self, name: str, agents, n_resources: int, *, agent_id=None,
                 coordinator: str | None = None, namespace: str | None = None):
        self.submitter = LiveAgentHost(name, agents, n_resources, agent_id=agent_id)
        self._setup(coordinator, namespace)

    def agent_attribute(self, agent_id, attribute: str, *, admin: str | None = None):
        """Read a public attribute of a hosted agent (e.g. a worker's history): a state read,
        so it needs the job's admin credential (``admin``) once the actor is attached."""
        self._check_admin(admin)
        if type(attribute) is not str or not attribute.isidentifier() or attribute[0] == "_":
            raise AttributeError(f"agent_attribute: {attribute!r} is not a public attribute")
        try:
            agent = self.submitter.agents[agent_id]
        except (KeyError, TypeError):
            raise KeyError(f"agent_attribute: no hosted agent {agent_id!r}") from None
        return getattr(agent, attribute)


ShardActor = ray.remote(**SUBMITTER_OPTIONS)(ShardServer)
LiveAgentActor = ray.remote(**SUBMITTER_OPTIONS)(LiveAgentServer)


def split_agents(n_agents: int, n_shards: int) -> list[np.ndarray]:
    """Contiguous blocks of agent indices, one per shard (sizes differ by at most one)."""
    return np.array_split(np.arange(n_agents), n_shards)


def start_shards(env, n_shards: int, coordinator: str, *, prefix: str = "shard",
                 namespace: str | None = None, seed: int = 0, resources: dict | None = None,
                 env_spec: dict | None = None, detached: bool = False,
                 scheduling_strategy: str | None = None, **shard_options) -> list:
    """Start ``n_shards`` named shard actors hosting ``env``'s agents and wait until all have
    registered with ``coordinator``; returns their handles.

    env_spec: a small spec of ``env`` (:func:`build_env`) sent instead of the environment, so
    the shards can be restarted by Ray without their creator (a detached job; a large
    environment would go through the object store and die with the driver's references).
    detached: ``lifetime="detached"``. scheduling_strategy: e.g. ``"SPREAD"`` over nodes."""
    handles = []
    for i, idx in enumerate(split_agents(env.n_agents, n_shards)):
        opts = {"name": f"{prefix}-{i}"}
        if namespace is not None:
            opts["namespace"] = namespace
        if resources:
            opts["resources"] = resources
        if detached:
            opts["lifetime"] = "detached"
        if scheduling_strategy is not None:
            opts["scheduling_strategy"] = scheduling_strategy
        if env_spec is not None:
            args = (f"{prefix}-{i}", env_spec)
            shard_options["agent_range"] = (int(idx[0]), int(idx[-1]) + 1)
        else:
            args = (f"{prefix}-{i}", env, idx)
        handles.append(ShardActor.options(**opts).remote(
            *args, coordinator=coordinator, namespace=namespace, seed=seed, **shard_options))
    ray.get([h.pid.remote() for h in handles])  # constructors (registration) done
    return handles


def start_live_agent(name: str, agent, n_resources: int, coordinator: str, *,
                     agent_id=None, namespace: str | None = None):
    """Start one named live-agent actor around ``agent`` and wait until it has registered."""
    opts = {"name": name}
    if namespace is not None:
        opts["namespace"] = namespace
    h = LiveAgentActor.options(**opts).remote(name, agent, n_resources, agent_id=agent_id,
                                              coordinator=coordinator, namespace=namespace)
    ray.get(h.pid.remote())
    return h
