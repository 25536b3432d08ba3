"""librex-alloc: constrained Thompson sampling for multi-agent resource allocation.

The pure library (no Ray import): posteriors, budget oracles, fairness, policies,
environments, metrics and the simulator. ``agents/`` and ``coordinator/`` wrap it in Ray.

The public names below are imported on first use (:mod:`librex_alloc.lazy`): ``import
librex_alloc`` or ``import librex_alloc.config`` loads no numerical back end (CP-SAT, SciPy,
pandas, pyarrow) until a name that needs one is used.
"""

from typing import TYPE_CHECKING

from librex_alloc.lazy import lazy_module

if TYPE_CHECKING:
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

#: public name -> the module it is imported from on first use (the same as the block above).
_WHERE = {
    "BudgetTracker": "librex_alloc.api",
    "LibrexAlloc": "librex_alloc.api",
    "ResourceManager": "librex_alloc.api",
    "load_state": "librex_alloc.checkpoint",
    "save_state": "librex_alloc.checkpoint",
    "PolicyConfig": "librex_alloc.config",
    "AlibabaGpuEnvironment": "librex_alloc.environments",
    "BitbrainsEnvironment": "librex_alloc.environments",
    "Environment": "librex_alloc.environments",
    "EnvironmentRound": "librex_alloc.environments",
    "OrlibEnvironment": "librex_alloc.environments",
    "SyntheticEnvironment": "librex_alloc.environments",
    "InvalidConfigError": "librex_alloc.errors",
    "InvalidInputError": "librex_alloc.errors",
    "LibrexError": "librex_alloc.errors",
    "NotAllocatedError": "librex_alloc.errors",
    "OracleError": "librex_alloc.errors",
    "StateError": "librex_alloc.errors",
    "UnknownAgentError": "librex_alloc.errors",
    "FairnessConfig": "librex_alloc.fairness",
    "OutcomeLedger": "librex_alloc.ledger",
    "OracleResult": "librex_alloc.oracles",
    "solve": "librex_alloc.oracles",
    "POLICIES": "librex_alloc.policies",
    "Allocation": "librex_alloc.policies",
    "AllocationPolicy": "librex_alloc.policies",
    "ConstrainedThompsonSampling": "librex_alloc.policies",
    "make_policy": "librex_alloc.policies",
    "RoundRequest": "librex_alloc.request",
    "simulate": "librex_alloc.simulation",
    "summarize": "librex_alloc.simulation",
}

__getattr__, __dir__ = lazy_module(__name__, _WHERE)

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
