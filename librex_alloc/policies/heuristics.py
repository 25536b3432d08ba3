"""The original design's heuristics: TS-unconstrained, round-robin, proportional share.

- ``ts-unconstrained``: one Thompson sample per row, the fairness rule, then the ranking by
  value that ignores the budget — each agent's best option, in decreasing value —
  *truncated* at the first row that no longer fits (the design's "sample, rank, cut to the
  budget"; divisible mode gives that row the fraction that fits). A large agent at the top
  can thus end the round early: the cost of ignoring the budget.
- ``round-robin``: least-served agent first (cumulative service, then the least recently
  served, then the slot), each with its smallest option (by normalized size), taken while
  it fits (first fit: an agent that does not fit is skipped and stays first in line).
  It ignores rewards.
- ``proportional-share`` (divisible mode only): every agent gets the same fraction
  ``y = min(1, min_k B_k / Σ_i r_ik)`` of its request, so its share of every resource is
  proportional to what it asks (its largest option: its full demand). Agents that need a
  resource whose budget is 0 get nothing. It ignores rewards.
"""

from __future__ import annotations

import time

import numpy as np

from librex_alloc.errors import InvalidConfigError
from librex_alloc.policies._common import (
    dominant_share,
    enforce_budget,
    greedy_fill,
    group_rank,
    make_result,
    normalized_size,
)
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.context import RoundContext


class TSUnconstrained(AllocationPolicy):
    """Thompson samples ranked without the budget, then truncated to fit. No params."""

    name = "ts-unconstrained"

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return self.posterior.sample(arm_slots, self.rng)

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        t0 = time.perf_counter()
        rows = np.flatnonzero(values > 0)
        order = rows[np.argsort(-values[rows], kind="stable")]
        frac = greedy_fill(order, requests, budget, agent_slots, divisible=self.divisible,
                           prefix_only=True)
        frac = enforce_budget(frac, requests, budget, order, divisible=self.divisible)
        return make_result(frac, values, agent_slots, self.name, t0, self.divisible)


class RoundRobin(AllocationPolicy):
    """Least-served first, while it fits. No params."""

    name = "round-robin"
    follows_values = False  # its rule ignores the values: refuses max_reward_loss

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return self.posterior.mean(arm_slots)  # not used by the rule; reported as values

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        t0 = time.perf_counter()
        served = self.fairness.service(agent_slots)
        last = self.ledger.last_rounds(agent_slots)
        size = normalized_size(requests, budget)
        order = group_rank([served, last, agent_slots, size])
        frac = greedy_fill(order, requests, budget, agent_slots, divisible=self.divisible)
        frac = enforce_budget(frac, requests, budget, order, divisible=self.divisible)
        return make_result(frac, values, agent_slots, self.name, t0, self.divisible)


class ProportionalShare(AllocationPolicy):
    """Every agent the same fraction of its request (budget shares ∝ requests); divisible
    mode only. No params."""

    name = "proportional-share"
    follows_values = False  # its rule ignores the values: refuses max_reward_loss

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.divisible:
            raise InvalidConfigError("proportional-share grants fractions of requests: build "
                                     "it with divisible=True")

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return self.posterior.mean(arm_slots)  # not used by the rule; reported as values

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        t0 = time.perf_counter()
        share = dominant_share(requests, budget)
        ok = np.flatnonzero(np.isfinite(share))
        # each agent's largest option (its full demand)
        order = ok[group_rank([agent_slots[ok], -share[ok]])]
        lead = order[np.r_[True, agent_slots[order][1:] != agent_slots[order][:-1]]] \
            if len(order) else order
        frac = np.zeros(len(values))
        if len(lead):
            total = requests[lead].sum(axis=0)
            with np.errstate(divide="ignore"):
                limit = np.where(total > 0, budget / np.where(total > 0, total, 1.0), np.inf)
            frac[lead] = min(1.0, float(limit.min()))
        frac = enforce_budget(frac, requests, budget, lead, divisible=True)
        return make_result(frac, values, agent_slots, self.name, t0, True)
