"""Errors of the runtime protocol. Each is a :class:`librex_alloc.LibrexError` (a ValueError):
a call that raises one has changed nothing except the rejection counters."""

from __future__ import annotations

from librex_alloc import LibrexError


class ProtocolError(LibrexError):
    """A submitter broke the protocol (base class)."""


class CredentialError(ProtocolError):
    """An unknown, forged or revoked credential."""


class OwnershipError(ProtocolError):
    """A submission, report or registration for agents owned by another submitter (or by
    nobody)."""


class ReplayError(ProtocolError):
    """A report for (round, agent) pairs that were already reported under another report id."""


class JobError(LibrexError):
    """A job cannot start or resume (a folder or coordinator name held by a running job, a
    resume with nothing to resume, another configuration, an unreadable or damaged
    checkpoint). The message is one line; ``librex-alloc run`` prints it and exits 2."""


__all__ = ["ProtocolError", "CredentialError", "OwnershipError", "ReplayError", "JobError"]
