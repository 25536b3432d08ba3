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

from typing import TYPE_CHECKING

from librex_alloc.lazy import lazy_module

if TYPE_CHECKING:
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

# Imported on first use: a synthetic environment does not load the trace readers (pandas).
_WHERE = {
    "DATA_ENV_VAR": "librex_alloc.environments.base",
    "FAMILIES": "librex_alloc.environments.base",
    "Environment": "librex_alloc.environments.base",
    "EnvironmentRound": "librex_alloc.environments.base",
    "find_data": "librex_alloc.environments.base",
    "OrlibEnvironment": "librex_alloc.environments.orlib",
    "DRIFTS": "librex_alloc.environments.synthetic",
    "SyntheticEnvironment": "librex_alloc.environments.synthetic",
    "AlibabaGpuEnvironment": "librex_alloc.environments.traces",
    "BitbrainsEnvironment": "librex_alloc.environments.traces",
    "load_alibaba": "librex_alloc.environments.traces",
    "load_bitbrains": "librex_alloc.environments.traces",
}

__getattr__, __dir__ = lazy_module(__name__, _WHERE)

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
