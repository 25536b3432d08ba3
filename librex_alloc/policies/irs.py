"""IRS.FH: Thompson sampling with a remaining-horizon look-ahead (Jeong & Min,
arXiv:2408.15535, after Min, Maglaras & Moallemi's information relaxation sampling, NeurIPS
2019, arXiv:1902.04251).

Thompson sampling acts as if a sampled mean θ̃ were the truth. IRS.FH penalizes that
information relaxation by the horizon that is left: it acts on the posterior mean it would
hold after observing the H outcomes the arm can still produce. Per row, with a posterior
draw θ̃ and H its remaining number of plays::

    Beta–Bernoulli:   S ~ Binomial(H, θ̃),              μ̂ = (α + S) / (α + β + H)
    Normal–Inv-Gamma: (θ̃, σ̃²) ~ posterior, ȳ ~ N(θ̃, σ̃²/H),  μ̂ = (κ m + H ȳ) / (κ + H)

H → ∞ gives θ̃ (BTS); H = 0 gives the posterior mean (no information left to gain), so
exploration fades as the budget or the horizon runs out. In the budgeted problem an arm can
be played ⌊B_remaining / c⌋ more times; here an agent is served at most once per round, so
in horizon-budget mode (``request.budget`` is the remaining budget and ``request.pace`` the
remaining budget over the remaining rounds) ``H = min(R, ⌊min_k B_k / r_k⌋)`` with
``R = min_k B_k / pace_k`` the remaining rounds. With per-round budgets (no pace) the budget
renews every round and H is the remaining rounds, ``params["horizon"]`` − rounds played
(∞ without a horizon: then IRS.FH is BTS). The selection is BTS's (μ̂ over normalized cost,
first fit up to the pace).

Simplifications, stated: only the paper's abstract and the IRS.FH rule of Min et al. were
available to us, so this is the FH look-ahead (the simplest member of the IRS family) with
known costs and BTS's selection; the paper's IRS.V-Zero / IRS.Index refinements (which solve
the relaxed knapsack over the remaining budget per sample) and its random-cost extensions are
not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from librex_alloc.policies._common import normalized_size
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.bts import pace_of, ratio_fill
from librex_alloc.policies.context import RoundContext
from librex_alloc.policies.params import Params, param

#: Horizons are capped here (μ̂ equals θ̃ to ~1e-6 well before): binomial draws stay exact.
MAX_HORIZON = 2.0**40


def remaining_plays(requests: np.ndarray, budget: np.ndarray, pace: np.ndarray | None,
                    rounds_left: float) -> np.ndarray:
    """(N,) H per row (finite ones capped at MAX_HORIZON). Horizon-budget mode (a ``pace``;
    ``budget`` is what is left): ``min(R, ⌊min_k B_k / r_k⌋)`` with ``R = min_k B_k / pace_k``
    the rounds left. Per-round budgets (no pace; the budget renews every round):
    ``rounds_left`` (inf when unknown)."""
    if pace is None:
        left = float(rounds_left)
        return np.full(len(requests), left if np.isinf(left) else min(left, MAX_HORIZON))
    pos = pace > 0
    # B / pace is the remaining number of rounds (up to a rounding of the division)
    rounds = float(np.floor((budget[pos] / pace[pos]).min() * (1 + 1e-12))) if pos.any() \
        else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        plays = np.where(requests > 0, budget / np.where(requests > 0, requests, 1.0), np.inf)
    h = np.minimum(np.floor(plays.min(axis=1)), rounds)
    return np.minimum(np.maximum(h, 0.0), MAX_HORIZON)


def lookahead_sample(posterior, arm_slots: np.ndarray, horizon: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """(N,) μ̂: the posterior mean after ``horizon`` (N,) simulated plays of each row's arm,
    their outcomes drawn from a posterior sample (a fixed number of draws per call)."""
    finite = np.isfinite(horizon)
    h = np.where(finite, horizon, 0.0)
    if posterior.family == "bernoulli":
        alpha, beta = posterior.params(arm_slots)
        theta = rng.beta(alpha, beta)
        s = rng.binomial(h.astype(np.int64), theta).astype(np.float64)
        return np.where(finite, (alpha + s) / (alpha + beta + h), theta)
    m_n, kappa_n, a_n, b_n = posterior.params(arm_slots)
    sigma2 = 1.0 / np.maximum(rng.gamma(a_n, 1.0 / b_n), np.finfo(np.float64).tiny)
    theta = m_n + np.sqrt(sigma2 / kappa_n) * rng.standard_normal(len(m_n))
    ybar = theta + np.sqrt(sigma2 / np.maximum(h, 1.0)) * rng.standard_normal(len(m_n))
    mu = (kappa_n * m_n + h * ybar) / (kappa_n + h)
    return np.where(finite, mu, theta)


@dataclass(frozen=True)
class IRSParams(Params):
    """horizon: total rounds (an int ≥ 1), used when the request has no pace; None:
    unknown."""

    horizon: int | None = param(None, low=1, high=2**62, integer=True, allow_none=True)


class IRSFH(AllocationPolicy):
    """TS with a remaining-horizon look-ahead, BTS's selection. params: ``horizon`` (total
    rounds, used when the request has no pace; None: unknown, then it is BTS)."""

    name = "irs-fh"
    Params = IRSParams

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        req = ctx.request
        horizon = self.params.horizon
        left = np.inf if horizon is None else float(max(horizon - self.round, 0))
        h = remaining_plays(req.requests, req.budget, req.pace, left)
        return lookahead_sample(self.posterior, arm_slots, h, self.rng)

    def _decide(self, ctx: RoundContext, values, index):
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        cap, ref = pace_of(ctx)
        return ratio_fill(self, values, normalized_size(requests, ref), requests, budget,
                          agent_slots, cap)
