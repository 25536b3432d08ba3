"""The algorithm side of the runtime: the coordinator and its driver.

:class:`Coordinator` is a plain class (no Ray); :mod:`coordinator.actor` wraps it as a Ray
actor and :func:`run_job` drives a whole job. Names are imported on first use (the core's
:mod:`librex_alloc.lazy`): importing this package loads neither Ray nor the core library's
modules (a process that only talks to the coordinator actor stays small).
"""

from typing import TYPE_CHECKING

from librex_alloc.lazy import lazy_module

if TYPE_CHECKING:
    from coordinator.config import CoordinatorConfig
    from coordinator.core import Coordinator
    from coordinator.errors import CredentialError, OwnershipError, ProtocolError, ReplayError
    from coordinator.job import run_job
    from coordinator.transport import LocalTransport, Transport

_WHERE = {
    "Coordinator": "coordinator.core",
    "CoordinatorConfig": "coordinator.config",
    "LocalTransport": "coordinator.transport",
    "Transport": "coordinator.transport",
    "ProtocolError": "coordinator.errors",
    "CredentialError": "coordinator.errors",
    "OwnershipError": "coordinator.errors",
    "ReplayError": "coordinator.errors",
    "run_job": "coordinator.job",
}

__getattr__, __dir__ = lazy_module(__name__, _WHERE)

__all__ = [
    "Coordinator", "CoordinatorConfig", "LocalTransport", "Transport", "ProtocolError",
    "CredentialError", "OwnershipError", "ReplayError", "run_job",
]
