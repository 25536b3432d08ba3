"""The sampling side of the runtime: agent shards and live agents (no Ray import here).

:class:`AgentShard` hosts many simulated agents of one environment; :class:`LiveAgentHost`
wraps a user's :class:`LiveAgent` objects. Both speak the protocol of :mod:`agents.protocol`
to the coordinator; :mod:`agents.actors` places them in Ray actors. Names are imported on
first use, so a live-agent process does not load the core library (numpy only).
"""

from importlib import import_module

_WHERE = {
    "AgentShard": "agents.shard",
    "LiveAgent": "agents.live",
    "LiveAgentHost": "agents.live",
    "Grant": "agents.live",
    "Submitter": "agents.protocol",
    "Submission": "agents.protocol",
    "GrantBatch": "agents.protocol",
    "Report": "agents.protocol",
    "Exchange": "agents.protocol",
    "Reply": "agents.protocol",
    "Registration": "agents.protocol",
}

__all__ = list(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
