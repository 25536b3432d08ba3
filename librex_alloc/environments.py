"""Environments: where a simulation's requests and rewards come from.

:class:`Environment` is the protocol :func:`~librex_alloc.simulation.simulate` is typed to:
the requests of round t (an :class:`EnvironmentRound`: a
:class:`~librex_alloc.request.RoundRequest` and each row's index into the environment's
agents), the true expected reward of rows, sampled rewards, and ``get_state`` / ``set_state``.

Synthetic environments: agents with hidden reward means and fixed multi-resource requests.

``SyntheticEnvironment`` draws, once from its seed, each agent's true mean reward per option
(uniform in ``mean_range``) and request vector per option (uniform in ``request_range`` per
resource, times a per-agent size factor when ``heterogeneity > 0``). The per-round budget is
``B = tightness · Σ_i r_i`` (first option of every agent). Rewards are Bernoulli(μ),
Beta with mean μ (``beta_concentration``), or Gaussian(μ, ``noise_std``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol, runtime_checkable

import numpy as np

from librex_alloc._validation import check_scalar, expect_keys, state_array
from librex_alloc.errors import InvalidConfigError, StateError
from librex_alloc.request import RoundRequest

FAMILIES = ("bernoulli", "beta", "gaussian")


@dataclass(frozen=True)
class EnvironmentRound:
    """One round of an environment: the ``request`` the policy sees and ``agent_index`` (N,),
    each row's index into the environment's own agent arrays."""

    request: RoundRequest
    agent_index: np.ndarray


@runtime_checkable
class Environment(Protocol):
    """What :func:`~librex_alloc.simulation.simulate` needs of an environment."""

    n_agents: int
    n_resources: int
    reward_family: str  # "bernoulli" / "beta" (rewards in [0, 1]) or "gaussian"

    def requests(self, t: int) -> EnvironmentRound:
        """Round ``t``'s option rows and budget."""

    def expected(self, agent_index: np.ndarray, options: np.ndarray) -> np.ndarray:
        """True mean reward (N,) of rows."""

    def sample(self, agent_index: np.ndarray, options: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """Realized rewards (N,) of rows, drawn with ``rng``."""

    def get_state(self) -> dict:
        """Everything that defines the environment, as a state dict."""

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output; :class:`StateError` on a bad state."""


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

    def config(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def get_state(self) -> dict:
        cfg = self.config()
        cfg["mean_range"], cfg["request_range"] = list(cfg["mean_range"]), \
            list(cfg["request_range"])
        return {"config": cfg, "means": self.means.ravel().copy(),
                "request_table": self.request_table.ravel().copy(), "budget": self.budget.copy()}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output; the configuration must equal this one's."""
        state = expect_keys(state, ("config", "means", "request_table", "budget"),
                            "environment")
        mine = self.get_state()["config"]
        if state["config"] != mine:
            raise StateError("environment: the state's configuration differs from this one's")
        n, m, k = self.n_agents, self.options_per_agent, self.n_resources
        lo, hi = (None, None) if self.reward_family == "gaussian" else (0.0, 1.0)
        means = state_array(state["means"], "environment.means", length=n * m, low=lo, high=hi)
        table = state_array(state["request_table"], "environment.request_table",
                            length=n * m * k, low=0.0)
        budget = state_array(state["budget"], "environment.budget", length=k, low=0.0)
        self.means, self.request_table = means.reshape(n, m), table.reshape(n, m, k)
        self.budget = budget

    def requests(self, t: int = 0) -> EnvironmentRound:
        """Every agent requests every option, every round."""
        n, m, k = self.n_agents, self.options_per_agent, self.n_resources
        idx = np.repeat(np.arange(n), m)
        opts = np.tile(np.arange(m), n)
        request = RoundRequest.build(idx.tolist(), self.request_table.reshape(n * m, k),
                                     self.budget, opts, n_resources=k)
        return EnvironmentRound(request, idx)

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
