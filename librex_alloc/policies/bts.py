"""Budgeted Thompson Sampling (Xia, Li, Qin, Yu & Liu, IJCAI 2015, arXiv:1505.00146).

BTS draws a reward θ̃ from each arm's posterior and plays the arm with the largest ratio of
sampled reward to (sampled) cost. Here costs are known: a row's cost is its request
normalized per resource, ``c = Σ_k r_k / ref_k``, with ``ref`` the round's pace in
horizon-budget mode (the per-round target spend ``request.pace``) and the round's budget
otherwise. Several agents are served per round, so the ratio ranks the rows and they are
taken in that order while they fit (first fit) within ``min(budget, pace)``: BTS pulls one
arm per round and spends about B/T per round, so its multi-agent analogue spends at most the
pace and rolls what it leaves over to the next rounds' pace (``request.budget``, the
remaining hard cap, is never exceeded). Without a pace the cap is the round's budget.
"""

from __future__ import annotations

import time

import numpy as np

from librex_alloc.oracles import OracleResult
from librex_alloc.policies._common import (
    enforce_budget,
    greedy_fill,
    make_result,
    normalized_size,
)
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.context import RoundContext


def pace_of(ctx: RoundContext) -> tuple[np.ndarray, np.ndarray]:
    """(cap, reference), both (K,): the round's spending cap ``min(budget, pace)`` and the
    normalization of costs (the pace where positive, else the budget, else 1). Without a
    pace (per-round budgets) both are the budget."""
    budget, pace = ctx.budget, ctx.pace
    if pace is None:
        return budget, budget
    cap = np.minimum(budget, pace)
    ref = np.where(pace > 0, pace, np.where(budget > 0, budget, 1.0))
    return cap, ref


def ratio_fill(policy: AllocationPolicy, values: np.ndarray, cost: np.ndarray,
               requests: np.ndarray, budget: np.ndarray, agent_slots: np.ndarray,
               cap: np.ndarray) -> OracleResult:
    """Rows with value > 0 by decreasing ``value / cost`` (zero cost first), first fit within
    ``cap`` (≤ budget); the budgeted-bandit rules' selection."""
    t0 = time.perf_counter()
    rows = np.flatnonzero(values > 0)
    with np.errstate(divide="ignore"):
        ratio = np.where(cost[rows] > 0, values[rows] / np.where(cost[rows] > 0, cost[rows], 1),
                         np.inf)
    order = rows[np.lexsort((-values[rows], -ratio))]
    frac = greedy_fill(order, requests, cap, agent_slots, divisible=policy.divisible)
    frac = enforce_budget(frac, requests, cap, order, divisible=policy.divisible)
    return make_result(frac, values, agent_slots, policy.name, t0, policy.divisible,
                       cap=cap.copy())


class BudgetedThompsonSampling(AllocationPolicy):
    """BTS: sampled reward over normalized cost, filled up to the pace. No params."""

    name = "bts"

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return self.posterior.sample(arm_slots, self.rng)

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        cap, ref = pace_of(ctx)
        cost = normalized_size(requests, ref)
        return ratio_fill(self, values, cost, requests, budget, agent_slots, cap)

