"""Posterior-mean baselines: greedy by density (the original design's) and ε-greedy.

- ``greedy``: index = posterior mean; rows are taken in decreasing density
  ``v / Σ_k (r_k / B_k)`` (value over the request normalized by the round's budget) while
  they fit (first fit; in divisible mode the first misfit gets the fraction that fits). No
  exploration: it can lock onto whatever it saw first.
- ``epsilon-greedy``: in each round, with probability ε (one uniform draw of the policy's
  seeded RNG) the round explores: every row gets an independent uniform value, so the oracle
  picks a random affordable set; otherwise the index is the posterior mean. Both go through
  the fairness rule and the same oracle as constrained TS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from librex_alloc._validation import expect_keys
from librex_alloc.policies._common import (
    enforce_budget,
    greedy_fill,
    make_result,
    normalized_size,
    state_scalar,
)
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.context import RoundContext
from librex_alloc.policies.params import Params, param


def density_order(values: np.ndarray, requests: np.ndarray, reference: np.ndarray
                  ) -> np.ndarray:
    """Rows with value > 0 by decreasing ``value / normalized size`` (then value, then row)."""
    rows = np.flatnonzero(values > 0)
    size = normalized_size(requests[rows], reference)
    with np.errstate(divide="ignore"):
        dens = np.where(size > 0, values[rows] / np.where(size > 0, size, 1.0), np.inf)
    return rows[np.lexsort((-values[rows], -dens))]


class Greedy(AllocationPolicy):
    """Posterior means, density order, first fit. No params."""

    name = "greedy"

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return self.posterior.mean(arm_slots)

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        t0 = time.perf_counter()
        order = density_order(values, requests, budget)
        frac = greedy_fill(order, requests, budget, agent_slots, divisible=self.divisible)
        frac = enforce_budget(frac, requests, budget, order, divisible=self.divisible)
        return make_result(frac, values, agent_slots, self.name, t0, self.divisible)


@dataclass(frozen=True)
class EpsilonGreedyParams(Params):
    """epsilon: the probability that a round explores, in [0, 1]."""

    epsilon: float = param(0.1, low=0.0, high=1.0)


class EpsilonGreedy(AllocationPolicy):
    """Posterior means on the shared oracle; a round explores with probability ε
    (uniform random values). params: ``epsilon`` in [0, 1] (default 0.1)."""

    name = "epsilon-greedy"
    Params = EpsilonGreedyParams

    def _reset_state(self) -> None:
        super()._reset_state()
        #: rounds that explored so far
        self.explorations = 0
        self._exploring = False

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        self._exploring = bool(self.rng.random() < self.params.epsilon)
        if self._exploring:
            return self.rng.random(len(arm_slots))
        return self.posterior.mean(arm_slots)

    def _after_round(self, ctx: RoundContext, allocation) -> None:
        self.explorations += int(self._exploring)

    def _extra_state(self) -> dict:
        return {"explorations": self.explorations}

    def _check_extra_state(self, extra, state: dict) -> dict:
        extra = expect_keys(extra, ("explorations",), "extra")
        state_scalar(extra, "explorations", "extra", kind=int, high=state["round"])
        return dict(extra)

    def _set_extra_state(self, extra: dict) -> None:
        self.explorations = extra["explorations"]
