"""Dominant Resource Fairness by progressive filling (Ghodsi, Zaharia, Hindman, Konwinski,
Shenker & Stoica, NSDI 2011).

An agent's dominant share is ``s_i = max_k u_ik / B_k`` of what it holds (``u``) in the
round's budget ``B`` (divided by its priority weight: weighted DRF). DRF repeatedly gives the
agent with the lowest dominant share its next piece of demand, as long as it fits.

- Indivisible (the paper's Algorithm 1): an agent's options, sorted by dominant share, are
  its *levels* — model "k tasks of demand d" as options ``k·d`` for k = 1, 2, ... — and one
  step raises an agent to its next level. The agent with the lowest current share steps
  first (ties: the least served so far, then the slot); an agent whose next step does not
  fit is saturated and keeps its level, the others go on (Algorithm 1 stops the whole
  cluster at that point; going on with the others is the usual progressive-filling variant
  and gives the same answer when everyone is blocked, as in the paper's example).
- Divisible: continuous progressive filling (water-filling) of each agent's largest option
  (its full demand): every unsaturated agent's share rises at the same rate until a resource
  runs out (its users are saturated) or the agent's demand is met.

DRF ignores rewards: it is a fair baseline, not a learner.
"""

from __future__ import annotations

import time

import numpy as np

from librex_alloc.policies._common import (
    dominant_share,
    enforce_budget,
    group_rank,
    make_result,
)
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.context import RoundContext


def drf_levels(requests: np.ndarray, budget: np.ndarray, groups: np.ndarray,
               weights: np.ndarray, served: np.ndarray) -> np.ndarray:
    """Indivisible DRF: (N,) bool, one option (level) per group or none.

    requests (N, K), budget (K,), groups (N,) agent labels, weights (N,) > 0 and served (N,)
    (tie-break) per row."""
    n, k = requests.shape
    share = dominant_share(requests, budget)
    ok = np.flatnonzero(np.isfinite(share) & np.all(requests <= budget, axis=1))
    lv = ok[group_rank([groups[ok], share[ok], ok])]  # each agent's levels, ascending
    if not len(lv):
        return np.zeros(n, dtype=bool)
    g = np.unique(groups[lv], return_inverse=True)[1].reshape(-1)
    first = np.r_[True, g[1:] != g[:-1]]
    prev = np.where(first, -1, np.r_[-1, lv[:-1]])
    start = np.maximum.accumulate(np.where(first, np.arange(len(lv)), 0))
    level = np.arange(len(lv)) - start
    before = np.where(prev >= 0, share[np.maximum(prev, 0)], 0.0) / weights[lv]
    delta = requests[lv] - np.where((prev >= 0)[:, None], requests[np.maximum(prev, 0)], 0.0)
    steps = group_rank([before, served[lv], groups[lv], level])
    monotone = bool(np.all(delta >= 0))
    taken = np.zeros(len(lv), dtype=bool)
    cons = np.zeros(k)
    alive = steps
    while len(alive):
        if monotone:  # a step that exceeds what is left now can never fit: saturate early
            bad = np.any(delta[alive] > budget - cons, axis=1)
            if bad.any():
                stop = np.full(int(g.max()) + 1, np.iinfo(np.int64).max)
                np.minimum.at(stop, g[alive[bad]], level[alive[bad]])
                alive = alive[level[alive] < stop[g[alive]]]
                if not len(alive):
                    break
        cs = cons + np.cumsum(delta[alive], axis=0)
        fit = np.all(cs <= budget, axis=1)
        m = len(alive) if fit.all() else int(np.argmin(fit))
        taken[alive[:m]] = True
        if m:
            cons = cs[m - 1]
        if m == len(alive):
            break
        blocked = g[alive[m]]
        alive = alive[m + 1:]
        alive = alive[g[alive] != blocked]
    top = np.full(int(g.max()) + 1, -1)
    np.maximum.at(top, g[taken], level[taken])
    out = np.zeros(n, dtype=bool)
    out[lv[taken & (level == top[g])]] = True
    return out


def drf_water_fill(requests: np.ndarray, budget: np.ndarray, weights: np.ndarray
                   ) -> np.ndarray:
    """Divisible DRF of one demand per agent: (M,) fractions in [0, 1]. requests (M, K),
    budget (K,), weights (M,) > 0. Each iteration saturates an agent or a resource."""
    m = len(requests)
    share = dominant_share(requests, budget)
    x = np.where(share == 0, 1.0, 0.0)
    active = np.isfinite(share) & (share > 0)
    rem = budget.astype(np.float64, copy=True)
    rate = np.where(active, weights / np.where(active, share, 1.0), 0.0)
    while active.any():
        use = np.where(active, rate, 0.0) @ requests
        pos = use > 0
        ds_res = rem[pos] / use[pos]
        ds_cap = (1.0 - x[active]) / rate[active]
        ds = min(float(ds_res.min()) if pos.any() else np.inf, float(ds_cap.min()))
        x = np.where(active, x + rate * ds, x)
        rem = np.maximum(rem - use * ds, 0.0)
        done = active & (x >= 1.0 - 1e-12)
        x[done] = 1.0
        sat = pos & (rem <= 1e-12 * budget)
        if pos.any() and ds_res.min() <= ds:
            sat[np.flatnonzero(pos)[int(np.argmin(ds_res))]] = True
        rem[sat] = 0.0
        active &= ~done & ~np.any(requests[:, sat] > 0, axis=1)
        if not done.any() and not sat.any():  # pragma: no cover - guarded above
            break
    return np.clip(x, 0.0, 1.0) if m else x


class DominantResourceFairness(AllocationPolicy):
    """DRF progressive filling on the round's budget (weighted by the priority weights).
    No params."""

    name = "drf"
    follows_values = False  # its rule ignores the values: refuses max_reward_loss

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return self.posterior.mean(arm_slots)  # not used by the rule; reported as values

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        t0 = time.perf_counter()
        weights = self.fairness.weights(agent_slots)
        frac = np.zeros(len(values))
        if self.divisible:
            share = dominant_share(requests, budget)
            ok = np.flatnonzero(np.isfinite(share))
            order = ok[group_rank([agent_slots[ok], -share[ok]])]
            lead = order[np.r_[True, agent_slots[order][1:] != agent_slots[order][:-1]]] \
                if len(order) else order
            frac[lead] = drf_water_fill(requests[lead], budget, weights[lead])
            priority = lead[np.argsort(share[lead], kind="stable")]
        else:
            sel = drf_levels(requests, budget, agent_slots, weights,
                             self.fairness.service(agent_slots))
            frac[sel] = 1.0
            priority = np.flatnonzero(sel)
        frac = enforce_budget(frac, requests, budget, priority, divisible=self.divisible)
        return make_result(frac, values, agent_slots, self.name, t0, self.divisible)
