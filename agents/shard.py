"""An agent shard: many simulated agents of one environment behind one submitter.

One shard hosts a subset of an :class:`~librex_alloc.Environment`'s agents (thousands per
process: one actor per simulated agent does not scale, SPEC §9). Per round it submits one
batch (its rows of ``env.requests(t)``) and samples the rewards of all its granted rows with one
``env.sample`` call. No per-agent Python loop runs inside a round.

Rewards are drawn from a generator seeded by ``(seed, stream, round)``, so a round's outcomes
do not depend on what happened before: a coordinator that restarts and plays a round again
gets the same outcomes (the shard also remembers the grants it acted on). Delayed and missing
feedback: the environment's own ``feedback_delays`` when it has one, else each granted row is
reported ``delay`` rounds late (an int or an inclusive ``(low, high)`` range drawn per row) and
only with probability ``report_prob``. Environments with churn: an agent that is not active
submits nothing (its posterior stays in the coordinator until it is back). Drifting means:
rewards and true means are taken at the round they belong to.
"""

from __future__ import annotations

import inspect
import zlib
from collections import OrderedDict

import numpy as np

from agents.protocol import Submission, Submitter
from librex_alloc import Environment
from librex_alloc.round_step import FeedbackSampler


def _ids_array(ids) -> np.ndarray | list:
    """Agent ids as an int64 array when they are all integers (cheap to send), else a list."""
    arr = np.asarray(ids)
    if arr.dtype.kind in "iu" and arr.ndim == 1:
        return arr.astype(np.int64, copy=False)
    return list(ids)


class AgentShard(Submitter):
    """Hosts the agents ``agent_index`` (env agent indices) of ``env``.

    name: submitter name (its actor name). agent_index: (n,) ints, default every agent.
    seed: reward stream seed. delay: int ≥ 0 or (low, high) rounds of reporting delay, and
    report_prob the probability that an outcome is reported at all (default: the environment's
    ``feedback_delays`` if it has one, else no delay). static: the environment's rows never
    change (then they are computed once); default: the environment's ``is_static``, else False.
    """

    def __init__(self, name: str, env: Environment, agent_index=None, *, seed: int = 0,
                 delay: int | tuple[int, int] | None = None, report_prob: float | None = None,
                 static: bool | None = None, max_outbox: int = 10_000):
        super().__init__(name, max_outbox=max_outbox)
        if not isinstance(env, Environment):
            raise TypeError(f"env: {type(env)!r} does not implement the Environment protocol")
        self.env = env
        idx = np.arange(env.n_agents) if agent_index is None else \
            np.unique(np.asarray(agent_index, dtype=np.int64))
        if len(idx) and (idx[0] < 0 or idx[-1] >= env.n_agents):
            raise ValueError(f"agent_index: must lie in [0, {env.n_agents})")
        self.agent_index = idx
        self._hosted = np.zeros(env.n_agents, dtype=bool)
        self._hosted[idx] = True
        self.feedback = FeedbackSampler(env, delay, report_prob)
        self.static = bool(getattr(env, "is_static", False)) if static is None else bool(static)
        self._at_round = {f: "t" in inspect.signature(getattr(env, f)).parameters
                          for f in ("expected", "sample")}
        self.seed = int(seed)
        self.stream = zlib.crc32(self.name.encode())
        self._version_no = 0
        self._last: tuple | None = None  # (version, ids, requests, options, expected, env_index)
        self._env_index: OrderedDict[str, np.ndarray] = OrderedDict()
        self._pending: dict[int, list] = {}  # release round -> [(round, ids, values)]

    def agent_ids(self) -> list:
        """Ids of the hosted agents (what the shard registers): their indices when the
        environment's ids are its agent indices (as for SyntheticEnvironment, also under
        churn), else the ids in round 1's rows."""
        version, ids, _, _, _, env_index = self._compute(1)
        if isinstance(ids, np.ndarray) and np.array_equal(ids, env_index):
            return self.agent_index.tolist()
        return ids.tolist() if isinstance(ids, np.ndarray) else list(dict.fromkeys(ids))

    # -- rows --------------------------------------------------------------------------
    def _compute(self, rnd: int) -> tuple:
        if self.static and self._last is not None:
            return self._last
        er = self.env.requests(rnd)
        keep = np.nonzero(self._hosted[er.agent_index])[0]
        env_index = er.agent_index[keep]
        req = er.request
        ids = _ids_array(req.agent_ids)
        ids = ids[keep] if isinstance(ids, np.ndarray) else [ids[i] for i in keep.tolist()]
        requests = req.requests[keep]
        options = req.options[keep]
        at = {"t": rnd} if self._at_round["expected"] else {}
        expected = np.asarray(self.env.expected(env_index, options, **at), dtype=np.float64)
        last = self._last
        if last is not None and _same_rows(last, ids, requests, options, expected):
            return last
        self._version_no += 1
        version = f"{self.incarnation}:{self._version_no}"
        self._last = (version, ids, requests, options, expected, env_index)
        self._env_index[version] = env_index
        while len(self._env_index) > self.MEMORY:
            self._env_index.popitem(last=False)
        return self._last

    def _rows(self, rnd: int) -> Submission | None:
        version, ids, requests, options, expected, _ = self._compute(rnd)
        if not len(ids):
            return None
        return Submission(rnd, version, ids, requests, options, expected)

    # -- outcomes ----------------------------------------------------------------------
    def _grant(self, rnd: int, sub: Submission, rows: np.ndarray,
               fractions: np.ndarray) -> None:
        env_index = self._env_index.get(sub.version)
        if env_index is None:  # pragma: no cover - versions are kept for MEMORY rounds
            self.notices.append(f"round {rnd}: grants for a forgotten version")
            return
        rng = np.random.default_rng([self.seed, self.stream, int(rnd)])
        at = {"t": rnd} if self._at_round["sample"] else {}
        values = np.asarray(self.env.sample(env_index[rows], sub.options[rows], rng, **at),
                            dtype=np.float64)
        if self.env.reward_family != "gaussian":
            values = np.clip(values, 0.0, 1.0)
        ids = sub.agent_ids[rows] if isinstance(sub.agent_ids, np.ndarray) else \
            [sub.agent_ids[i] for i in rows.tolist()]
        delays = self.feedback.draw(env_index[rows], sub.options[rows], rng)
        keep = delays >= 0
        if keep.all() and len(np.unique(delays)) == 1:
            self._pending.setdefault(rnd + int(delays[0]), []).append((rnd, ids, values))
            return
        arr_ids = ids if isinstance(ids, np.ndarray) else np.asarray(ids, dtype=object)
        for d in np.unique(delays[keep]).tolist():  # one group per distinct delay
            sel = keep & (delays == d)
            part = arr_ids[sel]
            part = part if isinstance(ids, np.ndarray) else part.tolist()
            self._pending.setdefault(rnd + d, []).append((rnd, part, values[sel]))

    def _late(self, next_round: int) -> None:
        for release in sorted(r for r in self._pending if r < next_round):
            for rnd, ids, values in self._pending.pop(release):
                self.queue_report(rnd, ids, values, "reward")


def _same_rows(last: tuple, ids, requests, options, expected) -> bool:
    _, ids0, req0, opt0, exp0, _ = last
    if isinstance(ids, np.ndarray) != isinstance(ids0, np.ndarray) or len(ids) != len(ids0):
        return False
    same_ids = np.array_equal(ids, ids0) if isinstance(ids, np.ndarray) else ids == ids0
    return bool(same_ids and np.array_equal(requests, req0) and np.array_equal(options, opt0)
                and np.array_equal(expected, exp0))
