"""The one exception family of librex-alloc.

Every error raised for bad input or bad configuration is a :class:`LibrexError`, which is a
``ValueError``; a call that raises one has changed no state.
"""

from __future__ import annotations


class LibrexError(ValueError):
    """Base class of every librex-alloc input or configuration error."""


class InvalidInputError(LibrexError):
    """An argument has a wrong shape, a NaN or infinite value, or a value out of range."""


class InvalidConfigError(LibrexError):
    """A constructor or method received an unknown mode, method or an out-of-range setting."""


class UnknownAgentError(LibrexError):
    """An agent id that the policy does not know (never requested, or removed)."""


class NotAllocatedError(LibrexError):
    """An outcome for a (round, agent) that was not allocated, or whose round has expired."""


class StateError(LibrexError):
    """A state dictionary or checkpoint that cannot be restored into this object."""


class OracleError(LibrexError):
    """A solver failed on input that passed validation (reported instead of its own error)."""


__all__ = [
    "LibrexError",
    "InvalidInputError",
    "InvalidConfigError",
    "UnknownAgentError",
    "NotAllocatedError",
    "StateError",
    "OracleError",
]
