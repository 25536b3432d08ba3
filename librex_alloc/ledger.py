"""The outcome ledger: which (round, agent) pairs were allocated and which have reported.

Outcomes are accepted only for agents allocated in a round that is still *pending* (one of
the last ``max_pending_rounds`` rounds), and each (round, agent) pair is applied at most once:
a retried report is recognized and skipped. This is what makes a retried call idempotent, in
the batch interface, in the per-agent API and across a coordinator restart (the ledger is part
of the policy's state).

Rows are stored per round in dense arrays (agent slot, arm slot, fraction, reported); lookups
are vectorized (a sorted index per round). ``last_round[slot]`` is the newest round in which the
agent was allocated, so the per-agent API finds "the agent's newest round" in O(1).

The ledger never changes on a failed call: :meth:`locate` only reads, :meth:`mark` writes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from librex_alloc._validation import expect_keys, state_array
from librex_alloc.errors import InvalidInputError, NotAllocatedError, StateError


@dataclass
class PendingRound:
    """One round's allocated rows: agent slots, arm slots, granted fractions, reported flags,
    all (m,), and a sorted index of the agent slots for vectorized lookups."""

    agents: np.ndarray
    arms: np.ndarray
    fractions: np.ndarray
    reported: np.ndarray

    def __post_init__(self) -> None:
        order = np.argsort(self.agents, kind="stable")
        self._keys, self._order = self.agents[order], order

    def find(self, slots: np.ndarray) -> np.ndarray:
        """Positions of agent ``slots`` (m,) in this round's rows, -1 where absent."""
        keys = self._keys
        if not len(keys):
            return np.full(len(slots), -1, dtype=np.int64)
        i = np.minimum(np.searchsorted(keys, slots), len(keys) - 1)
        return np.where(keys[i] == slots, self._order[i], -1)

    def find_one(self, slot: int) -> int:
        """Position of one agent slot in this round's rows, -1 if absent."""
        keys = self._keys
        i = int(np.searchsorted(keys, slot))
        return int(self._order[i]) if i < len(keys) and keys[i] == slot else -1

    def without(self, keep: np.ndarray) -> PendingRound:
        return PendingRound(self.agents[keep], self.arms[keep], self.fractions[keep],
                            self.reported[keep])


class OutcomeLedger:
    """Pending allocations of the last ``max_pending_rounds`` rounds, indexed by agent slot."""

    def __init__(self, max_pending_rounds: int) -> None:
        self.max_pending_rounds = int(max_pending_rounds)
        self._rounds: OrderedDict[int, PendingRound] = OrderedDict()
        self.last_round = np.zeros(0, dtype=np.int64)  # per agent slot; 0: never allocated

    # -- sizes -------------------------------------------------------------------------------
    def resize(self, n_agent_slots: int) -> None:
        grow = n_agent_slots - len(self.last_round)
        if grow > 0:
            self.last_round = np.concatenate([self.last_round, np.zeros(grow, np.int64)])

    def truncate(self, n_agent_slots: int) -> None:
        """Drop agent slots ``>= n_agent_slots`` (undoes a :meth:`resize`)."""
        self.last_round = self.last_round[:n_agent_slots].copy()

    @property
    def rounds(self) -> list[int]:
        """Pending round numbers, oldest first."""
        return list(self._rounds)

    # -- writes ------------------------------------------------------------------------------
    def record(self, rnd: int, agents: np.ndarray, arms: np.ndarray,
               fractions: np.ndarray) -> None:
        """Remember round ``rnd``'s allocated rows (copies); the oldest rounds expire."""
        self._rounds[int(rnd)] = PendingRound(
            agents.astype(np.int64, copy=True), arms.astype(np.int64, copy=True),
            fractions.astype(np.float64, copy=True), np.zeros(len(agents), dtype=bool))
        self.last_round[agents] = int(rnd)
        while len(self._rounds) > self.max_pending_rounds:
            self._rounds.popitem(last=False)

    def mark(self, rnd: int, positions: np.ndarray) -> None:
        """Mark rows of round ``rnd`` as reported."""
        self._rounds[rnd].reported[positions] = True

    def forget(self, rnd: int, slots: np.ndarray) -> int:
        """Drop round ``rnd``'s rows of agent ``slots`` (allocations that never reached their
        agents: no outcome can come); returns how many rows were dropped."""
        p = self._rounds.get(int(rnd))
        if p is None or not len(slots):
            return 0
        keep = ~np.isin(p.agents, slots)
        if not keep.all():
            self._rounds[int(rnd)] = p.without(keep)
        return int(len(keep) - keep.sum())

    def compact(self, through: int, expire_before: int) -> None:
        """Rounds ``< expire_before`` are dropped whole; round ``through`` (called once per
        round, as it leaves a window) keeps only its unreported rows, or is dropped if it has
        none. O(1) per round beyond the expired ones."""
        while self._rounds and next(iter(self._rounds)) < expire_before:
            self._rounds.popitem(last=False)
        p = self._rounds.get(int(through))
        if p is not None:
            if p.reported.all():
                del self._rounds[int(through)]
            elif p.reported.any():
                self._rounds[int(through)] = p.without(~p.reported)

    def drop_agents(self, slots: np.ndarray) -> None:
        """Agents left: forget their pending rows and their newest round."""
        for rnd, p in list(self._rounds.items()):
            keep = ~np.isin(p.agents, slots)
            if not keep.all():
                self._rounds[rnd] = p.without(keep)
        self.last_round[slots] = 0

    # -- reads -------------------------------------------------------------------------------
    def pending(self, rnd) -> PendingRound:
        """Round ``rnd``'s rows; :class:`InvalidInputError` if ``rnd`` is not an int (a bool,
        a float, text), :class:`NotAllocatedError` if that round is not pending."""
        if isinstance(rnd, (bool, np.bool_)) or not isinstance(rnd, (int, np.integer)):
            raise InvalidInputError(f"round: expected an int round number, got {rnd!r}")
        p = self._rounds.get(int(rnd))
        if p is None:
            raise NotAllocatedError(
                f"round {rnd!r} has no pending allocations (not yet played, nobody allocated, "
                f"or older than the last {self.max_pending_rounds} rounds)")
        return p

    def locate(self, rnd, slots: np.ndarray, ids: list) -> tuple[PendingRound, np.ndarray]:
        """(round ``rnd``'s rows, positions of ``slots`` in them); raises
        :class:`NotAllocatedError` naming the first of ``ids`` that was not allocated."""
        p = self.pending(rnd)
        pos = p.find(slots)
        if np.any(pos < 0):
            bad = ids[int(np.argmax(pos < 0))]
            raise NotAllocatedError(f"agent {bad!r} was not allocated in round {rnd}")
        return p, pos

    def last_rounds(self, slots: np.ndarray) -> np.ndarray:
        """(m,) the newest round each agent slot was allocated in (0: never), pending or
        not (a copy)."""
        return self.last_round[slots]

    def newest_round(self, slot: int) -> int | None:
        """The newest round in which agent ``slot`` was allocated, if it is still pending."""
        rnd = int(self.last_round[slot]) if 0 <= slot < len(self.last_round) else 0
        return rnd if rnd in self._rounds else None

    # -- state -------------------------------------------------------------------------------
    def get_state(self) -> dict:
        parts = list(self._rounds.values())

        def cat(field: str, dtype) -> np.ndarray:
            if not parts:
                return np.zeros(0, dtype)
            return np.concatenate([getattr(p, field) for p in parts]).astype(dtype)

        return {
            "rounds": np.asarray(list(self._rounds), dtype=np.int64),
            "sizes": np.asarray([len(p.agents) for p in parts], dtype=np.int64),
            "agents": cat("agents", np.int64),
            "arms": cat("arms", np.int64),
            "fractions": cat("fractions", np.float64),
            "reported": cat("reported", bool),
            "last_round": self.last_round.copy(),
        }

    @classmethod
    def from_state(cls, state: dict, *, max_pending_rounds: int, current_round: int,
                   arm_agent: np.ndarray, agent_live: np.ndarray) -> OutcomeLedger:
        """A validated ledger from :meth:`get_state`'s output, checked against the registry
        (``arm_agent``: arm slot → agent slot, ``agent_live``: live agent slots) and the
        policy's round counter. Raises :class:`StateError`; copies every array."""
        state = expect_keys(state, ("rounds", "sizes", "agents", "arms", "fractions",
                                     "reported", "last_round"), "pending")
        rounds = state_array(state["rounds"], "pending.rounds", kinds="iu")
        sizes = state_array(state["sizes"], "pending.sizes", kinds="iu")
        agents = state_array(state["agents"], "pending.agents", kinds="iu")
        arms = state_array(state["arms"], "pending.arms", kinds="iu")
        last = state_array(state["last_round"], "pending.last_round", kinds="iu")
        fractions = state_array(state["fractions"], "pending.fractions")
        reported = state_array(state["reported"], "pending.reported", kinds="b")
        n_agents = len(agent_live)
        if len(rounds) != len(sizes) or np.any(sizes < 0):
            raise StateError("pending: one non-negative size per round expected")
        total = int(sizes.sum())
        if not (len(agents) == len(arms) == len(fractions) == len(reported) == total):
            raise StateError("pending: row arrays disagree with the round sizes")
        if len(rounds) > max_pending_rounds:
            raise StateError(f"pending: {len(rounds)} rounds, more than max_pending_rounds="
                             f"{max_pending_rounds}")
        if len(rounds) and (np.any(np.diff(rounds) <= 0) or rounds[0] < 1
                            or rounds[-1] > current_round
                            or rounds[0] <= current_round - max_pending_rounds):
            raise StateError(f"pending: rounds must increase within the last "
                             f"{max_pending_rounds} rounds up to round {current_round}")
        if total:
            if np.any(agents < 0) or np.any(agents >= n_agents) or not agent_live[agents].all():
                raise StateError("pending: a row points at an unknown or free agent slot")
            if np.any(arms < 0) or np.any(arms >= len(arm_agent)) or \
                    np.any(arm_agent[arms] != agents):
                raise StateError("pending: a row's arm does not belong to its agent")
            if np.any(fractions <= 0) or np.any(fractions > 1):
                raise StateError("pending: fractions must lie in (0, 1]")
        if len(last) != n_agents or np.any(last < 0) or np.any(last > current_round) or \
                np.any(last[~agent_live] != 0):
            raise StateError("pending.last_round: one round ≥ 0 per agent slot expected, "
                             "0 for free slots")
        ledger = cls(max_pending_rounds)
        ledger.last_round = last.copy()
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        for j, r in enumerate(rounds.tolist()):
            sl = slice(int(bounds[j]), int(bounds[j + 1]))
            if len(np.unique(agents[sl])) != sl.stop - sl.start:
                raise StateError(f"pending: an agent appears twice in round {r}")
            ledger._rounds[int(r)] = PendingRound(agents[sl].copy(), arms[sl].copy(),
                                                  fractions[sl].copy(), reported[sl].copy())
            if np.any(last[agents[sl]] < r):
                raise StateError(f"pending.last_round: older than round {r} for an agent "
                                 f"allocated in it")
        return ledger

