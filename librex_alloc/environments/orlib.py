"""OR-Library multidimensional knapsack instances as a bandit environment.

``OrlibEnvironment(instance=j)`` reads instance j (0-based, 0–6) of Beasley's ``mknap1``
file with :func:`librex_alloc.datasets.load_mknap`: item i is agent i with one option; its
request is the item's weight column, (K,) in the file's units; the per-round budget is the
capacity vector; the true mean reward of agent i is its profit scaled to [0, 1],
``μ_i = p_i / max_j p_j``, and rewards are Bernoulli(μ_i). Scaling is linear, so the
utilitarian optimum of the true means is the file's optimum over ``max_j p_j``
(:attr:`OrlibEnvironment.optimum`). The instance is static: every round is the same.

The file: ``path`` (the file, or a folder holding ``mknap1.txt``), else
``$LIBREX_DATA/orlib_mknap/mknap1.txt``, else ``../shared/data/orlib_mknap/mknap1.txt`` beside
the repository (:func:`~librex_alloc.environments.base.find_data`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from librex_alloc._validation import expect_keys, state_array
from librex_alloc.datasets import load_mknap
from librex_alloc.environments.base import (
    EnvironmentRound,
    as_round,
    check_config,
    check_int,
    check_round,
    find_data,
    sample_rewards,
)
from librex_alloc.errors import InvalidConfigError
from librex_alloc.request import RoundRequest

MKNAP_FILE = "mknap1.txt"


@dataclass
class OrlibEnvironment:
    """Instance ``instance`` of ``mknap1``; ``seed`` is accepted for uniformity (the instance
    is fixed; rewards are drawn with the simulator's generator)."""

    instance: int = 0
    path: str | None = None
    seed: int = 0
    reward_family: str = field(default="bernoulli", init=False)
    n_agents: int = field(init=False)
    n_resources: int = field(init=False)
    means: np.ndarray = field(init=False, repr=False)
    request_table: np.ndarray = field(init=False, repr=False)
    budget: np.ndarray = field(init=False, repr=False)
    optimum: float = field(init=False)

    def __post_init__(self):
        check_int(self.instance, "instance")
        check_int(self.seed, "seed")
        if self.path is not None and not isinstance(self.path, (str, os.PathLike)):
            raise InvalidConfigError(f"path: expected a file or folder path, got {self.path!r}")
        instances = load_mknap(find_data(self.path, "orlib_mknap", MKNAP_FILE))
        if self.instance >= len(instances):
            raise InvalidConfigError(f"instance: the file has {len(instances)} instances "
                                     f"(0–{len(instances) - 1}), got {self.instance}")
        inst = instances[self.instance]
        top = float(inst.profits.max())
        if top <= 0:
            raise InvalidConfigError("instance: every profit is 0; nothing to scale")
        self.n_agents, self.n_resources = inst.n, inst.m
        self.means = inst.profits / top
        self.request_table = np.array(inst.weights)
        self.budget = np.array(inst.capacities)
        self.optimum = inst.optimum / top
        self.round = 0

    #: every round is the same (requests, budget, means)
    is_static = True

    def _config_state(self) -> dict:
        return {"instance": int(self.instance), "seed": int(self.seed)}

    def get_state(self) -> dict:
        """{config, means (n,), request_table (n·K,), budget (K,), round}: copies."""
        return {"config": self._config_state(), "means": self.means.copy(),
                "request_table": self.request_table.ravel().copy(),
                "budget": self.budget.copy(), "round": self.round}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output (same instance); :class:`StateError` otherwise,
        and then nothing changes."""
        state = expect_keys(state, ("config", "means", "request_table", "budget", "round"),
                            "environment")
        check_config(state, self._config_state(), "environment")
        n, k = self.n_agents, self.n_resources
        means = state_array(state["means"], "environment.means", length=n, low=0.0, high=1.0)
        table = state_array(state["request_table"], "environment.request_table",
                            length=n * k, low=0.0)
        budget = state_array(state["budget"], "environment.budget", length=k, low=0.0)
        rnd = check_round(state["round"], "environment")
        self.means, self.request_table, self.budget = means, table.reshape(n, k), budget
        self.round = rnd

    def requests(self, t: int = 0) -> EnvironmentRound:
        """Every item, every round; ids are item indices."""
        self.round = as_round(t)
        idx = np.arange(self.n_agents)
        request = RoundRequest.build(idx.tolist(), self.request_table, self.budget,
                                     np.zeros(self.n_agents, np.int64),
                                     n_resources=self.n_resources)
        return EnvironmentRound(request, idx,
                                joined=idx if self.round == 1 else np.zeros(0, np.int64))

    def expected(self, agent_index, options, t: int | None = None) -> np.ndarray:
        """True means (N,) of rows (one option per item)."""
        return self.means[np.asarray(agent_index)]

    def sample(self, agent_index, options, rng: np.random.Generator, t: int | None = None
               ) -> np.ndarray:
        """Bernoulli rewards (N,) of rows."""
        return sample_rewards("bernoulli", self.expected(agent_index, options), rng)
