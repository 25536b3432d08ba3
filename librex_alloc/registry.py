"""Agent registry: any hashable agent id ↦ a dense agent slot; (agent, option) ↦ an arm slot.

Slots index the dense state arrays (posteriors per arm, fairness per agent). Agents can join
(first request) and leave (:meth:`AgentRegistry.remove`) between rounds; freed slots are
reused lowest-first, and their owners reset the arrays behind them.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Sequence

import numpy as np

from librex_alloc.errors import InvalidInputError, StateError, UnknownAgentError


def check_ids(agent_ids) -> list:
    """A list of hashable ids (raises :class:`InvalidInputError` otherwise)."""
    if isinstance(agent_ids, (str, bytes)) or not isinstance(agent_ids, (Sequence, np.ndarray)):
        raise InvalidInputError("agent_ids: expected a sequence of hashable ids")
    ids = list(agent_ids)
    for a in ids:
        if not isinstance(a, Hashable):
            raise InvalidInputError(f"agent id {a!r} is not hashable")
        if isinstance(a, float) and a != a:
            raise InvalidInputError("agent id NaN is not allowed (NaN != NaN)")
    return ids


class AgentRegistry:
    """Two-level slot registry. All lookups are read-only; :meth:`add` is the only writer."""

    def __init__(self) -> None:
        self._agent_slot: dict = {}
        self._agent_ids: list = []  # slot -> id (None when free; see _agent_live)
        self._agent_live = np.zeros(0, dtype=bool)
        self._free_agents: list[int] = []
        self._arm_slot: dict = {}
        self.arm_agent = np.zeros(0, dtype=np.int64)  # arm slot -> agent slot (-1 when free)
        self.arm_option = np.zeros(0, dtype=np.int64)
        self._free_arms: list[int] = []

    # -- sizes ---------------------------------------------------------------------------
    @property
    def n_agent_slots(self) -> int:
        return len(self._agent_ids)

    @property
    def n_arm_slots(self) -> int:
        return self.arm_agent.shape[0]

    def __len__(self) -> int:
        return len(self._agent_slot)

    def __contains__(self, agent_id) -> bool:
        return agent_id in self._agent_slot

    def agents(self) -> list:
        """Live agent ids in slot order."""
        return [self._agent_ids[s] for s in self.live_agent_slots()]

    def live_agent_slots(self) -> np.ndarray:
        return np.nonzero(self._agent_live)[0]

    def agent_id(self, slot: int):
        return self._agent_ids[slot]

    # -- lookups -------------------------------------------------------------------------
    def agent_slots(self, ids: Sequence) -> np.ndarray:
        """Slots of known agents; raises :class:`UnknownAgentError` for any unknown id."""
        try:
            return np.fromiter((self._agent_slot[a] for a in ids), dtype=np.int64, count=len(ids))
        except KeyError as exc:
            raise UnknownAgentError(f"unknown agent id {exc.args[0]!r}") from None

    # -- writes --------------------------------------------------------------------------
    def add(self, ids: Sequence, options: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray, np.ndarray]:
        """Slots for (ids[i], options[i]) rows, registering new agents and arms.

        Returns ``(agent_slots, arm_slots, new_agent_slots, new_arm_slots)``; the caller must
        resize its arrays to :attr:`n_agent_slots` / :attr:`n_arm_slots` and reset the new ones.
        """
        agent_slots = np.empty(len(ids), dtype=np.int64)
        arm_slots = np.empty(len(ids), dtype=np.int64)
        new_agents: list[int] = []
        new_arms: list[int] = []
        for i, (a, o) in enumerate(zip(ids, options.tolist())):
            s = self._agent_slot.get(a)
            if s is None:
                s = self._new_agent(a)
                new_agents.append(s)
            agent_slots[i] = s
            key = (a, o)
            t = self._arm_slot.get(key)
            if t is None:
                t = self._new_arm(key, s, o)
                new_arms.append(t)
            arm_slots[i] = t
        return agent_slots, arm_slots, np.array(new_agents, np.int64), np.array(new_arms, np.int64)

    def _new_agent(self, a) -> int:
        if self._free_agents:
            s = heapq.heappop(self._free_agents)
            self._agent_ids[s] = a
        else:
            s = len(self._agent_ids)
            self._agent_ids.append(a)
            self._agent_live = np.append(self._agent_live, False)
        self._agent_live[s] = True
        self._agent_slot[a] = s
        return s

    def _new_arm(self, key, agent_slot: int, option: int) -> int:
        if self._free_arms:
            t = heapq.heappop(self._free_arms)
        else:
            t = self.arm_agent.shape[0]
            self.arm_agent = np.append(self.arm_agent, -1)
            self.arm_option = np.append(self.arm_option, -1)
        self.arm_agent[t] = agent_slot
        self.arm_option[t] = option
        self._arm_slot[key] = t
        return t

    def remove(self, ids: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Forget agents (they left). Returns the freed (agent_slots, arm_slots)."""
        slots = self.agent_slots(ids)  # raises before any change
        arms = np.nonzero(np.isin(self.arm_agent, slots))[0]
        for t in arms.tolist():
            del self._arm_slot[(self._agent_ids[self.arm_agent[t]], int(self.arm_option[t]))]
            heapq.heappush(self._free_arms, t)
        self.arm_agent[arms] = -1
        self.arm_option[arms] = -1
        for a, s in zip(ids, slots.tolist()):
            if self._agent_live[s]:
                del self._agent_slot[a]
                self._agent_live[s] = False
                self._agent_ids[s] = None
                heapq.heappush(self._free_agents, s)
        return slots, arms

    # -- state ---------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {
            "agent_ids": list(self._agent_ids),
            "agent_live": self._agent_live.copy(),
            "arm_agent": self.arm_agent.copy(),
            "arm_option": self.arm_option.copy(),
        }

    def set_state(self, state: dict) -> None:
        try:
            ids = list(state["agent_ids"])
            live = np.asarray(state["agent_live"], dtype=bool)
            arm_agent = np.asarray(state["arm_agent"], dtype=np.int64)
            arm_option = np.asarray(state["arm_option"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"registry state: {exc}") from None
        if len(ids) != len(live) or arm_agent.shape != arm_option.shape:
            raise StateError("registry state: inconsistent lengths")
        agent_slot = {a: s for s, a in enumerate(ids) if live[s]}
        arm_slot = {}
        for t, (s, o) in enumerate(zip(arm_agent.tolist(), arm_option.tolist())):
            if s >= 0:
                if not (0 <= s < len(ids)) or not live[s]:
                    raise StateError("registry state: an arm points at a free agent slot")
                arm_slot[(ids[s], o)] = t
        self._agent_ids = ids
        self._agent_live = live.copy()
        self._agent_slot = agent_slot
        self._free_agents = sorted(np.nonzero(~live)[0].tolist())
        self.arm_agent = arm_agent.copy()
        self.arm_option = arm_option.copy()
        self._arm_slot = arm_slot
        self._free_arms = sorted(np.nonzero(arm_agent < 0)[0].tolist())
