"""Horizon-budget pacing policies: PD-BwK and constrained Thompson sampling with dual prices.

In horizon-budget mode one budget B covers the whole run. The simulator passes, each round,
``request.budget`` = what is left of B (the hard cap, never exceeded) and ``request.pace`` =
what is left over the rounds left (the spend per round that would exhaust B exactly at the
horizon). Costs are normalized by the pace: ``c_ik = r_ik / pace_k`` (1 = a whole round's
target). Without a pace (per-round budgets) the pace is taken to be the round's budget.

- ``pd-bwk`` (Badanidiyuru, Kleinberg & Slivkins, arXiv:1305.2545, PD-BwK): UCB1 reward
  indices (the CUCB index; costs are known here, so no lower confidence bound on them) and a
  multiplicative-weights (Hedge) dual vector ``y`` over the resources; rows are ranked by the
  bang-per-buck ``UCB_i / (c_i · y)`` and taken while they fit within ``min(budget, pace)``
  (one pull per round in the paper, about B/T of spend). After the round
  ``y_k ← y_k (1 + ε)^{spend_k / pace_k}``, normalized. The paper's time resource is left out
  (the pace already spreads the budget over the rounds).
- ``constrained-ts-pacing`` (dual mirror descent, Balseiro, Lu & Mirrokni,
  arXiv:2011.10124): Thompson samples minus the priced cost, ``v_i − Σ_k λ_k c_ik``, fed to
  the same knapsack oracle under the hard cap; after the round
  ``λ_k ← [λ_k + η (spend_k − pace_k) / pace_k]_+``. λ rises while the policy overspends its
  pace and falls back to 0 when it underspends, so the spend tracks the pace on average.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from librex_alloc import oracles
from librex_alloc._validation import expect_keys, state_array
from librex_alloc.errors import StateError
from librex_alloc.policies._common import safe_budget
from librex_alloc.policies.base import Allocation, AllocationPolicy
from librex_alloc.policies.bts import pace_of, ratio_fill
from librex_alloc.policies.context import RoundContext
from librex_alloc.policies.params import Params, param
from librex_alloc.policies.ucb import ucb_index

#: Log-weights of PD-BwK are kept in [LOG_FLOOR, 0] (the largest is 0).
LOG_FLOOR = -700.0
#: Dual prices of the pacing policy are kept below this (they stay finite).
MAX_PRICE = 1e12


class _Paced(AllocationPolicy):
    """Calls :meth:`_pay` with the round's spend (K,), budget (K,) and pace (K,) once a round
    has been decided (not on a call that raised)."""

    def _after_round(self, ctx: RoundContext, allocation: Allocation) -> None:
        pace = ctx.budget if ctx.pace is None else ctx.pace
        self._pay(allocation.usage, ctx.budget, pace)

    def _pay(self, spend: np.ndarray, budget: np.ndarray, pace: np.ndarray) -> None:
        raise NotImplementedError

    @staticmethod
    def _reference(budget: np.ndarray, pace: np.ndarray) -> np.ndarray:
        return np.where(pace > 0, pace, np.where(budget > 0, budget, 1.0))

    def _check_vector(self, extra, key: str, low: float, high: float) -> np.ndarray:
        extra = expect_keys(extra, (key,), "extra")
        return state_array(extra[key], f"extra.{key}", length=self.n_resources, low=low,
                           high=high)


@dataclass(frozen=True)
class PrimalDualParams(Params):
    """epsilon: the Hedge step in (0, 1]; exploration: the UCB factor c ≥ 0."""

    epsilon: float = param(0.1, low=0.0, high=1.0, low_open=True)
    exploration: float = param(2.0, low=0.0, high=1e6)


@dataclass(frozen=True)
class PacingParams(Params):
    """eta: the dual step > 0; initial_price: λ at the start, ≥ 0."""

    eta: float = param(0.2, low=0.0, high=1e6, low_open=True)
    initial_price: float = param(0.0, low=0.0, high=MAX_PRICE)


class PrimalDualBwK(_Paced):
    """PD-BwK: UCB reward over Hedge-priced normalized cost, filled up to the pace.
    params: ``epsilon`` ∈ (0, 1] (Hedge step, default 0.1), ``exploration`` (UCB c, 2)."""

    name = "pd-bwk"
    Params = PrimalDualParams

    def _reset_state(self) -> None:
        super()._reset_state()
        self.log_weights = np.zeros(self.n_resources)

    @property
    def dual_weights(self) -> np.ndarray:
        """(K,) the Hedge distribution y over the resources (sums to 1)."""
        w = np.exp(self.log_weights - self.log_weights.max())
        return w / w.sum()

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return ucb_index(self.posterior, arm_slots, self.round + 1, self.params.exploration)

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        cap, ref = pace_of(ctx)
        cost = (requests / safe_budget(ref)) @ self.dual_weights
        return ratio_fill(self, values, cost, requests, budget, agent_slots, cap)

    def _pay(self, spend, budget, pace) -> None:
        used = np.clip(spend / self._reference(budget, pace), 0.0, 1.0)
        logw = self.log_weights + np.log1p(self.params.epsilon) * used
        self.log_weights = np.maximum(logw - logw.max(), LOG_FLOOR)

    def _extra_state(self) -> dict:
        return {"log_weights": self.log_weights.copy()}

    def _check_extra_state(self, extra, state: dict) -> dict:
        logw = self._check_vector(extra, "log_weights", LOG_FLOOR, 0.0)
        if logw.max() != 0.0:
            raise StateError("extra.log_weights: the largest must be 0 (normalized)")
        return {"log_weights": logw}

    def _set_extra_state(self, extra: dict) -> None:
        self.log_weights = extra["log_weights"]


class ConstrainedTSPacing(_Paced):
    """Constrained TS with dual prices on the pace. params: ``eta`` > 0 (step, default
    0.2), ``initial_price`` ≥ 0 (λ at the start, default 0)."""

    name = "constrained-ts-pacing"
    Params = PacingParams

    def _reset_state(self) -> None:
        super()._reset_state()
        #: (K,) dual price λ of each resource, in value units per pace of the resource
        self.price = np.full(self.n_resources, self.params.initial_price)

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        return self.posterior.sample(arm_slots, self.rng)

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        _, ref = pace_of(ctx)
        net = values - (requests / safe_budget(ref)) @ self.price
        return oracles.solve(net, requests, budget, groups=agent_slots, method=self.oracle,
                             time_limit=self.time_limit, gap_tolerance=self.gap_tolerance,
                             divisible=self.divisible)

    def _pay(self, spend, budget, pace) -> None:
        step = self.params.eta * (spend - pace) / self._reference(budget, pace)
        self.price = np.clip(self.price + step, 0.0, MAX_PRICE)

    def _extra_state(self) -> dict:
        return {"price": self.price.copy()}

    def _check_extra_state(self, extra, state: dict) -> dict:
        return {"price": self._check_vector(extra, "price", 0.0, MAX_PRICE)}

    def _set_extra_state(self, extra: dict) -> None:
        self.price = extra["price"]
