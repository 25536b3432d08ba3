"""Fair-Learn around constrained Thompson sampling (Patil, Ghalme, Nair & Narahari, JMLR 2021,
"Achieving Fairness in the Stochastic Multi-Armed Bandit Problem").

Each agent i must be served in at least a fraction ρ_i of the rounds it takes part in (its
minimum share: ``fairness=FairnessConfig(min_share=ρ)`` for everyone, or
:meth:`set_min_share` per agent). With t_i its rounds so far and N_i its service, its
*deficit* is ``d_i = ρ_i t_i − N_i``. Fair-Learn: if some agents have ``d_i > α`` (α =
``params["alpha"]``, the unfairness tolerance), serve them first, the largest deficit first
(each with its smallest option, while it fits); the rest of the budget goes to the learner,
constrained TS on the other agents (the oracle on Thompson samples times the priority
weights). In the paper one arm is pulled per round; serving every agent beyond its tolerance
is the multi-agent form. Patil et al. show Fair-Learn is α-fair, ``N_i(t) ≥ ⌊ρ_i t − α⌋``
at every t (every deficit stays below α + 1) when the minimum shares are feasible; when the
budget has room for every agent beyond its tolerance, no deficit exceeds α + ρ_i.

Fair-Learn is its own fairness rule: it is refused with an α-fair mode or a reward-loss bound
(the minimum shares are read, the virtual-queue values are not used).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from librex_alloc import oracles
from librex_alloc.errors import InvalidConfigError
from librex_alloc.policies._common import (
    dominant_share,
    enforce_budget,
    greedy_fill,
    group_rank,
    make_result,
)
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.context import RoundContext
from librex_alloc.policies.params import Params, param


@dataclass(frozen=True)
class FairLearnParams(Params):
    """alpha: the deficit tolerance ≥ 0, in rounds of service."""

    alpha: float = param(0.0, low=0.0, high=1e12)


class FairLearn(AllocationPolicy):
    """Largest deficit beyond α first, else constrained TS. params: ``alpha`` ≥ 0 (the
    tolerance, in rounds of service; default 0)."""

    name = "fair-learn"
    follows_values = False  # its rule ignores the values: refuses max_reward_loss
    Params = FairLearnParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.fairness_config
        if cfg.mode != "none" or cfg.max_reward_loss is not None:
            raise InvalidConfigError("fair-learn: its deficit rule replaces the fairness rule; "
                                     "use fairness mode 'none' (with min_share) and no "
                                     "max_reward_loss")

    def deficits(self, agent_slots: np.ndarray) -> np.ndarray:
        """(m,) ``ρ_i t_i − N_i`` of agent slots (before the current round)."""
        return self.fairness.deficits(agent_slots)

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return self.posterior.sample(arm_slots, self.rng)

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        t0 = time.perf_counter()
        deficit = self.deficits(agent_slots)
        urgent = np.flatnonzero(deficit > self.params.alpha)
        share = dominant_share(requests, budget)
        order = urgent[group_rank([-deficit[urgent], agent_slots[urgent], share[urgent]])]
        frac = greedy_fill(order, requests, budget, agent_slots, divisible=self.divisible)
        served = np.isin(agent_slots, agent_slots[frac > 0])
        rest = np.flatnonzero(~served)
        learner = index * self.fairness.weights(agent_slots)
        left = np.maximum(budget - frac @ requests, 0.0)
        priority = order[frac[order] > 0]
        if len(rest):
            res = oracles.solve(learner[rest], requests[rest], left, groups=agent_slots[rest],
                                method=self.oracle, time_limit=self.time_limit,
                                gap_tolerance=self.gap_tolerance, divisible=self.divisible)
            frac[rest] = res.fractions
            chosen = rest[res.fractions > 0]
            priority = np.concatenate([priority, chosen[np.argsort(-learner[chosen])]])
        frac = enforce_budget(frac, requests, budget, priority, divisible=self.divisible)
        return make_result(frac, learner, agent_slots, self.name, t0,
                           self.divisible, urgent=int(len(np.unique(agent_slots[urgent]))))
