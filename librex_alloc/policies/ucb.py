"""CUCB: UCB1 indices fed to the same knapsack oracle (Chen, Wang & Yuan, ICML 2013).

Per option row (an arm), with its empirical mean μ̂, its number of observations n and the
round number t::

    index = μ̂ + σ · sqrt(c · ln t / n)        (n > 0)
    index = above every other index of the round   (n = 0: play every arm once first)

c = ``params["exploration"]``: 2 is UCB1 (Auer, Cesa-Bianchi & Fischer 2002; what MABWiser's
``UCB1(alpha=1)`` computes), 1.5 the constant of the CUCB analysis. σ = 1 for rewards in
[0, 1]; for the Gaussian family σ is the posterior estimate ``sqrt(b/a)``. The indices go
through the fairness rule and the oracle like Thompson samples do (SPEC §8.6: a UCB baseline
on a different oracle is not a fair comparison). Rewards in (0, 1) are learned with the
Bernoulli trick, as by constrained TS, so the empirical mean is of the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from librex_alloc.policies._common import empirical_stats
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.context import RoundContext
from librex_alloc.policies.params import Params, param


def ucb_index(posterior, arm_slots: np.ndarray, t: int, exploration: float) -> np.ndarray:
    """(N,) UCB1 indices of ``arm_slots`` at round ``t`` ≥ 1 (see the module docstring)."""
    mean, count, scale = empirical_stats(posterior, arm_slots)
    tried = count > 1e-9
    width = scale * np.sqrt(exploration * np.log(max(t, 1)) / np.where(tried, count, 1.0))
    index = mean + width
    if not tried.all():
        top = float(index[tried].max()) if tried.any() else 1.0
        index = np.where(tried, index, top + max(1.0, abs(top)))
    return index


@dataclass(frozen=True)
class UCBParams(Params):
    """exploration: the confidence width's factor c ≥ 0."""

    exploration: float = param(2.0, low=0.0, high=1e6)


class CUCB(AllocationPolicy):
    """UCB1 indices on the shared oracle. params: ``exploration`` c ≥ 0 (default 2)."""

    name = "cucb"
    Params = UCBParams

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return ucb_index(self.posterior, arm_slots, self.round + 1, self.params.exploration)
