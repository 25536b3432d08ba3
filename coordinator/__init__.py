"""The algorithm side of the runtime: the coordinator and its driver.

:class:`Coordinator` is a plain class (no Ray); :mod:`coordinator.actor` wraps it as a Ray
actor and :func:`run_job` drives a whole job. Names are imported on first use: importing this
package loads neither Ray nor the core library (a process that only talks to the coordinator
actor stays small).
"""

from importlib import import_module

_WHERE = {
    "Coordinator": "coordinator.core",
    "CoordinatorConfig": "coordinator.core",
    "LocalTransport": "coordinator.core",
    "Transport": "coordinator.core",
    "ProtocolError": "coordinator.errors",
    "CredentialError": "coordinator.errors",
    "OwnershipError": "coordinator.errors",
    "ReplayError": "coordinator.errors",
    "run_job": "coordinator.job",
}

__all__ = list(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'coordinator' has no attribute {name!r}")
