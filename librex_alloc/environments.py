"""Synthetic environments: agents with hidden reward means and fixed multi-resource requests.

``SyntheticEnvironment`` draws, once from its seed, each agent's true mean reward per option
(uniform in ``mean_range``) and request vector per option (uniform in ``request_range`` per
resource, times a per-agent size factor when ``heterogeneity > 0``). The per-round budget is
``B = tightness · Σ_i r_i`` (first option of every agent). Rewards are Bernoulli(μ),
Beta with mean μ (``beta_concentration``), or Gaussian(μ, ``noise_std``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from librex_alloc._validation import check_scalar
from librex_alloc.errors import InvalidConfigError

FAMILIES = ("bernoulli", "beta", "gaussian")


@dataclass(frozen=True)
class RoundRequests:
    """One round's requests: ``agent_ids`` (N,), ``options`` (N,), ``requests`` (N, K),
    ``budget`` (K,), ``agent_index`` (N,) ints into the environment's agent arrays."""

    agent_ids: list
    options: np.ndarray
    requests: np.ndarray
    budget: np.ndarray
    agent_index: np.ndarray


@dataclass
class SyntheticEnvironment:
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
    means: np.ndarray = field(init=False, repr=False)
    request_table: np.ndarray = field(init=False, repr=False)
    budget: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.n_agents, int) or self.n_agents < 1:
            raise InvalidConfigError("n_agents: expected an int ≥ 1")
        if not isinstance(self.n_resources, int) or self.n_resources < 1:
            raise InvalidConfigError("n_resources: expected an int ≥ 1")
        if not isinstance(self.options_per_agent, int) or self.options_per_agent < 1:
            raise InvalidConfigError("options_per_agent: expected an int ≥ 1")
        if self.reward_family not in FAMILIES:
            raise InvalidConfigError(f"reward_family: expected one of {FAMILIES}")
        check_scalar(self.tightness, "tightness", low=0.0)
        check_scalar(self.heterogeneity, "heterogeneity", low=0.0)
        lo, hi = self.mean_range
        if self.reward_family != "gaussian" and not (0 <= lo <= hi <= 1):
            raise InvalidConfigError("mean_range: must lie in [0, 1] for bounded rewards")
        rlo, rhi = self.request_range
        if not (0 <= rlo <= rhi):
            raise InvalidConfigError("request_range: expected 0 ≤ low ≤ high")
        rng = np.random.default_rng(self.seed)
        n, m, k = self.n_agents, self.options_per_agent, self.n_resources
        self.means = rng.uniform(lo, hi, size=(n, m))
        size = np.exp(self.heterogeneity * rng.standard_normal(n))[:, None, None]
        self.request_table = rng.uniform(rlo, rhi, size=(n, m, k)) * size
        self.budget = self.tightness * self.request_table[:, 0, :].sum(axis=0)

    def requests(self, t: int = 0) -> RoundRequests:
        """Every agent requests every option, every round."""
        n, m, k = self.n_agents, self.options_per_agent, self.n_resources
        idx = np.repeat(np.arange(n), m)
        opts = np.tile(np.arange(m), n)
        return RoundRequests(idx.tolist(), opts, self.request_table.reshape(n * m, k).copy(),
                             self.budget.copy(), idx)

    def expected(self, agent_index: np.ndarray, options: np.ndarray) -> np.ndarray:
        """True mean reward of rows."""
        return self.means[agent_index, options]

    def sample(self, agent_index, options, rng: np.random.Generator) -> np.ndarray:
        """Realized rewards of the given rows."""
        mu = self.expected(np.asarray(agent_index), np.asarray(options))
        if self.reward_family == "bernoulli":
            return (rng.random(mu.shape) < mu).astype(np.float64)
        if self.reward_family == "beta":
            c = self.beta_concentration
            m = np.clip(mu, 1e-6, 1 - 1e-6)
            return rng.beta(m * c, (1 - m) * c)
        return mu + self.noise_std * rng.standard_normal(mu.shape)
