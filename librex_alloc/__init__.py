"""librex-alloc: constrained Thompson sampling for multi-agent resource allocation.

The pure library (no Ray import): posteriors, budget oracles, fairness, policies,
environments, metrics and the simulator. ``agents/`` and ``coordinator/`` wrap it in Ray.
"""

from librex_alloc.api import BudgetTracker, LibrexAlloc, ResourceManager
from librex_alloc.checkpoint import load_state, save_state
from librex_alloc.config import PolicyConfig
from librex_alloc.environments import (
    AlibabaGpuEnvironment,
    BitbrainsEnvironment,
    Environment,
    EnvironmentRound,
    OrlibEnvironment,
    SyntheticEnvironment,
)
from librex_alloc.errors import (
    InvalidConfigError,
    InvalidInputError,
    LibrexError,
    NotAllocatedError,
    OracleError,
    StateError,
    UnknownAgentError,
)
from librex_alloc.fairness import FairnessConfig
from librex_alloc.ledger import OutcomeLedger
from librex_alloc.oracles import OracleResult, solve
from librex_alloc.policies import (
    POLICIES,
    Allocation,
    AllocationPolicy,
    ConstrainedThompsonSampling,
    make_policy,
)
from librex_alloc.request import RoundRequest
from librex_alloc.simulation import simulate, summarize

__version__ = "0.1.0"

__all__ = [
    "LibrexAlloc",
    "ResourceManager",
    "BudgetTracker",
    "AllocationPolicy",
    "ConstrainedThompsonSampling",
    "make_policy",
    "POLICIES",
    "Allocation",
    "FairnessConfig",
    "PolicyConfig",
    "RoundRequest",
    "OutcomeLedger",
    "Environment",
    "EnvironmentRound",
    "SyntheticEnvironment",
    "OrlibEnvironment",
    "AlibabaGpuEnvironment",
    "BitbrainsEnvironment",
    "simulate",
    "summarize",
    "save_state",
    "load_state",
    "solve",
    "OracleResult",
    "LibrexError",
    "InvalidInputError",
    "InvalidConfigError",
    "UnknownAgentError",
    "NotAllocatedError",
    "StateError",
    "OracleError",
]
