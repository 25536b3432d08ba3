"""Vectorized per-slot posteriors for Thompson sampling.

A *slot* is a dense integer index ``0 <= s < n_slots`` standing for one (agent, option) arm.
Every method takes a 1-D integer array ``slots`` of shape ``(m,)`` (repeats allowed) and works
on all of them at once. Arrays grow with :meth:`resize`; a reused slot is cleared with
:meth:`reset`. A call that raises has changed no state.
"""

from __future__ import annotations

import operator

import numpy as np

from librex_alloc._validation import as_float, as_float_array, as_int_array, check_scalar
from librex_alloc.errors import InvalidConfigError, InvalidInputError, StateError

__all__ = ["BetaPosterior", "GaussianPosterior", "make_posterior"]

#: Largest accepted |reward| of the Gaussian family. Its statistics are updated with Welford's
#: / Chan's numerically stable formulas (count, mean, sum of squared deviations); with
#: |y| ≤ 1e100 the squared deviations stay below 4e200 per observation, so no accepted input
#: can overflow them. Larger rewards are rejected at the boundary: rescale such rewards.
MAX_GAUSSIAN_REWARD = 1e100
#: Largest ``alpha_prior`` / ``beta_prior``: numpy's Beta sampler is exact up to ~1e200 per
#: parameter and overflows near 1e308 (``Beta(1e308, 1e308)`` draws 0, not 0.5).
MAX_BETA_PRIOR = 1e100


class _SlotPosterior:
    """Shared slot bookkeeping: per-slot float64 statistic arrays named in ``_stat_names``."""

    family: str = ""
    _stat_names: tuple[str, ...] = ()
    _config_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._stats: dict[str, np.ndarray] = {
            name: np.zeros(0, dtype=np.float64) for name in self._stat_names
        }

    # ----------------------------------------------------------------- configuration
    @classmethod
    def _check_config(cls, config: dict) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def _apply_config(self, config: dict) -> None:
        for name in self._config_names:
            setattr(self, "_" + name, config[name])

    def _config(self) -> dict:
        return {name: float(getattr(self, "_" + name)) for name in self._config_names}

    @property
    def discount(self) -> float:
        """Per-:meth:`decay` multiplier of the stored statistics, in ``(0, 1]``."""
        return self._discount

    # ----------------------------------------------------------------- slots
    @property
    def n_slots(self) -> int:
        """Number of allocated slots."""
        return int(self._stats[self._stat_names[0]].shape[0])

    def _slots(self, slots) -> np.ndarray:
        """Validate ``slots`` as a 1-D int64 array of existing slot indices, shape ``(m,)``."""
        idx = as_int_array(slots, "slots", ndim=1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_slots):
            raise InvalidInputError(
                f"slots: indices must lie in [0, {self.n_slots}), "
                f"got range [{idx.min()}, {idx.max()}]"
            )
        return idx

    @staticmethod
    def _rng(rng) -> np.random.Generator:
        if not isinstance(rng, np.random.Generator):
            raise InvalidInputError(f"rng: expected a numpy.random.Generator, got {type(rng)!r}")
        return rng

    def resize(self, n_slots: int) -> None:
        """Grow to ``n_slots`` slots; new slots start at the prior.

        Never shrinks: a value ``<= n_slots`` is a no-op.
        """
        try:
            n = operator.index(n_slots)
        except TypeError:
            raise InvalidInputError(f"n_slots: expected an integer, got {n_slots!r}") from None
        if n < 0:
            raise InvalidInputError(f"n_slots: must be >= 0, got {n}")
        extra = n - self.n_slots
        if extra <= 0:
            return
        pad = np.zeros(extra, dtype=np.float64)
        for name in self._stat_names:
            self._stats[name] = np.concatenate([self._stats[name], pad])

    def truncate(self, n_slots: int) -> None:
        """Drop slots ``>= n_slots`` (undoes a :meth:`resize`)."""
        for name in self._stat_names:
            self._stats[name] = self._stats[name][:n_slots].copy()

    def reset(self, slots) -> None:
        """Put ``slots`` (shape ``(m,)``) back to the prior (for a reused slot)."""
        idx = self._slots(slots)
        for name in self._stat_names:
            self._stats[name][idx] = 0.0

    def decay(self) -> None:
        """Multiply every stored statistic by ``discount`` (no-op when ``discount == 1``)."""
        if self._discount == 1.0:
            return
        for name in self._stat_names:
            self._stats[name] *= self._discount

    def _check_success_flags(self, successes, m: int) -> np.ndarray:
        flags = as_float_array(successes, "successes", shape=(m,))
        if flags.size and not np.all((flags == 0.0) | (flags == 1.0)):
            raise InvalidInputError("successes: expected booleans or 0/1 flags")
        return flags

    # ----------------------------------------------------------------- state
    def get_state(self) -> dict:
        """Flat dict: ``family`` (str), the config floats, and one ``(n_slots,)`` float64 array
        per statistic (copies)."""
        state: dict = {"family": self.family}
        state.update(self._config())
        for name in self._stat_names:
            state[name] = self._stats[name].copy()
        return state

    def set_state(self, state: dict, *, same_config: bool = False) -> None:
        """Restore a :meth:`get_state` dict (config included). :class:`StateError` on mismatch;
        with ``same_config`` also when the state's prior or discount differ from this one's."""
        if not isinstance(state, dict):
            raise StateError(f"state: expected a dict, got {type(state)!r}")
        expected = {"family", *self._config_names, *self._stat_names}
        if set(state) != expected:
            missing = sorted(expected - set(state))
            unknown = sorted(map(str, set(state) - expected))
            raise StateError(f"state: missing keys {missing}, unknown keys {unknown}")
        if not isinstance(state["family"], str) or state["family"] != self.family:
            raise StateError(f"state: family {state['family']!r}, expected {self.family!r}")
        try:
            config = self._check_config({name: state[name] for name in self._config_names})
        except InvalidConfigError as exc:
            raise StateError(f"state: invalid config ({exc})") from None
        if same_config and config != self._config():
            raise StateError(f"state: posterior configuration {config} differs from "
                             f"{self._config()}")
        stats: dict[str, np.ndarray] = {}
        for name in self._stat_names:
            value = state[name]
            if not isinstance(value, np.ndarray) or value.ndim != 1 or \
                    value.dtype != np.float64:
                raise StateError(f"state[{name!r}]: expected a 1-D float64 numpy array")
            arr = np.array(value, dtype=np.float64, copy=True)
            if not np.all(np.isfinite(arr)):
                raise StateError(f"state[{name!r}]: contains NaN or infinite values")
            stats[name] = arr
        lengths = {arr.shape[0] for arr in stats.values()}
        if len(lengths) != 1:
            raise StateError(f"state: statistic arrays have different lengths {sorted(lengths)}")
        self._check_stats(stats)
        self._apply_config(config)
        self._stats = stats

    def _check_stats(self, stats: dict[str, np.ndarray]) -> None:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        cfg = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({cfg}, n_slots={self.n_slots})"


class BetaPosterior(_SlotPosterior):
    """Beta–Bernoulli posteriors; rewards in [0,1] use the Bernoulli trick (Agrawal & Goyal 2012).

    Per slot: ``alpha = alpha_prior + successes``, ``beta = beta_prior + failures`` where
    ``successes`` / ``failures`` are discounted counts (float64, shape ``(n_slots,)``).
    """

    family = "bernoulli"
    _stat_names = ("successes", "failures")
    _config_names = ("alpha_prior", "beta_prior", "discount")

    def __init__(
        self, alpha_prior: float = 1.0, beta_prior: float = 1.0, discount: float = 1.0
    ) -> None:
        config = self._check_config(
            {"alpha_prior": alpha_prior, "beta_prior": beta_prior, "discount": discount}
        )
        super().__init__()
        self._apply_config(config)

    @classmethod
    def _check_config(cls, config: dict) -> dict:
        return {
            # above ~1e300 numpy's Beta sampler overflows (Beta(1e308, 1e308) draws 0)
            "alpha_prior": check_scalar(config["alpha_prior"], "alpha_prior", low=0,
                                        high=MAX_BETA_PRIOR, low_open=True),
            "beta_prior": check_scalar(config["beta_prior"], "beta_prior", low=0,
                                       high=MAX_BETA_PRIOR, low_open=True),
            "discount": check_scalar(config["discount"], "discount", low=0, high=1, low_open=True),
        }

    def _check_stats(self, stats: dict[str, np.ndarray]) -> None:
        for name, arr in stats.items():
            if arr.size and np.any(arr < 0):
                raise StateError(f"state[{name!r}]: negative counts")

    @property
    def alpha_prior(self) -> float:
        return self._alpha_prior

    @property
    def beta_prior(self) -> float:
        return self._beta_prior

    def params(self, slots) -> tuple[np.ndarray, np.ndarray]:
        """``(alpha, beta)``, each shape ``(m,)``, of the Beta posteriors of ``slots``."""
        idx = self._slots(slots)
        return (
            self._alpha_prior + self._stats["successes"][idx],
            self._beta_prior + self._stats["failures"][idx],
        )

    def sample(self, slots, rng: np.random.Generator) -> np.ndarray:
        """Draw ``theta ~ Beta(alpha, beta)`` for each slot, shape ``(m,)`` (one ``rng.beta``)."""
        rng = self._rng(rng)
        alpha, beta = self.params(slots)
        return rng.beta(alpha, beta)

    def mean(self, slots) -> np.ndarray:
        """Posterior mean ``alpha / (alpha + beta)``, shape ``(m,)``."""
        alpha, beta = self.params(slots)
        return alpha / (alpha + beta)

    def count(self, slots) -> np.ndarray:
        """Effective (discounted) number of observations, shape ``(m,)``."""
        idx = self._slots(slots)
        return self._stats["successes"][idx] + self._stats["failures"][idx]

    def validate_rewards(self, rewards) -> np.ndarray:
        """Rewards as float64 (any shape); :class:`InvalidInputError` unless finite in [0, 1]."""
        r = as_float_array(rewards, "rewards")
        if r.size and (np.any(r < 0.0) or np.any(r > 1.0)):
            raise InvalidInputError("rewards: must lie in [0, 1] for a Bernoulli posterior")
        return r

    def update(self, slots, rewards, rng: np.random.Generator) -> None:
        """Bernoulli-trick update: ``u = rng.random(m)`` (always exactly one call),
        success iff ``u < reward``. ``rewards`` shape ``(m,)`` in [0, 1]; slots may repeat."""
        idx = self._slots(slots)
        r = self.validate_rewards(rewards)
        if r.shape != idx.shape:
            raise InvalidInputError(f"rewards: expected shape {idx.shape}, got {r.shape}")
        rng = self._rng(rng)
        u = rng.random(idx.shape[0])
        hit = (u < r).astype(np.float64)
        np.add.at(self._stats["successes"], idx, hit)
        np.add.at(self._stats["failures"], idx, 1.0 - hit)

    def update_success(self, slots, successes) -> None:
        """Deterministic update from bool / 0-1 flags, shape ``(m,)``; slots may repeat."""
        idx = self._slots(slots)
        flags = self._check_success_flags(successes, idx.shape[0])
        np.add.at(self._stats["successes"], idx, flags)
        np.add.at(self._stats["failures"], idx, 1.0 - flags)

    def rewards_ok(self, rewards: np.ndarray) -> np.ndarray:
        """bool, per reward (a float64 array): finite and in [0, 1] (what
        :meth:`validate_rewards` accepts)."""
        return (rewards >= 0.0) & (rewards <= 1.0)

    def check_reward(self, reward) -> float:
        """One reward as a float in [0, 1]; :class:`InvalidInputError` otherwise."""
        r = as_float(reward, "reward")
        if not 0.0 <= r <= 1.0:
            raise InvalidInputError("reward: must lie in [0, 1] for a Bernoulli posterior")
        return r

    def update_one(self, slot: int, reward: float, rng: np.random.Generator) -> None:
        """:meth:`update` for one slot and a checked reward (same draw, same result)."""
        hit = 1.0 if rng.random() < reward else 0.0
        self._stats["successes"][slot] += hit
        self._stats["failures"][slot] += 1.0 - hit

    def update_success_one(self, slot: int, flag: float) -> None:
        """:meth:`update_success` for one slot and a checked 0/1 flag."""
        self._stats["successes"][slot] += flag
        self._stats["failures"][slot] += 1.0 - flag


class GaussianPosterior(_SlotPosterior):
    """Normal–Inverse-Gamma posteriors (unknown mean and variance) for unbounded real rewards.

    Stores discounted sufficient statistics per slot (float64, shape ``(n_slots,)``):
    ``n`` (count), ``mean`` (sample mean) and ``m2`` (sum of squared deviations from it),
    updated with Welford's / Chan's stable formulas. Prior
    ``NIG(mu_prior, kappa_prior, a_prior, b_prior)``; rewards are in the caller's units,
    ``|y| ≤ MAX_GAUSSIAN_REWARD`` (1e100).
    """

    family = "gaussian"
    _stat_names = ("n", "mean", "m2")
    _config_names = ("mu_prior", "kappa_prior", "a_prior", "b_prior", "discount")

    def __init__(
        self,
        mu_prior: float = 0.0,
        kappa_prior: float = 1.0,
        a_prior: float = 1.0,
        b_prior: float = 1.0,
        discount: float = 1.0,
    ) -> None:
        config = self._check_config(
            {
                "mu_prior": mu_prior,
                "kappa_prior": kappa_prior,
                "a_prior": a_prior,
                "b_prior": b_prior,
                "discount": discount,
            }
        )
        super().__init__()
        self._apply_config(config)

    @classmethod
    def _check_config(cls, config: dict) -> dict:
        lim = MAX_GAUSSIAN_REWARD
        return {
            "mu_prior": check_scalar(config["mu_prior"], "mu_prior", low=-lim, high=lim),
            "kappa_prior": check_scalar(config["kappa_prior"], "kappa_prior", low=1e-100,
                                        high=1e100),
            "a_prior": check_scalar(config["a_prior"], "a_prior", low=1e-100, high=1e100),
            "b_prior": check_scalar(config["b_prior"], "b_prior", low=1e-100, high=1e100),
            "discount": check_scalar(config["discount"], "discount", low=0, high=1, low_open=True),
        }

    def _check_stats(self, stats: dict[str, np.ndarray]) -> None:
        n, mean, m2 = stats["n"], stats["mean"], stats["m2"]
        if n.size and (np.any(n < 0) or np.any(m2 < 0)):
            raise StateError("state: negative count or sum of squared deviations")
        if mean.size and np.any(np.abs(mean) > MAX_GAUSSIAN_REWARD):
            raise StateError(f"state['mean']: magnitude above {MAX_GAUSSIAN_REWARD:g}")
        empty = n == 0
        if np.any(mean[empty] != 0) or np.any(m2[empty] != 0):
            raise StateError("state: statistics of a slot without observations must be 0")

    @property
    def mu_prior(self) -> float:
        return self._mu_prior

    @property
    def kappa_prior(self) -> float:
        return self._kappa_prior

    @property
    def a_prior(self) -> float:
        return self._a_prior

    @property
    def b_prior(self) -> float:
        return self._b_prior

    def params(self, slots) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(m_n, kappa_n, a_n, b_n)``, each shape ``(m,)``, of the NIG posteriors of ``slots``."""
        idx = self._slots(slots)
        n = self._stats["n"][idx]
        ybar = self._stats["mean"][idx]
        m2 = self._stats["m2"][idx]
        mu0, k0 = self._mu_prior, self._kappa_prior
        kappa_n = k0 + n
        w = n / kappa_n  # weight of the data in the posterior mean, in [0, 1)
        m_n = mu0 + w * (ybar - mu0)
        a_n = self._a_prior + 0.5 * n
        b_n = self._b_prior + 0.5 * m2 + 0.5 * k0 * w * (ybar - mu0) ** 2
        return m_n, kappa_n, a_n, b_n

    def sample(self, slots, rng: np.random.Generator) -> np.ndarray:
        """Draw ``theta`` per slot, shape ``(m,)``: ``sigma2 = 1 / Gamma(a_n, scale=1/b_n)``,
        ``theta = m_n + sqrt(sigma2 / kappa_n) * N(0, 1)``, truncated to the rewards' range
        ``[-MAX_GAUSSIAN_REWARD, MAX_GAUSSIAN_REWARD]`` (the mean of rewards in that range
        lies in it). So every draw is finite, also for the widest priors the constructor
        accepts (``a_prior = kappa_prior = 1e-100`` draws variances beyond float64)."""
        rng = self._rng(rng)
        m_n, kappa_n, a_n, b_n = self.params(slots)
        precision = np.maximum(rng.gamma(a_n, 1.0 / b_n), np.finfo(np.float64).tiny)
        z = rng.standard_normal(m_n.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):
            dev = np.sqrt((1.0 / precision) / kappa_n) * z  # may be ±inf (nan for inf·0)
            theta = m_n + np.where(z == 0.0, 0.0, dev)
        lim = MAX_GAUSSIAN_REWARD
        return np.clip(theta, -lim, lim)

    def decay(self) -> None:
        """Discount the count and the squared deviations (the sample mean is unchanged)."""
        if self._discount == 1.0:
            return
        n = self._stats["n"]
        n *= self._discount
        self._stats["m2"] *= self._discount
        gone = n == 0  # underflowed: the slot is back at its prior
        self._stats["mean"][gone] = 0.0
        self._stats["m2"][gone] = 0.0

    def mean(self, slots) -> np.ndarray:
        """Posterior mean of the reward mean, ``m_n``, shape ``(m,)``."""
        return self.params(slots)[0]

    def count(self, slots) -> np.ndarray:
        """Effective (discounted) number of observations ``n``, shape ``(m,)``."""
        idx = self._slots(slots)
        return self._stats["n"][idx].copy()

    def validate_rewards(self, rewards) -> np.ndarray:
        """Rewards as float64 (any shape); :class:`InvalidInputError` unless finite with
        ``|y| ≤ MAX_GAUSSIAN_REWARD``."""
        y = as_float_array(rewards, "rewards")
        if y.size and np.max(np.abs(y)) > MAX_GAUSSIAN_REWARD:
            raise InvalidInputError(
                f"rewards: magnitude above {MAX_GAUSSIAN_REWARD:g}; rescale the rewards")
        return y

    def update(self, slots, rewards, rng: np.random.Generator | None = None) -> None:
        """Add rewards (shape ``(m,)``) to the statistics; slots may repeat. ``rng`` is unused."""
        idx = self._slots(slots)
        y = self.validate_rewards(rewards)
        if y.shape != idx.shape:
            raise InvalidInputError(f"rewards: expected shape {idx.shape}, got {y.shape}")
        self._add(idx, y)

    def update_success(self, slots, successes) -> None:
        """Update with bool / 0-1 flags treated as rewards 0.0 / 1.0, shape ``(m,)``."""
        idx = self._slots(slots)
        flags = self._check_success_flags(successes, idx.shape[0])
        self._add(idx, flags)

    def rewards_ok(self, rewards: np.ndarray) -> np.ndarray:
        """bool, per reward (a float64 array): finite with ``|y| ≤ MAX_GAUSSIAN_REWARD`` (what
        :meth:`validate_rewards` accepts)."""
        return np.abs(rewards) <= MAX_GAUSSIAN_REWARD

    def check_reward(self, reward) -> float:
        """One reward as a float with ``|y| ≤ MAX_GAUSSIAN_REWARD``; :class:`InvalidInputError`."""
        y = as_float(reward, "reward")
        if abs(y) > MAX_GAUSSIAN_REWARD:
            raise InvalidInputError(
                f"reward: magnitude above {MAX_GAUSSIAN_REWARD:g}; rescale the rewards")
        return y

    def update_one(self, slot: int, reward: float, rng: np.random.Generator | None = None
                   ) -> None:
        """:meth:`update` for one slot and a checked reward (the same arithmetic)."""
        st = self._stats
        n, mean = st["n"][slot], st["mean"][slot]
        total = n + 1.0
        delta = reward - mean
        st["mean"][slot] = mean + delta * (1.0 / total)
        st["m2"][slot] = st["m2"][slot] + 0.0 + delta * delta * (n * 1.0 / total)
        st["n"][slot] = total

    def update_success_one(self, slot: int, flag: float) -> None:
        """:meth:`update_success` for one slot and a checked 0/1 flag."""
        self.update_one(slot, flag)

    def _add(self, idx: np.ndarray, y: np.ndarray) -> None:
        """Chan et al.'s pairwise merge of each slot's batch into its statistics."""
        if not idx.size:
            return
        uniq, inv = np.unique(idx, return_inverse=True)
        c = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
        mb = np.bincount(inv, weights=y, minlength=len(uniq)) / c
        m2b = np.bincount(inv, weights=(y - mb[inv]) ** 2, minlength=len(uniq))
        n, mean, m2 = (self._stats[k][uniq] for k in ("n", "mean", "m2"))
        total = n + c
        delta = mb - mean
        self._stats["mean"][uniq] = mean + delta * (c / total)
        self._stats["m2"][uniq] = m2 + m2b + delta * delta * (n * c / total)
        self._stats["n"][uniq] = total


_FAMILIES: dict[str, type[_SlotPosterior]] = {
    "bernoulli": BetaPosterior,
    "beta": BetaPosterior,
    "gaussian": GaussianPosterior,
}


def make_posterior(family: str, **kwargs) -> BetaPosterior | GaussianPosterior:
    """Build a posterior by family name: ``"bernoulli"`` / ``"beta"`` or ``"gaussian"``.

    ``kwargs`` go to the constructor; an unknown family or keyword is an
    :class:`InvalidConfigError`.
    """
    cls = _FAMILIES.get(family) if isinstance(family, str) else None
    if cls is None:
        raise InvalidConfigError(
            f"family: unknown posterior family {family!r}; expected one of {sorted(_FAMILIES)}"
        )
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InvalidConfigError(f"{family}: {exc}") from None
