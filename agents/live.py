"""Live agents: a user's own agent objects behind the submitter protocol.

A live agent is any object with two methods (:class:`LiveAgent`), plus an optional third:

``request(round) -> None | (K,) | (J, K)``
    What it asks for this round: nothing, one resource vector, or J alternative options
    (the policy picks at most one). Resource units are the coordinator's budget units.
``on_grant(round, grant) -> float | bool | None``
    Called when the agent is granted resources (:class:`Grant`). Do the work; return the
    outcome now (a reward in [0, 1] for Bernoulli policies, or True/False for success), or
    None to report it later or never.
``poll() -> iterable of (round, outcome)`` (optional)
    Outcomes that became available since the last call (work still running when
    ``on_grant`` returned). Called once per round, before the agent's next request.

Outcomes reach the coordinator with the host's next reply and are retransmitted until the
coordinator acknowledges them, so each is applied once. One host serves one or a few agents
(one Ray actor per live agent: user code stays isolated in its own process); simulated
populations belong in :class:`~agents.shard.AgentShard`.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from agents.protocol import Submission, Submitter


@dataclass(frozen=True)
class Grant:
    """Resources granted to one agent for one round: ``option`` is the chosen option's index,
    ``fraction`` in (0, 1] the share of its request (1.0 unless the policy is divisible),
    ``resources`` (K,) float the granted amounts (``fraction * request``)."""

    agent_id: object
    round: int
    option: int
    fraction: float
    resources: np.ndarray


@runtime_checkable
class LiveAgent(Protocol):
    """The protocol a user's agent implements (see the module docstring)."""

    def request(self, round: int):
        """None, a (K,) resource vector, or a (J, K) matrix of J options."""

    def on_grant(self, round: int, grant: Grant):
        """Act on a grant; return the outcome now (float or bool) or None (later / never)."""


class LiveAgentHost(Submitter):
    """Hosts live agents: ``agents`` is one :class:`LiveAgent` (its id is ``agent_id``,
    default ``name``) or a mapping ``{agent_id: LiveAgent}``. n_resources: K.

    Exceptions raised by an agent's methods are caught: the agent requests nothing that round,
    or reports nothing for that grant, and the error is kept in ``notices``."""

    def __init__(self, name: str, agents: LiveAgent | Mapping, n_resources: int, *,
                 agent_id=None, max_outbox: int = 10_000):
        super().__init__(name, max_outbox=max_outbox)
        if isinstance(agents, Mapping):
            self.agents = dict(agents)
        else:
            self.agents = {name if agent_id is None else agent_id: agents}
        for aid, agent in self.agents.items():
            if not isinstance(aid, (int, str)) or isinstance(aid, bool):
                raise TypeError(f"agent ids must be int or str, got {aid!r}")
            if not isinstance(agent, LiveAgent):
                raise TypeError(f"agent {aid!r} does not implement LiveAgent "
                                f"(request and on_grant)")
        self.n_resources = int(n_resources)
        self._version_no = 0
        self._last: tuple | None = None
        self.errors = 0

    def agent_ids(self) -> list:
        return list(self.agents)

    def _rows(self, rnd: int) -> Submission | None:
        ids, reqs, opts = [], [], []
        k = self.n_resources
        for aid, agent in self.agents.items():
            try:
                r = agent.request(rnd)
                if r is None:
                    continue
                r = np.asarray(r, dtype=np.float64)
                r = r.reshape(1, k) if r.shape == (k,) else r
                if r.ndim != 2 or r.shape[1] != k or not np.all(np.isfinite(r)) or \
                        np.any(r < 0):
                    raise ValueError(f"request: expected (K,) or (J, K) finite values ≥ 0 "
                                     f"with K = {k}, got shape {r.shape}")
            except Exception as exc:
                self._error(aid, rnd, "request", exc)
                continue
            ids.extend([aid] * len(r))
            reqs.append(r)
            opts.append(np.arange(len(r)))
        if not ids:
            return None
        requests = np.vstack(reqs)
        options = np.concatenate(opts).astype(np.int64)
        last = self._last
        if last is None or last[1] != ids or not np.array_equal(last[2], requests):
            self._version_no += 1
            self._last = (f"{self.incarnation}:{self._version_no}", ids, requests, options)
        version, ids, requests, options = self._last
        return Submission(rnd, version, list(ids), requests, options)

    def _grant(self, rnd: int, sub: Submission, rows: np.ndarray,
               fractions: np.ndarray) -> None:
        outcomes = []
        for row, frac in zip(rows.tolist(), fractions.tolist()):
            aid = sub.agent_ids[row]
            grant = Grant(aid, rnd, int(sub.options[row]), float(frac),
                          frac * sub.requests[row])
            try:
                out = self.agents[aid].on_grant(rnd, grant)
            except Exception as exc:
                self._error(aid, rnd, "on_grant", exc)
                continue
            if out is not None:
                outcomes.append((rnd, aid, out))
        self._queue(outcomes)

    def _late(self, next_round: int) -> None:
        outcomes = []
        for aid, agent in self.agents.items():
            poll = getattr(agent, "poll", None)
            if poll is None:
                continue
            try:
                outcomes.extend((int(rnd), aid, out) for rnd, out in poll())
            except Exception as exc:
                self._error(aid, next_round, "poll", exc)
        self._queue(outcomes)

    def _queue(self, outcomes: Iterable[tuple]) -> None:
        """One report per (round, kind): bools are success flags, numbers rewards."""
        groups: dict[tuple, list] = {}
        for rnd, aid, out in outcomes:
            kind = "success" if isinstance(out, (bool, np.bool_)) else "reward"
            groups.setdefault((rnd, kind), []).append((aid, float(out)))
        for (rnd, kind), pairs in groups.items():
            self.queue_report(rnd, [a for a, _ in pairs], [v for _, v in pairs], kind)

    def _error(self, aid, rnd: int, where: str, exc: Exception) -> None:
        self.errors += 1
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        self.notices.append(f"round {rnd}: agent {aid!r} {where} raised {tb}")
