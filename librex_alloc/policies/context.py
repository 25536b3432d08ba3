"""The round context a policy's hooks receive: what is being decided, explicitly.

:meth:`AllocationPolicy.allocate <librex_alloc.policies.base.AllocationPolicy.allocate>`
builds one :class:`RoundContext` per call and passes it to every hook (``_index``,
``_decide``, ``_estimate``, ``_after_round``); nothing about the round is left on the policy
between calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from librex_alloc.request import RoundRequest


@dataclass(frozen=True, eq=False)
class RoundContext:
    """One round being decided.

    round: its number (the policy's round counter + 1); request: the validated
    :class:`~librex_alloc.request.RoundRequest`; agent_slots, arm_slots: (N,) int64 slots of
    the rows (agents and (agent, option) arms; read-only); end: ``time.perf_counter()`` time
    at which the round's ``round_deadline`` runs out (None: no deadline)."""

    round: int
    request: RoundRequest
    agent_slots: np.ndarray
    arm_slots: np.ndarray
    end: float | None = None

    @property
    def requests(self) -> np.ndarray:
        """(N, K) float, resource units."""
        return self.request.requests

    @property
    def budget(self) -> np.ndarray:
        """(K,) float, resource units."""
        return self.request.budget

    @property
    def pace(self) -> np.ndarray | None:
        """(K,) the horizon-budget mode's pace, or None (per-round budgets)."""
        return self.request.pace

    def deadline_left(self) -> float | None:
        """Seconds left of the round's deadline (None: no deadline); at least 1 ns, so a call
        past the deadline returns the oracle's quickest answer."""
        if self.end is None:
            return None
        return max(self.end - time.perf_counter(), 1e-9)


__all__ = ["RoundContext"]
