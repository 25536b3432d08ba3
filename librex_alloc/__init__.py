"""librex-alloc: constrained Thompson sampling for multi-agent resource allocation.

The pure library (no Ray import): posteriors, budget oracles, fairness, policies,
environments, metrics and the simulator. ``agents/`` and ``coordinator/`` wrap it in Ray.
"""

from librex_alloc.api import BudgetTracker, LibrexAlloc, ResourceManager
from librex_alloc.errors import (
    InvalidConfigError,
    InvalidInputError,
    LibrexError,
    NotAllocatedError,
    StateError,
    UnknownAgentError,
)
from librex_alloc.fairness import FairnessConfig
from librex_alloc.oracles import OracleResult, solve
from librex_alloc.policies import Allocation, AllocationPolicy, ConstrainedThompsonSampling

__version__ = "0.1.0"

__all__ = [
    "LibrexAlloc",
    "ResourceManager",
    "BudgetTracker",
    "AllocationPolicy",
    "ConstrainedThompsonSampling",
    "Allocation",
    "FairnessConfig",
    "solve",
    "OracleResult",
    "LibrexError",
    "InvalidInputError",
    "InvalidConfigError",
    "UnknownAgentError",
    "NotAllocatedError",
    "StateError",
]
