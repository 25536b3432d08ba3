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

from librex_alloc._validation import check_scalar, expect_keys, state_array
from librex_alloc.errors import InvalidConfigError, StateError

FAIRNESS_MODES = ("none", "proportional", "maxmin", "alpha")
UTILITIES = ("reward", "service", "share")
#: α used by ``"maxmin"``: with ε = 1e-3, an agent whose utility is below another's by any
#: factor f is preferred by f^50.
MAXMIN_ALPHA = 50.0
#: Largest accepted α: beyond it the weights of agents whose utilities differ by the factor
#: 1/ε leave the float range (α·ln(1/ε) ≈ 700).
MAX_ALPHA = 100.0
#: Priority weights w_i must lie in [MIN_WEIGHT, MAX_WEIGHT]: their ratios stay far inside the
#: float range, so weighted values neither overflow nor vanish.
MIN_WEIGHT, MAX_WEIGHT = 1e-6, 1e6
#: The α-weights are floored at e^-700 (≈ 1e-304) relative to the largest: an agent far ahead
#: keeps a tiny positive value, so spare budget still goes to it.
_LOG_FLOOR = -700.0


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
        if isinstance(mode, (int, float, np.integer, np.floating)) and \
                not isinstance(mode, (bool, np.bool_)):
            object.__setattr__(self, "alpha", float(mode))
            object.__setattr__(self, "mode", "alpha")
        elif mode not in FAIRNESS_MODES:
            raise InvalidConfigError(
                f"fairness_mode: expected one of {FAIRNESS_MODES} or a number α ≥ 0, got {mode!r}"
            )
        if self.mode == "alpha":
            if self.alpha is None:
                raise InvalidConfigError("fairness_mode='alpha' needs fairness_alpha")
            object.__setattr__(self, "alpha", check_scalar(self.alpha, "fairness_alpha",
                                                           low=0.0, high=MAX_ALPHA))
        elif self.alpha is not None:
            raise InvalidConfigError(f"fairness_alpha is only read with mode 'alpha' (or a "
                                     f"number as the mode), got mode {self.mode!r}")
        if self.utility not in UTILITIES:
            raise InvalidConfigError(f"utility: expected one of {UTILITIES}, got {self.utility!r}")
        if self.horizon is not None:
            object.__setattr__(self, "horizon", check_scalar(self.horizon, "fairness_horizon",
                                                             low=1.0, high=1e12))
        object.__setattr__(self, "epsilon", check_scalar(self.epsilon, "epsilon", low=1e-12,
                                                         high=1e12))
        object.__setattr__(self, "min_share", check_scalar(self.min_share, "min_share", low=0.0,
                                                           high=1.0))
        object.__setattr__(self, "eta", check_scalar(self.eta, "eta", low=0.0, high=1e12))

    @property
    def alpha_value(self) -> float:
        """The α of the gradient rule."""
        return {"none": 0.0, "proportional": 1.0, "maxmin": MAXMIN_ALPHA}.get(
            self.mode, float(self.alpha or 0.0)
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FairnessConfig:
        """Inverse of :meth:`to_dict`; :class:`InvalidConfigError` on unknown keys or values."""
        if not isinstance(d, dict):
            raise InvalidConfigError(f"fairness: expected a dict, got {type(d).__name__}")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidConfigError(f"fairness: unknown keys {sorted(map(str, unknown))}")
        return cls(**d)


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
            setattr(self, name, np.concatenate([getattr(self, name),
                                                np.full(grow, self._fill(name))]))

    def _fill(self, name: str) -> float:
        return {"min_share": self.config.min_share, "weight": 1.0}.get(name, 0.0)

    def reset(self, slots: np.ndarray) -> None:
        for name in self.FIELDS:
            getattr(self, name)[slots] = self._fill(name)

    def is_reset(self, slots: np.ndarray) -> bool:
        """Whether every field of ``slots`` holds its initial value."""
        return all(np.all(getattr(self, name)[slots] == self._fill(name))
                   for name in self.FIELDS)

    def truncate(self, n: int) -> None:
        """Drop slots ``>= n`` (undoes a :meth:`resize`)."""
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name)[:n].copy())

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
            v *= np.exp(np.maximum(logw - logw.max(), _LOG_FLOOR))
        if np.any(self.min_share[agent_slots] > 0):
            v = self.queue[agent_slots] + cfg.eta * v
        return v * self.weight[agent_slots]

    # -- bookkeeping ------------------------------------------------------------------------
    def record_allocation(self, agent_slots: np.ndarray, fractions: np.ndarray,
                          requests: np.ndarray, budget: np.ndarray) -> None:
        """One round of the rows' agents: ``agent_slots`` (N,) (repeated for options),
        granted ``fractions`` (N,), ``requests`` (N, K) and ``budget`` (K,). Each requesting
        agent counts once: its service is the sum of its fractions, its share the dominant
        resource share ``max_k Σ_rows x r_k / B_k`` of what it got."""
        if not len(agent_slots):
            return
        uniq, inv = np.unique(agent_slots, return_inverse=True)
        served = np.bincount(inv, weights=fractions, minlength=len(uniq))
        safe_b = np.where(budget > 0, budget, np.inf)
        row_share = (fractions[:, None] * requests / safe_b).max(axis=1) if requests.shape[1] \
            else np.zeros(len(agent_slots))
        share = np.bincount(inv, weights=row_share, minlength=len(uniq))
        self.record_round(uniq, served, share)

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

    def record_reward_one(self, agent: int, reward: float) -> None:
        """:meth:`record_rewards` for one agent slot."""
        self.reward_sum[agent] += reward
        if self.config.utility == "reward":
            self.utility_sum[agent] += reward
            if self.config.horizon is not None:
                self.ema[agent] += reward / self.config.horizon

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

    def set_state(self, state: dict, n_slots: int | None = None) -> None:
        """Restore :meth:`get_state`'s arrays (copies), all checked first; ``n_slots``: the
        expected length. Raises :class:`StateError` and changes nothing on a bad state."""
        expect_keys(state, self.FIELDS, "fairness")
        nonneg = self.config.utility != "reward"
        bounds = {"active": (0.0, None), "served": (0.0, None), "queue": (0.0, None),
                  "min_share": (0.0, 1.0), "weight": (MIN_WEIGHT, MAX_WEIGHT),
                  "utility_sum": (0.0 if nonneg else None, None),
                  "ema": (0.0 if nonneg else None, None), "reward_sum": (None, None)}
        arrays = {}
        for name in self.FIELDS:
            low, high = bounds[name]
            arrays[name] = state_array(state[name], f"fairness.{name}", length=n_slots,
                                       low=low, high=high)
        if len({len(a) for a in arrays.values()}) > 1:
            raise StateError("fairness: arrays of different lengths")
        if np.any(arrays["served"] > arrays["active"] * (1 + 1e-9)):
            raise StateError("fairness: an agent served in more rounds than it requested")
        for name, arr in arrays.items():
            setattr(self, name, arr)
