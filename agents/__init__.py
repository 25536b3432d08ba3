"""The sampling side of the runtime: agent shards and live agents (no Ray import here).

:class:`AgentShard` hosts many simulated agents of one environment; :class:`LiveAgentHost`
wraps a user's :class:`LiveAgent` objects. Both speak the protocol of :mod:`agents.protocol`
to the coordinator; :mod:`agents.actors` places them in Ray actors. Names are imported on
first use (the core's :mod:`librex_alloc.lazy`), so a live-agent process does not load the
core library's modules (numpy only).
"""

from typing import TYPE_CHECKING

from librex_alloc.lazy import lazy_module

if TYPE_CHECKING:
    from agents.live import Grant, LiveAgent, LiveAgentHost
    from agents.protocol import (
        Exchange,
        GrantBatch,
        Registration,
        Reply,
        Report,
        Submission,
        Submitter,
    )
    from agents.shard import AgentShard

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

__getattr__, __dir__ = lazy_module(__name__, _WHERE)

__all__ = [
    "AgentShard", "LiveAgent", "LiveAgentHost", "Grant", "Submitter", "Submission", "GrantBatch",
    "Report", "Exchange", "Reply", "Registration",
]
