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

A bound on the price of fairness, ``max_reward_loss = ε``. The promise is about *expected*
reward (the true means): over a run, the fair policy's choices earn ≥ (1 − ε) of what the
utilitarian constrained-TS policy earns on the same instance. The policy cannot see true means,
so it keeps the promise on two estimates chosen so that each errs on the safe side, and enforces
it with Neely's drift-plus-penalty virtual queue::

    Z ← [Z + (1 − ε)·R̂*_t − R̂_t]_+            v = fair' + Z / (V · R̄*) · θ̃

- ``R̂*_t`` (what the utilitarian policy would earn this round) is the oracle's *proven upper
  bound* on the utilitarian optimum of the posterior means μ̂ (the oracle on ``μ̂`` under the
  round's budget, its pace in horizon-budget mode; no fairness weights; never the policy's own
  rule). It errs high in three ways: the bound is ≥ the optimum (by the LP's integrality gap,
  a few percent at tens of agents, vanishing with more); the best set under noisy estimates
  tends to be worth less than they say (the winner's curse); and the utilitarian TS *run*,
  which the promise is about, earns less than the optimum, since it explores. Early in a run
  the posterior means sit near the prior and the reference may err low on instances whose
  best agents are better than the prior mean; the later rounds dominate a run's sum.
  The reference would cost one more oracle call per round, so the oracle solves it at least
  every :data:`REFERENCE_EVERY` rounds, and in between it is (a) reused while the round's rows
  (arms, requests, budget) stay the same and no discount moves the means: the posterior
  means move by O(1 / observations) per round, so a reference a few rounds old is close to a
  fresh one; (b) else the *Lagrangian bound* ``L(λ) = λ·B + Σ_i max(0, max_j μ̂_ij − λ·r_ij)``
  of this round's means, rows and budget (:mod:`librex_alloc.oracles.lagrangian`): a proven
  upper bound for every λ ≥ 0 (weak duality), equal to the LP bound at the best λ, O(N·K).
  Its prices λ are carried from round to round (they are part of the state) and improved by
  one sweep of exact coordinate line searches a round. It is used only while it is at most
  :data:`LAGRANGIAN_SLACK` above the last oracle bound; a looser one sends the round to the
  oracle. Either way ``R̂*_t`` stays a proven upper bound on this round's optimum; a looser
  one only makes the knob keep more reward (the safe side) and give less fairness.
- ``R̂_t`` (what the fair choice earned) is the *realized* reward of the allocated rows, times
  the granted fractions, credited when the outcomes arrive (:meth:`record_rewards`). Its
  expectation is exactly the true-mean reward of the choice, whatever the posterior believes:
  it does not reward optimism (fairness routes budget to little-explored agents whose samples
  and posterior means overstate them; their realized rewards do not). Outcomes that never
  arrive earn nothing, and late ones keep Z high meanwhile — both on the safe side.

So ``Σ_t R̂_t ≥ (1 − ε) Σ_t R̂*_t − Z_T`` (the clipping at 0 only adds to the left side), and
in expectation the fair choices keep at least (1 − ε) of the reference, less ``Z_T / T``, which
vanishes as the run grows. ``fair'`` are the fair values rescaled to the samples' magnitude and
``R̄*`` the running mean of ``R̂*`` (so ``V = reward_loss_v`` is dimensionless: larger V,
slower correction). ε = 0 is the utilitarian rule and ε = 1 the plain fairness rule; neither
needs the reference, so its extra oracle call runs only for 0 < ε < 1. The queue mixes the
values, so the knob is honoured by every policy whose choice follows the oracle values, and
refused by those whose rule ignores them (DRF, round-robin, proportional share, Fair-Learn).
A heuristic rule (greedy, BTS, ...) that cannot reach (1 − ε) of the oracle's reference even
on purely utilitarian values lets Z grow: it then acts on values dominated by its samples, its
best effort, and :attr:`FairnessState.reward_kept_estimate` shows the shortfall.
"""

from __future__ import annotations

import hashlib
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


def _knob_number(value, name: str, *, low: float, high: float) -> float:
    """A setting of the reward-loss knob: a real number (not a bool, not a string), finite, in
    [low, high]; :class:`InvalidConfigError` otherwise."""
    if isinstance(value, (bool, np.bool_)) or \
            not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidConfigError(f"{name}: expected a number in [{low:g}, {high:g}], got "
                                 f"{value!r} ({type(value).__name__})")
    return check_scalar(value, name, low=low, high=high)


#: The reward-loss reference is re-solved by the oracle at least every this many rounds
#: (module doc).
REFERENCE_EVERY = 8
#: Between two oracle solves, the Lagrangian bound stands in for the reference while it is at
#: most this much (relative) above the last oracle bound; else the oracle solves again.
LAGRANGIAN_SLACK = 0.05


def _fresh_reward_loss() -> np.ndarray:
    return np.array([0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0])


def rows_key(*arrays: np.ndarray) -> float:
    """A 48-bit fingerprint of a round's rows (exact in a float64): equal rows, equal key."""
    h = hashlib.blake2b(digest_size=6)
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return float(int.from_bytes(h.digest(), "little"))


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
    max_reward_loss: float | None = None
    reward_loss_v: float = 1.0

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
        if self.max_reward_loss is not None:
            object.__setattr__(self, "max_reward_loss", _knob_number(
                self.max_reward_loss, "max_reward_loss", low=0.0, high=1.0))
        object.__setattr__(self, "reward_loss_v", _knob_number(
            self.reward_loss_v, "reward_loss_v", low=1e-6, high=1e6))

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


def _dominant_shares(fractions: np.ndarray, requests: np.ndarray, budget: np.ndarray
                     ) -> np.ndarray:
    """(N,) ``max_k fractions_i · requests_ik / budget_k`` (0 for a zero budget's resource and
    for rows not granted). Only granted rows are computed, and the maximum is taken column by
    column: ``.max(axis=1)`` over a short inner axis costs ~3× more at 10,000 rows."""
    out = np.zeros(len(fractions))
    sel = np.flatnonzero(fractions > 0)
    if not len(sel) or not requests.shape[1]:
        return out
    safe_b = np.where(budget > 0, budget, np.inf)
    g = fractions[sel, None] * requests[sel] / safe_b
    top = g[:, 0].copy()
    for k in range(1, g.shape[1]):
        np.maximum(top, g[:, k], out=top)
    out[sel] = top
    return out


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
        #: reward-loss bound (module docstring): [Z, Σ R̂*, Σ R̂, rounds with a reference],
        #: then the reused reference: [its value, its rows' key (-1: none), the round count
        #: when it was solved]
        self.reward_loss = _fresh_reward_loss()
        #: the Lagrangian prices λ (K,) of the last reference (empty: none yet; module doc)
        self.reward_loss_prices = np.zeros(0)

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

    # -- public reads (what rules other than this one use: copies) -------------------------
    def weights(self, slots: np.ndarray) -> np.ndarray:
        """(m,) priority weights w_i of agent ``slots``."""
        return self.weight[slots]

    def service(self, slots: np.ndarray) -> np.ndarray:
        """(m,) service N_i of agent ``slots``: rounds served (fractions summed)."""
        return self.served[slots]

    def deficits(self, slots: np.ndarray) -> np.ndarray:
        """(m,) ``ρ_i t_i − N_i`` of agent ``slots``: service owed to the minimum shares."""
        return self.min_share[slots] * self.active[slots] - self.served[slots]

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

    def mix_reward_loss(self, fair: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Values under the reward-loss bound: ``fair' + Z / (V · R̄*) · θ̃`` (module doc);
        ``fair`` itself when no bound is set, ``θ̃`` when ε = 0."""
        eps = self.config.max_reward_loss
        if eps is None:
            return fair
        if eps == 0.0:
            return theta.astype(np.float64, copy=True)
        z, r_star_sum, _, rounds = self.reward_loss[:4]
        top_fair = float(np.max(np.abs(fair))) if len(fair) else 0.0
        top_theta = float(np.max(np.abs(theta))) if len(theta) else 0.0
        v = fair * (top_theta / top_fair) if top_fair > 0 and top_theta > 0 else fair.copy()
        ref = r_star_sum / rounds if rounds else 0.0
        if z > 0 and ref > 0:
            v = v + (z / (self.config.reward_loss_v * ref)) * theta
        return v

    def needs_reference(self) -> bool:
        """Whether a round needs the utilitarian reference ``R̂*_t`` (0 < ε < 1)."""
        eps = self.config.max_reward_loss
        return eps is not None and 0.0 < eps < 1.0

    def reusable_reference(self, key: float) -> float | None:
        """The last solved reference if it may stand in for the rows with fingerprint
        ``key``: the same rows, solved fewer than :data:`REFERENCE_EVERY` rounds ago; else
        None."""
        loss = self.reward_loss
        if key < 0 or key != loss[5] or loss[3] - loss[6] >= REFERENCE_EVERY:
            return None
        return float(loss[4])

    def warm_prices(self, k: int) -> np.ndarray | None:
        """The Lagrangian prices of the last reference, if there are K = ``k`` of them."""
        p = self.reward_loss_prices
        return p.copy() if len(p) == k and k > 0 else None

    def cheap_reference_due(self) -> bool:
        """Whether the oracle solved the reference fewer than :data:`REFERENCE_EVERY` rounds
        ago, so that the Lagrangian bound may stand in for it (module doc)."""
        loss = self.reward_loss
        return loss[3] > 0 and loss[3] - loss[6] < REFERENCE_EVERY and loss[4] > 0

    def cheap_reference_close(self, bound: float) -> bool:
        """Whether the Lagrangian ``bound`` is within :data:`LAGRANGIAN_SLACK` of the last
        oracle bound (else the oracle solves the round)."""
        return bool(np.isfinite(bound)) and bound <= (1.0 + LAGRANGIAN_SLACK) * \
            self.reward_loss[4]

    def record_reward_loss(self, r_star: float, solved_key: float | None = None,
                           prices: np.ndarray | None = None) -> None:
        """One allocated round of the bound: ``r_star`` = ``R̂*_t`` (module doc), solved by
        the oracle for rows with fingerprint ``solved_key`` (-1: not to be reused; None:
        reused, or the Lagrangian bound); ``prices``: the Lagrangian prices to keep. What the
        choice earned is credited when its outcomes arrive (:meth:`record_rewards`)."""
        eps = self.config.max_reward_loss
        loss = self.reward_loss
        if prices is not None and np.all(np.isfinite(prices)):
            self.reward_loss_prices = np.asarray(prices, dtype=np.float64).copy()
        if solved_key is not None:
            loss[4:7] = (r_star, solved_key, loss[3])
        loss[0] += (1.0 - eps) * r_star
        loss[1] += r_star
        loss[3] += 1.0

    def _credit(self, earned: float) -> None:
        loss = self.reward_loss
        loss[0] = max(loss[0] - earned, 0.0)
        loss[2] += earned

    @property
    def reward_kept_estimate(self) -> float:
        """``Σ R̂_t / Σ R̂*_t`` so far (NaN before the first reference): the bookkeeping's view
        of the share kept, a conservative estimate of the true one (module doc)."""
        _, r_star, r, _ = self.reward_loss[:4]
        return float(r / r_star) if r_star > 0 else float("nan")

    # -- bookkeeping ------------------------------------------------------------------------
    def record_allocation(self, agent_slots: np.ndarray, fractions: np.ndarray,
                          requests: np.ndarray, budget: np.ndarray) -> None:
        """One round of the rows' agents: ``agent_slots`` (N,) (repeated for options),
        granted ``fractions`` (N,), ``requests`` (N, K) and ``budget`` (K,). Each requesting
        agent counts once: its service is the sum of its fractions, its share the dominant
        resource share ``max_k Σ_rows x r_k / B_k`` of what it got."""
        if not len(agent_slots):
            return
        row_share = _dominant_shares(fractions, requests, budget)
        if int(np.bincount(agent_slots).max()) == 1:  # one row per agent (no np.unique: ~0.7
            self.record_round(agent_slots, fractions, row_share)  # ms at 10,000 rows)
            return
        uniq, inv = np.unique(agent_slots, return_inverse=True)
        served = np.bincount(inv, weights=fractions, minlength=len(uniq))
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

    def record_rewards(self, agents: np.ndarray, rewards: np.ndarray,
                       fractions: np.ndarray | None = None) -> None:
        """Outcomes arrived: ``rewards`` (m,) of agent slots ``agents`` (m,), granted
        ``fractions`` (m,) of their requests (default 1)."""
        np.add.at(self.reward_sum, agents, rewards)
        if self.config.utility == "reward":
            np.add.at(self.utility_sum, agents, rewards)
            if self.config.horizon is not None:
                np.add.at(self.ema, agents, rewards / self.config.horizon)
        if self.config.max_reward_loss is not None and len(rewards):
            self._credit(float(rewards @ fractions) if fractions is not None
                         else float(rewards.sum()))

    def record_reward_one(self, agent: int, reward: float, fraction: float = 1.0) -> None:
        """:meth:`record_rewards` for one agent slot."""
        self.reward_sum[agent] += reward
        if self.config.utility == "reward":
            self.utility_sum[agent] += reward
            if self.config.horizon is not None:
                self.ema[agent] += reward / self.config.horizon
        if self.config.max_reward_loss is not None:
            self._credit(reward * fraction)

    def withdraw(self, agents: np.ndarray, fractions: np.ndarray, shares: np.ndarray) -> None:
        """Take back service recorded by :meth:`record_round` for ``agents`` (unique slots)
        whose grants never reached them: ``fractions`` and dominant ``shares`` as recorded.
        The agents stay counted as having requested. Exact, except for a virtual queue that
        the allocation had emptied: it is restored to ``min_share`` (as if it had been 0)."""
        if not len(agents):
            return
        self.served[agents] -= fractions
        q = self.queue[agents]
        self.queue[agents] = np.where(q > 0, q + fractions,
                                      np.minimum(self.min_share[agents], fractions))
        kind = self.config.utility
        u = fractions if kind == "service" else shares if kind == "share" else None
        if u is not None:
            self.utility_sum[agents] -= u
            if self.config.horizon is not None:
                self.ema[agents] -= u / self.config.horizon

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
        state = {name: getattr(self, name).copy() for name in self.FIELDS}
        state["reward_loss"] = self.reward_loss.copy()
        state["reward_loss_prices"] = self.reward_loss_prices.copy()
        return state

    def set_state(self, state: dict, n_slots: int | None = None) -> None:
        """Restore :meth:`get_state`'s arrays (copies), all checked first; ``n_slots``: the
        expected length. Raises :class:`StateError` and changes nothing on a bad state."""
        if not isinstance(state, dict) or "reward_loss_prices" in state:
            expect_keys(state, (*self.FIELDS, "reward_loss", "reward_loss_prices"), "fairness")
            prices = state_array(state["reward_loss_prices"], "fairness.reward_loss_prices",
                                 low=0.0)
        else:  # saved before the Lagrangian prices were kept: none yet
            expect_keys(state, (*self.FIELDS, "reward_loss"), "fairness")
            prices = np.zeros(0)
        if self.config.max_reward_loss is None and len(prices):
            raise StateError("fairness.reward_loss_prices: expected none without a "
                             "reward-loss bound")
        loss = state_array(state["reward_loss"], "fairness.reward_loss")
        if len(loss) == 4:  # saved before the reference was reused: none to reuse
            loss = np.concatenate([loss, _fresh_reward_loss()[4:]])
        if len(loss) != 7 or loss[0] < 0 or loss[3] < 0 or loss[3] != np.round(loss[3]) or \
                not (loss[5] == -1 or 0 <= loss[5] < 2.0**48) or \
                loss[5] != np.round(loss[5]) or not 0 <= loss[6] <= loss[3] or \
                (self.config.max_reward_loss is None and
                 np.any(loss != _fresh_reward_loss())):
            raise StateError("fairness.reward_loss: expected [Z ≥ 0, Σ R*, Σ R, rounds ≥ 0, "
                             "reference, its key (-1 or an int < 2^48), its round ≤ rounds], "
                             "all initial without a reward-loss bound")
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
        self.reward_loss = loss
        self.reward_loss_prices = prices
