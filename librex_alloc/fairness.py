"""Long-run fairness: the α-fair gradient rule, minimum-share virtual queues, agent weights.

Fairness is a property of the long run (one round rarely has room for everyone), so each
agent keeps a utility average ``Ū_i`` over a named vector:

- ``"reward"``: realized reward (added when the outcome arrives);
- ``"service"``: 1 in a round the agent is allocated (its fraction in divisible mode);
- ``"share"``: dominant resource share of its allocation, ``max_k x_i r_ik / B_k`` (DRF's measure).

``Ū_i`` is the running average over the rounds the agent was active (``horizon=None``) or an
exponential average with weight ``1/horizon`` (the proportional-fair scheduler's form).

Oracle values (per option row of agent i, with sampled value ``θ̃``)::

    v = w_i · ( θ̃ · max(Ū_i, ε)^(−α) )                  without minimum shares
    v = w_i · ( Q_i + η · θ̃ · max(Ū_i, ε)^(−α) )        with minimum shares ρ_i

where ``Q_i ← [Q_i + ρ_i − x_i]_+`` is agent i's virtual queue (Li, Liu & Ji 2019; Patil et
al. 2021) and ``w_i`` its priority weight. α = 0 is utilitarian (``"none"``), α = 1
proportional fairness (``"proportional"``, Mo & Walrand 2000; Stolyar 2005), large α
approaches max-min (``"maxmin"``). The α-weights are computed in log space and normalized so
the largest among the round's requesters is 1; this keeps large α finite and, for the pure
α-fair rule, does not change the oracle's answer (a positive rescaling of all values).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from librex_alloc._validation import check_scalar
from librex_alloc.errors import InvalidConfigError

FAIRNESS_MODES = ("none", "proportional", "maxmin", "alpha")
UTILITIES = ("reward", "service", "share")
#: α used by ``"maxmin"``: with ε = 1e-3, an agent whose utility is below another's by any
#: factor f is preferred by f^50.
MAXMIN_ALPHA = 50.0


@dataclass(frozen=True)
class FairnessConfig:
    """Validated fairness settings (immutable). ``alpha`` is only read when mode == "alpha"."""

    mode: str = "none"
    alpha: float | None = None
    utility: str = "reward"
    horizon: float | None = None
    epsilon: float = 1e-3
    min_share: float = 0.0
    eta: float = 1.0

    def __post_init__(self):
        mode = self.mode
        if isinstance(mode, (int, float)) and not isinstance(mode, bool):
            object.__setattr__(self, "alpha", float(mode))
            object.__setattr__(self, "mode", "alpha")
        elif mode not in FAIRNESS_MODES:
            raise InvalidConfigError(
                f"fairness_mode: expected one of {FAIRNESS_MODES} or a number α ≥ 0, got {mode!r}"
            )
        if self.mode == "alpha":
            if self.alpha is None:
                raise InvalidConfigError("fairness_mode='alpha' needs fairness_alpha")
            check_scalar(self.alpha, "fairness_alpha", low=0.0)
        if self.utility not in UTILITIES:
            raise InvalidConfigError(f"utility: expected one of {UTILITIES}, got {self.utility!r}")
        if self.horizon is not None:
            check_scalar(self.horizon, "fairness_horizon", low=1.0)
        check_scalar(self.epsilon, "epsilon", low=0.0, low_open=True)
        check_scalar(self.min_share, "min_share", low=0.0, high=1.0)
        check_scalar(self.eta, "eta", low=0.0)

    @property
    def alpha_value(self) -> float:
        """The α of the gradient rule."""
        return {"none": 0.0, "proportional": 1.0, "maxmin": MAXMIN_ALPHA}.get(
            self.mode, float(self.alpha or 0.0)
        )

    def to_dict(self) -> dict:
        return asdict(self)


class FairnessState:
    """Per-agent fairness bookkeeping in dense arrays indexed by agent slot.

    Arrays (n_slots,): ``active`` rounds the agent requested, ``served`` rounds (fractions)
    it was allocated, ``utility_sum`` of the chosen utility, ``ema`` (when a horizon is set),
    ``queue`` (virtual queues), ``min_share`` ρ_i, ``weight`` w_i, ``reward_sum``.
    """

    FIELDS = ("active", "served", "utility_sum", "ema", "queue", "min_share", "weight",
              "reward_sum")

    def __init__(self, config: FairnessConfig):
        self.config = config
        for name in self.FIELDS:
            setattr(self, name, np.zeros(0))

    @property
    def n_slots(self) -> int:
        return self.active.shape[0]

    def resize(self, n: int) -> None:
        grow = n - self.n_slots
        if grow <= 0:
            return
        for name in self.FIELDS:
            fill = {"min_share": self.config.min_share, "weight": 1.0}.get(name, 0.0)
            setattr(self, name, np.concatenate([getattr(self, name), np.full(grow, fill)]))

    def reset(self, slots: np.ndarray) -> None:
        for name in self.FIELDS:
            fill = {"min_share": self.config.min_share, "weight": 1.0}.get(name, 0.0)
            getattr(self, name)[slots] = fill

    # -- the rule ---------------------------------------------------------------------------
    def average_utility(self, slots: np.ndarray) -> np.ndarray:
        if self.config.horizon is not None:
            return self.ema[slots]
        return self.utility_sum[slots] / np.maximum(self.active[slots], 1.0)

    def values(self, theta: np.ndarray, agent_slots: np.ndarray) -> np.ndarray:
        """Oracle values for option rows with sampled values ``theta`` (N,) of ``agent_slots``."""
        cfg = self.config
        alpha = cfg.alpha_value
        v = theta.astype(np.float64, copy=True)
        if alpha > 0 and len(v):
            logw = -alpha * np.log(np.maximum(self.average_utility(agent_slots), cfg.epsilon))
            v *= np.exp(logw - logw.max())
        if np.any(self.min_share[agent_slots] > 0):
            v = self.queue[agent_slots] + cfg.eta * v
        return v * self.weight[agent_slots]

    # -- bookkeeping ------------------------------------------------------------------------
    def record_round(self, agents: np.ndarray, fractions: np.ndarray, shares: np.ndarray) -> None:
        """One round for the requesting ``agents`` (unique slots): allocated ``fractions``
        (0 for not allocated) and dominant ``shares`` of what they got."""
        self.active[agents] += 1.0
        self.served[agents] += fractions
        self.queue[agents] = np.maximum(self.queue[agents] + self.min_share[agents] - fractions,
                                        0.0)
        kind = self.config.utility
        u = fractions if kind == "service" else shares if kind == "share" else None
        beta = None if self.config.horizon is None else 1.0 / self.config.horizon
        if beta is not None:
            self.ema[agents] *= 1.0 - beta
        if u is not None:
            self.utility_sum[agents] += u
            if beta is not None:
                self.ema[agents] += beta * u

    def record_rewards(self, agents: np.ndarray, rewards: np.ndarray) -> None:
        np.add.at(self.reward_sum, agents, rewards)
        if self.config.utility == "reward":
            np.add.at(self.utility_sum, agents, rewards)
            if self.config.horizon is not None:
                np.add.at(self.ema, agents, rewards / self.config.horizon)

    def utility_vector(self, kind: str, slots: np.ndarray) -> np.ndarray:
        """Cumulative utility per agent for the metrics: reward, service or the chosen one."""
        if kind == "reward":
            return self.reward_sum[slots]
        if kind == "service":
            return self.served[slots]
        if kind == "utility":
            return self.utility_sum[slots]
        raise InvalidConfigError(
            f"utility: expected 'reward', 'service' or 'utility', got {kind!r}")

    def get_state(self) -> dict:
        return {name: getattr(self, name).copy() for name in self.FIELDS}

    def set_state(self, state: dict) -> None:
        for name in self.FIELDS:
            setattr(self, name, np.asarray(state[name], dtype=np.float64).copy())
