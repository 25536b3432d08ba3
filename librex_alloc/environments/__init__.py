"""Environments: where a simulation's requests and rewards come from.

:class:`Environment` (in :mod:`.base`) is the protocol
:func:`~librex_alloc.simulation.simulate` is typed to. Implementations, all vectorized, all
with a validated ``get_state`` / ``set_state``:

- :class:`SyntheticEnvironment` (:mod:`.synthetic`): reward family, tightness,
  heterogeneity of means and request sizes, options per agent, drift, churn, delayed and
  missing feedback.
- :class:`OrlibEnvironment` (:mod:`.orlib`): OR-Library ``mknap1`` instances, profits scaled
  to [0, 1] as Bernoulli means.
- :class:`AlibabaGpuEnvironment`, :class:`BitbrainsEnvironment` (:mod:`.traces`): real traces,
  read from files (the mapping from trace to agents, requests, budget and reward is in
  :mod:`.traces`' docstring).
"""

from librex_alloc.environments.base import (
    DATA_ENV_VAR,
    FAMILIES,
    Environment,
    EnvironmentRound,
    find_data,
)
from librex_alloc.environments.orlib import OrlibEnvironment
from librex_alloc.environments.synthetic import DRIFTS, SyntheticEnvironment
from librex_alloc.environments.traces import (
    AlibabaGpuEnvironment,
    BitbrainsEnvironment,
    load_alibaba,
    load_bitbrains,
)

__all__ = [
    "Environment",
    "EnvironmentRound",
    "FAMILIES",
    "DRIFTS",
    "DATA_ENV_VAR",
    "find_data",
    "SyntheticEnvironment",
    "OrlibEnvironment",
    "AlibabaGpuEnvironment",
    "BitbrainsEnvironment",
    "load_alibaba",
    "load_bitbrains",
]
