"""Constrained (combinatorial) Thompson sampling: posterior samples fed to the budget oracle.

Each round every option row gets one posterior draw θ̃; the fairness rule turns draws into
values and the knapsack oracle picks the best affordable set (CTS, Wang & Chen, ICML 2018).
With the ``"exact"`` oracle this is CTS proper; ``"fast"`` makes it an approximate-oracle CTS.
"""

from __future__ import annotations

import numpy as np

from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.context import RoundContext


class ConstrainedThompsonSampling(AllocationPolicy):
    name = "constrained-ts"

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return self.posterior.sample(arm_slots, self.rng)
