"""Synthetic environments: agents with hidden reward means and multi-resource requests.

``SyntheticEnvironment`` draws, once from ``seed``, each agent's true mean reward per option
(uniform in ``mean_range``) and request vector per option (uniform in ``request_range`` per
resource, resource units, times a per-agent size factor ``exp(heterogeneity · N(0, 1))``). The
per-round budget is ``B = tightness · Σ_i r_i`` (first option of every agent, all n agents).
Rewards are Bernoulli(μ), Beta with mean μ (``beta_concentration``), or Gaussian(μ,
``noise_std``). These draws, and every output with the other settings at their defaults, are
those of the original single-module environment (seeded results do not move).

Families on top, each off by default and each drawn from its own random stream (seeded by
``(seed, stream, round)``, so round t is the same whatever was asked before):

- ``mean_heterogeneity`` h ∈ [0, 1]: means are ``mid + h (u − mid)`` around the midpoint of
  ``mean_range`` (1: uniform over the range; 0: homogeneous agents).
- ``drift``: ``"random_walk"``: every round each mean takes a N(0, drift_rate²) step,
  reflected into the range of the means; ``"periodic"``: each mean oscillates over that range,
  ``lo + (hi − lo)(1 + sin(2π · drift_rate · t + φ))/2`` (drift_rate in cycles per round),
  with φ set so that round 0 has the drawn means. Means at round 0 are the drawn ones.
- churn: an active agent leaves with probability ``churn_rate`` per round and an inactive one
  (re)joins with probability ``join_rate`` (default ``churn_rate``); round 1 starts from the
  stationary share ``join_rate / (churn_rate + join_rate)``. Requests hold only the active
  agents; ``EnvironmentRound.left`` names who left. The budget stays that of all n agents. A
  returning agent keeps its id and means (the policy, which removed it, starts it afresh).
- feedback: each outcome arrives ``delay`` rounds late (an int, or (low, high) uniform per
  outcome) and never with probability ``missing_prob`` (:meth:`feedback_delays`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from librex_alloc._validation import check_scalar, expect_keys, state_array
from librex_alloc.environments.base import (
    FAMILIES,
    EnvironmentRound,
    as_round,
    check_choice,
    check_config,
    check_delay,
    check_int,
    check_round,
    draw_delays,
    sample_rewards,
)
from librex_alloc.errors import InvalidConfigError
from librex_alloc.registry import MAX_OPTIONS
from librex_alloc.request import RoundRequest

DRIFTS = ("none", "random_walk", "periodic")
#: Bounds of the instance's size (a typo such as 10**12 agents is refused, not allocated).
MAX_AGENTS = 10_000_000
MAX_RESOURCES = 10_000
MAX_CELLS = 100_000_000
# random streams of the families, mixed with the seed: np.random.default_rng([seed, STREAM, t])
_DRIFT_STREAM, _PHASE_STREAM, _CHURN_STREAM = 101, 102, 103


def fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect ``x`` into [lo, hi] (a reflected random walk is the folded free walk)."""
    w = hi - lo
    if w <= 0:
        return np.full_like(x, lo)
    y = np.mod(x - lo, 2 * w)
    return lo + w - np.abs(y - w)


@dataclass
class SyntheticEnvironment:
    """n agents × m options × K resources; see the module docstring for every parameter."""

    n_agents: int = 50
    n_resources: int = 3
    tightness: float = 0.3
    options_per_agent: int = 1
    reward_family: str = "bernoulli"
    mean_range: tuple[float, float] = (0.1, 0.9)
    request_range: tuple[float, float] = (1.0, 10.0)
    heterogeneity: float = 0.0
    noise_std: float = 1.0
    beta_concentration: float = 10.0
    seed: int = 0
    mean_heterogeneity: float = 1.0
    drift: str = "none"
    drift_rate: float = 0.0
    churn_rate: float = 0.0
    join_rate: float | None = None
    delay: int | tuple[int, int] = 0
    missing_prob: float = 0.0
    means: np.ndarray = field(init=False, repr=False)
    request_table: np.ndarray = field(init=False, repr=False)
    budget: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        # every argument is checked here, before numpy sees it (bools, text, numpy scalars)
        self.n_agents = check_int(self.n_agents, "n_agents", 1, MAX_AGENTS)
        self.n_resources = check_int(self.n_resources, "n_resources", 1, MAX_RESOURCES)
        self.options_per_agent = check_int(self.options_per_agent, "options_per_agent", 1,
                                           MAX_OPTIONS)
        cells = self.n_agents * self.options_per_agent * self.n_resources
        if cells > MAX_CELLS:
            raise InvalidConfigError(f"n_agents × options_per_agent × n_resources = {cells}: "
                                     f"at most {MAX_CELLS} request entries")
        check_choice(self.reward_family, "reward_family", FAMILIES)
        self.seed = check_int(self.seed, "seed", 0, 2**63 - 1)
        check_scalar(self.tightness, "tightness", low=0.0)
        check_scalar(self.heterogeneity, "heterogeneity", low=0.0)
        check_scalar(self.noise_std, "noise_std", low=0.0)
        check_scalar(self.beta_concentration, "beta_concentration", low=0.0, low_open=True)
        check_scalar(self.mean_heterogeneity, "mean_heterogeneity", low=0.0, high=1.0)
        check_choice(self.drift, "drift", DRIFTS)
        check_scalar(self.drift_rate, "drift_rate", low=0.0)
        check_scalar(self.churn_rate, "churn_rate", low=0.0, high=1.0)
        if self.join_rate is not None:
            check_scalar(self.join_rate, "join_rate", low=0.0, high=1.0)
        self._delay = check_delay(self.delay)
        check_scalar(self.missing_prob, "missing_prob", low=0.0, high=1.0)
        lo, hi = self._pair(self.mean_range, "mean_range")
        if self.reward_family != "gaussian" and not (0 <= lo <= hi <= 1):
            raise InvalidConfigError("mean_range: must lie in [0, 1] for bounded rewards")
        if lo > hi:
            raise InvalidConfigError("mean_range: expected low ≤ high")
        rlo, rhi = self._pair(self.request_range, "request_range")
        if not (0 <= rlo <= rhi):
            raise InvalidConfigError("request_range: expected 0 ≤ low ≤ high")
        # the instance: the draws (and their order) of the original environment
        rng = np.random.default_rng(self.seed)
        n, m, k = self.n_agents, self.options_per_agent, self.n_resources
        self.means = rng.uniform(lo, hi, size=(n, m))
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below
            size = np.exp(self.heterogeneity * rng.standard_normal(n))[:, None, None]
            self.request_table = rng.uniform(rlo, rhi, size=(n, m, k)) * size
            self.budget = self.tightness * self.request_table[:, 0, :].sum(axis=0)
        if not np.all(np.isfinite(self.request_table)) or not np.all(np.isfinite(self.budget)):
            raise InvalidConfigError("request_range, heterogeneity and tightness give requests "
                                     "or a budget beyond float64; choose smaller ones")
        h = float(self.mean_heterogeneity)
        if h != 1.0:
            mid = 0.5 * (lo + hi)
            self.means = mid + h * (self.means - mid)
        self.round = 0
        self._reset_caches()

    @staticmethod
    def _pair(value, name: str) -> tuple[float, float]:
        if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 2 or \
                np.ndim(value) != 1:
            raise InvalidConfigError(f"{name}: expected a (low, high) pair, got {value!r}")
        lo, hi = (check_scalar(v, name) for v in value)
        return lo, hi

    def _reset_caches(self) -> None:
        self._walk = (0, np.zeros_like(self.means))  # (round, Σ of the N(0,1) steps so far)
        self._phase = None
        self._churn = None  # (round, active at round - 1, active at round)

    @property
    def is_static(self) -> bool:
        """Every round is the same (no churn, no drift): rows can be computed once."""
        return float(self.churn_rate) == 0.0 and (self.drift == "none"
                                                   or float(self.drift_rate) == 0.0)

    # -- configuration and state --------------------------------------------------------
    def config(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def _config_state(self) -> dict:
        cfg = self.config()
        for key in ("mean_range", "request_range"):
            cfg[key] = list(cfg[key])
        if isinstance(cfg["delay"], (list, tuple)):
            cfg["delay"] = list(cfg["delay"])
        return cfg

    def get_state(self) -> dict:
        """{config, means (n·m,), request_table (n·m·K,), budget (K,), round}: copies."""
        return {"config": self._config_state(), "means": self.means.ravel().copy(),
                "request_table": self.request_table.ravel().copy(),
                "budget": self.budget.copy(), "round": self.round}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output; the configuration must equal this one's.
        :class:`StateError` on a bad state, and then nothing changes."""
        state = expect_keys(state, ("config", "means", "request_table", "budget", "round"),
                            "environment")
        check_config(state, self._config_state(), "environment")
        n, m, k = self.n_agents, self.options_per_agent, self.n_resources
        lo, hi = (None, None) if self.reward_family == "gaussian" else (0.0, 1.0)
        means = state_array(state["means"], "environment.means", length=n * m, low=lo, high=hi)
        table = state_array(state["request_table"], "environment.request_table",
                            length=n * m * k, low=0.0)
        budget = state_array(state["budget"], "environment.budget", length=k, low=0.0)
        rnd = check_round(state["round"], "environment")
        self.means, self.request_table = means.reshape(n, m), table.reshape(n, m, k)
        self.budget, self.round = budget, rnd
        self._reset_caches()

    # -- drift ----------------------------------------------------------------------------
    def _mean_bounds(self) -> tuple[float, float]:
        """The range the means live in: ``mean_range`` shrunk by ``mean_heterogeneity``."""
        lo, hi = self._pair(self.mean_range, "mean_range")
        mid, h = 0.5 * (lo + hi), float(self.mean_heterogeneity)
        return (lo, hi) if h == 1.0 else (mid - h * (mid - lo), mid + h * (hi - mid))

    def _walk_sum(self, t: int) -> np.ndarray:
        """Σ_{s=1..t} of the random walk's N(0, 1) steps, (n, m) (advanced incrementally)."""
        t0, total = self._walk
        if t < t0:
            t0, total = 0, np.zeros_like(self.means)
        total = total.copy()
        for s in range(t0 + 1, t + 1):
            total += np.random.default_rng([self.seed, _DRIFT_STREAM, s]).standard_normal(
                self.means.shape)
        self._walk = (t, total)
        return total

    def means_at(self, t: int) -> np.ndarray:
        """True means (n, m) at round ``t`` (the drawn ones without drift or at t = 0)."""
        rate = float(self.drift_rate)
        if self.drift == "none" or rate == 0.0 or t <= 0:
            return self.means
        lo, hi = self._mean_bounds()
        if self.drift == "random_walk":
            return fold(self.means + rate * self._walk_sum(t), lo, hi)
        if hi <= lo:
            return self.means
        if self._phase is None:
            z = np.clip(2 * (self.means - lo) / (hi - lo) - 1, -1.0, 1.0)
            up = np.random.default_rng([self.seed, _PHASE_STREAM]).random(z.shape) < 0.5
            self._phase = np.where(up, np.arcsin(z), np.pi - np.arcsin(z))
        return lo + (hi - lo) * 0.5 * (1 + np.sin(2 * np.pi * rate * t + self._phase))

    # -- churn ----------------------------------------------------------------------------
    def _rates(self) -> tuple[float, float]:
        p = float(self.churn_rate)
        return p, p if self.join_rate is None else float(self.join_rate)

    def active_at(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(active at round t − 1, active at round t): two (n,) bool masks. Before round 1
        nobody is active; without churn everyone is active from round 1 (and at round 0)."""
        n = self.n_agents
        p, q = self._rates()
        if p == 0.0:
            everyone = np.ones(n, dtype=bool)
            return (np.zeros(n, bool) if t == 1 else everyone), everyone
        t = max(t, 1)
        if self._churn is None or t < self._churn[0]:
            share = q / (p + q)
            first = np.random.default_rng([self.seed, _CHURN_STREAM, 1]).random(n) < share
            self._churn = (1, np.zeros(n, dtype=bool), first)
        s, prev, cur = self._churn
        while s < t:
            s += 1
            u = np.random.default_rng([self.seed, _CHURN_STREAM, s]).random(n)
            prev, cur = cur, np.where(cur, u >= p, u < q)
        self._churn = (s, prev, cur)
        return prev, cur

    # -- the Environment protocol ---------------------------------------------------------
    def requests(self, t: int = 0) -> EnvironmentRound:
        """Every active agent requests every option; ids are agent indices (ints)."""
        t = as_round(t)
        self.round = t
        n, m, k = self.n_agents, self.options_per_agent, self.n_resources
        if float(self.churn_rate) == 0.0:
            idx = np.repeat(np.arange(n), m)
            opts = np.tile(np.arange(m), n)
            request = RoundRequest.build(idx.tolist(), self.request_table.reshape(n * m, k),
                                         self.budget, opts, n_resources=k)
            joined = np.arange(n) if t == 1 else np.zeros(0, np.int64)
            return EnvironmentRound(request, idx, joined=joined)
        prev, cur = self.active_at(t)
        agents = np.flatnonzero(cur)
        idx = np.repeat(agents, m)
        opts = np.tile(np.arange(m), len(agents))
        request = RoundRequest.build(idx.tolist(), self.request_table[agents].reshape(-1, k),
                                     self.budget, opts, n_resources=k)
        left = np.flatnonzero(prev & ~cur)
        return EnvironmentRound(request, idx, left=left, left_ids=left.tolist(),
                                joined=np.flatnonzero(cur & ~prev))

    def expected(self, agent_index: np.ndarray, options: np.ndarray, t: int | None = None
                 ) -> np.ndarray:
        """True mean reward (N,) of rows at round ``t`` (default: the latest requested)."""
        return self.means_at(self.round if t is None else t)[agent_index, options]

    def sample(self, agent_index, options, rng: np.random.Generator, t: int | None = None
               ) -> np.ndarray:
        """Realized rewards (N,) of the given rows, drawn with ``rng``."""
        mu = self.expected(np.asarray(agent_index), np.asarray(options), t)
        return sample_rewards(self.reward_family, mu, rng, noise_std=self.noise_std,
                              beta_concentration=self.beta_concentration)

    def feedback_delays(self, agent_index, options, rng: np.random.Generator) -> np.ndarray:
        """(m,) rounds until each outcome arrives; -1: it never arrives."""
        return draw_delays(len(agent_index), self._delay, float(self.missing_prob), rng)
