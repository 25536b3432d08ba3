"""Registries: agents (any hashable id ↦ a dense slot) and policies (a name ↦ a class).

:data:`POLICIES` maps every policy name to its class; :func:`register_policy` adds one (the
one registration a new policy needs, see README "Adding a policy") and :func:`make_policy`
builds one by name.

Agent registry: any hashable agent id ↦ a dense agent slot; (agent, option) ↦ an arm slot.

Slots index the dense state arrays (posteriors per arm, fairness per agent). Agents can join
(first request) and leave (:meth:`AgentRegistry.remove`) between rounds; freed slots are
reused lowest-first, and their owners reset the arrays behind them.

Lookups are vectorized: ids are factorized by pandas' hash tables (Python equality, as in a
dict) and known agents are found with a cached ``pandas.Index``; arms live in a dense
(agent slot × option) table. Python loops run only over agents and arms that are new.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from librex_alloc._validation import expect_keys, state_array
from librex_alloc.errors import InvalidInputError, StateError, UnknownAgentError

if TYPE_CHECKING:  # pandas is imported where many ids are hashed: a light import of the core
    import pandas as pd

    from librex_alloc.policies.base import AllocationPolicy

#: name -> policy class; each class's ``name`` attribute is its key (the built-in policies
#: are registered by :mod:`librex_alloc.policies`).
POLICIES: dict[str, type[AllocationPolicy]] = {}


def register_policy(cls: type[AllocationPolicy]) -> type[AllocationPolicy]:
    """Add a policy class to :data:`POLICIES` under ``cls.name`` (usable as a decorator)."""
    from librex_alloc.errors import InvalidConfigError

    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise InvalidConfigError(f"register_policy: {cls!r} has no name")
    if cls.name in POLICIES and POLICIES[cls.name] is not cls:
        raise InvalidConfigError(f"a policy named {cls.name!r} is already registered")
    POLICIES[cls.name] = cls
    return cls


def make_policy(name: str, **kwargs) -> AllocationPolicy:
    """A policy by name; ``kwargs`` are those of :class:`AllocationPolicy` (or ``config=``)."""
    import librex_alloc.policies  # noqa: F401 - registers the built-in policies
    from librex_alloc.errors import InvalidConfigError

    cls = POLICIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InvalidConfigError(f"policy: expected one of {sorted(POLICIES)}, got {name!r}")
    return cls(**kwargs)

#: Option indices are 0 .. MAX_OPTIONS - 1 (the arm table is dense per agent).
MAX_OPTIONS = 1024


def check_options(options: np.ndarray) -> None:
    """Option indices (int64 array) must lie in [0, MAX_OPTIONS); :class:`InvalidInputError`."""
    if len(options) and (options.min() < 0 or options.max() >= MAX_OPTIONS):
        raise InvalidInputError(f"options: indices must lie in [0, {MAX_OPTIONS}), got range "
                                f"[{options.min()}, {options.max()}]")


def _as_series(ids: list) -> pd.Series:
    import pandas as pd

    s = pd.Series(ids, dtype=object) if ids else pd.Series([], dtype=object)
    if len(s) and bool(s.isna().any()):
        raise InvalidInputError("agent ids must not be None or NaN")
    return s


def _int_ids(ids) -> np.ndarray | None:
    """``ids`` as an int64 array when every one is an integer (bools count as 0/1, as they
    do as dict keys), else None."""
    if isinstance(ids, np.ndarray):
        a = ids
    else:
        first = ids[0] if len(ids) else None
        if not isinstance(first, (int, np.integer)):
            return None
        try:
            a = np.asarray(ids)
        except (ValueError, TypeError, OverflowError):
            return None
    if a.ndim != 1 or a.dtype.kind not in "iub":
        return None
    if a.dtype.kind == "u" and len(a) and int(a.max()) >= 2**63:
        return None
    return a.astype(np.int64, copy=False)


def check_ids(agent_ids) -> list:
    """``agent_ids`` as a list; :func:`factorize_ids` then checks that they are hashable."""
    if isinstance(agent_ids, (str, bytes)) or not isinstance(agent_ids, (Sequence, np.ndarray)):
        raise InvalidInputError("agent_ids: expected a sequence of hashable ids")
    return list(agent_ids)


#: Up to this many ids are factorized with a dict (no pandas overhead per call).
_SMALL = 64


def check_id(agent_id) -> None:
    """One agent id: hashable, not None and not NaN; :class:`InvalidInputError` otherwise."""
    try:
        hash(agent_id)
        bad = agent_id is None or bool(agent_id != agent_id)
    except (TypeError, ValueError):
        raise InvalidInputError(f"agent ids must be hashable, got {agent_id!r}") from None
    if bad:
        raise InvalidInputError("agent ids must not be None or NaN")


def factorize_ids(ids: list) -> tuple[np.ndarray, list]:
    """``(codes (N,), uniques)``: ``uniques[codes[i]] == ids[i]``, uniques in first-seen order."""
    if len(ids) <= _SMALL:
        seen: dict = {}
        codes = np.empty(len(ids), dtype=np.int64)
        for i, a in enumerate(ids):
            code = seen.get(a) if type(a) in (int, str) else None
            if code is None:
                check_id(a)
                code = seen.setdefault(a, len(seen))
            codes[i] = code
        return codes, list(seen)
    import pandas as pd

    ints = _int_ids(ids)
    if ints is not None:  # plain integer ids: a hash table on int64, no Python objects
        codes, uniques = pd.factorize(ints)
        return codes.astype(np.int64), uniques.tolist()
    s = _as_series(ids)
    try:
        codes, uniques = pd.factorize(s)
    except TypeError as exc:
        raise InvalidInputError(f"agent ids must be hashable: {exc}") from None
    return codes.astype(np.int64), list(uniques)


class AgentRegistry:
    """Two-level slot registry. All lookups are read-only; :meth:`add` is the only writer."""

    def __init__(self) -> None:
        self._agent_slot: dict = {}
        self._agent_ids: list = []  # slot -> id (None when free; see _agent_live)
        self._agent_live = np.zeros(0, dtype=bool)
        self._free_agents: list[int] = []
        self._arm_table = np.full((0, 1), -1, dtype=np.int64)  # (agent slot, option) -> arm
        self.arm_agent = np.zeros(0, dtype=np.int64)  # arm slot -> agent slot (-1 when free)
        self.arm_option = np.zeros(0, dtype=np.int64)
        self._free_arms: list[int] = []
        self._index: tuple[pd.Index, np.ndarray] | None = None
        #: counts the writes (joins, new options, leaves, restores): equal generations of
        #: the same registry map every id and option to the same slots
        self.generation = 0

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
        try:
            return agent_id in self._agent_slot
        except TypeError:
            return False

    def agents(self) -> list:
        """Live agent ids in slot order."""
        return [self._agent_ids[s] for s in self.live_agent_slots()]

    def live_agent_slots(self) -> np.ndarray:
        return np.nonzero(self._agent_live)[0]

    def live_mask(self) -> np.ndarray:
        """(n_agent_slots,) bool: which agent slots are in use (a copy)."""
        return self._agent_live.copy()

    def agent_id(self, slot: int):
        return self._agent_ids[slot]

    # -- lookups -------------------------------------------------------------------------
    def lookup(self, uniques: list) -> np.ndarray:
        """Slots of ``uniques`` (distinct ids), -1 where unknown (read-only)."""
        return self._lookup(uniques)

    def arms_of(self, agent_slots: np.ndarray, options: np.ndarray) -> np.ndarray:
        """Arm slots of (agent slot, option) rows, -1 where the agent (slot -1) or the
        option is not registered (read-only)."""
        rows, cols = self._arm_table.shape
        ok = (agent_slots >= 0) & (agent_slots < rows) & (options >= 0) & (options < cols)
        out = np.full(len(agent_slots), -1, dtype=np.int64)
        out[ok] = self._arm_table[agent_slots[ok], options[ok]]
        return out

    def _lookup(self, uniques: list) -> np.ndarray:
        """Slots of ``uniques`` (distinct ids), -1 where unknown."""
        if len(uniques) <= 16:
            return np.fromiter((self._agent_slot.get(a, -1) for a in uniques), np.int64,
                               count=len(uniques))
        import pandas as pd

        if self._index is None:
            slots = self.live_agent_slots()
            live = [self._agent_ids[s] for s in slots]
            ints = _int_ids(live) if live else None
            index = pd.Index(ints) if ints is not None else \
                pd.Index(_as_series(live), tupleize_cols=False)
            self._index = (index, slots)
        index, slots = self._index
        query = _int_ids(uniques) if index.dtype.kind == "i" else None
        pos = index.get_indexer(query if query is not None else
                                pd.Index(_as_series(uniques), tupleize_cols=False))
        return np.where(pos >= 0, slots[np.maximum(pos, 0)] if len(slots) else -1, -1)

    def arms_of_agents(self, agent_slots: np.ndarray) -> np.ndarray:
        """Arm slots (sorted) of every option of agent ``agent_slots``."""
        return np.flatnonzero(np.isin(self.arm_agent, agent_slots))

    def slot_of(self, agent_id) -> int:
        """Slot of one known agent (a dict look-up); :class:`UnknownAgentError` if unknown."""
        try:
            return self._agent_slot[agent_id]
        except KeyError:
            raise UnknownAgentError(f"unknown agent id {agent_id!r}") from None
        except TypeError:
            raise InvalidInputError(f"agent ids must be hashable, got {agent_id!r}") from None

    def agent_slots(self, ids: Sequence) -> np.ndarray:
        """Slots of known agents; raises :class:`UnknownAgentError` for any unknown id."""
        return self.slots_of(*factorize_ids(list(ids)))

    def slots_of(self, codes: np.ndarray, uniques: list) -> np.ndarray:
        """:meth:`agent_slots` for ids already passed through :func:`factorize_ids`."""
        slots = self._lookup(uniques)
        if np.any(slots < 0):
            raise UnknownAgentError(f"unknown agent id {uniques[int(np.argmax(slots < 0))]!r}")
        return slots[codes]

    # -- writes --------------------------------------------------------------------------
    def add(self, ids: Sequence, options: np.ndarray, *, codes: np.ndarray | None = None,
            uniques: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray]:
        """Slots for (ids[i], options[i]) rows, registering new agents and arms.

        ``codes``/``uniques`` may be passed from :func:`factorize_ids` to save work.
        Returns ``(agent_slots, arm_slots, new_agent_slots, new_arm_slots)``; the caller must
        resize its arrays to :attr:`n_agent_slots` / :attr:`n_arm_slots` and reset the new ones.
        """
        if codes is None or uniques is None:
            codes, uniques = factorize_ids(check_ids(ids))
        options = np.asarray(options, dtype=np.int64)
        if options.shape != codes.shape:
            raise InvalidInputError("registry.add: one option index per id")
        check_options(options)
        slots_u = self._lookup(uniques)
        new_agents = []
        for j in np.nonzero(slots_u < 0)[0].tolist():  # joiners only
            slots_u[j] = self._new_agent(uniques[j])
            new_agents.append(int(slots_u[j]))
        agent_slots = slots_u[codes]
        n_opt = int(options.max()) + 1 if len(options) else 1
        rows, cols = self._arm_table.shape
        if rows < self.n_agent_slots or cols < n_opt:
            grown = np.full((max(rows, self.n_agent_slots), max(cols, n_opt)), -1, np.int64)
            grown[:rows, :cols] = self._arm_table
            self._arm_table = grown
        arm_slots = self._arm_table[agent_slots, options] if len(options) else \
            np.zeros(0, np.int64)
        new_arms = []
        for i in np.nonzero(arm_slots < 0)[0].tolist():  # new (agent, option) pairs only
            s, o = int(agent_slots[i]), int(options[i])
            t = self._arm_table[s, o]
            if t < 0:  # the same pair twice in one call is rejected upstream
                t = self._new_arm(s, o)
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
        self._index = None
        self.generation += 1
        return s

    def _new_arm(self, agent_slot: int, option: int) -> int:
        if self._free_arms:
            t = heapq.heappop(self._free_arms)
        else:
            t = self.arm_agent.shape[0]
            self.arm_agent = np.append(self.arm_agent, -1)
            self.arm_option = np.append(self.arm_option, -1)
        self.arm_agent[t] = agent_slot
        self.arm_option[t] = option
        self._arm_table[agent_slot, option] = t
        self.generation += 1
        return t

    def remove(self, ids: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Forget agents (they left). Returns the freed (agent_slots, arm_slots)."""
        slots = np.unique(self.agent_slots(ids))  # raises before any change
        arms = np.nonzero(np.isin(self.arm_agent, slots))[0]
        for t in arms.tolist():
            heapq.heappush(self._free_arms, t)
        if len(slots):
            self._arm_table[slots, :] = -1
        self.arm_agent[arms] = -1
        self.arm_option[arms] = -1
        for s in slots.tolist():
            del self._agent_slot[self._agent_ids[s]]
            self._agent_live[s] = False
            self._agent_ids[s] = None
            heapq.heappush(self._free_agents, s)
        self._index = None
        self.generation += 1
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
        """Restore :meth:`get_state`'s output (copies), all checked first. Raises
        :class:`StateError` and changes nothing on a bad state."""
        state = expect_keys(state, ("agent_ids", "agent_live", "arm_agent", "arm_option"),
                            "registry")
        if type(state["agent_ids"]) not in (list, tuple):
            raise StateError("registry.agent_ids: expected a list")
        ids = list(state["agent_ids"])
        live = state_array(state["agent_live"], "registry.agent_live", kinds="b",
                           length=len(ids))
        arm_agent = state_array(state["arm_agent"], "registry.arm_agent", kinds="iu", low=-1,
                                high=len(ids) - 1)
        arm_option = state_array(state["arm_option"], "registry.arm_option", kinds="iu",
                                 length=len(arm_agent), low=-1, high=MAX_OPTIONS - 1)
        if any(ids[s] is not None for s in np.nonzero(~live)[0].tolist()):
            raise StateError("registry: a free agent slot holds an id")
        live_ids = [ids[s] for s in np.nonzero(live)[0].tolist()]
        try:
            _as_series(live_ids)
            slot_of = {a: s for s, a in zip(np.nonzero(live)[0].tolist(), live_ids)}
        except (InvalidInputError, TypeError):
            raise StateError("registry: agent ids must be hashable, not None or NaN") from None
        if len(slot_of) != len(live_ids):
            raise StateError("registry: an agent id appears in two slots")
        used = arm_agent >= 0
        if np.any((arm_option >= 0) != used):
            raise StateError("registry: a free arm slot has an option, or a used one none")
        if not np.all(live[arm_agent[used]]):
            raise StateError("registry: an arm points at a free agent slot")
        table = np.full((len(ids), int(arm_option.max(initial=0)) + 1), -1, np.int64)
        table[arm_agent[used], arm_option[used]] = np.nonzero(used)[0]
        if np.count_nonzero(table >= 0) != np.count_nonzero(used):
            raise StateError("registry: an (agent, option) pair has two arm slots")
        self._agent_ids = ids
        self._agent_live = live
        self._agent_slot = slot_of
        self._free_agents = sorted(np.nonzero(~live)[0].tolist())
        self.arm_agent = arm_agent
        self.arm_option = arm_option
        self._arm_table = table
        self._free_arms = sorted(np.nonzero(~used)[0].tolist())
        self._index = None
        self.generation += 1
