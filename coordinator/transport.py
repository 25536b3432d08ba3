"""How the coordinator reaches submitters by name: the :class:`Transport` protocol and the
in-process :class:`LocalTransport` (the Ray one is :class:`coordinator.actor.RayTransport`)."""

from __future__ import annotations

from typing import Protocol

from agents.protocol import Exchange


class Transport(Protocol):
    """How the coordinator reaches submitters by name."""

    def send(self, name: str, msg: Exchange) -> object:
        """Start one exchange; returns a ticket."""

    def wait(self, tickets: list, timeout: float) -> list[tuple[object, object]]:
        """Wait until every ticket is done or ``timeout`` seconds pass; returns
        ``(ticket, Reply or the exception raised)`` for the finished ones."""


class LocalTransport:
    """In-process transport: ``submitters`` maps names to objects with ``exchange(msg)``.
    Calls run synchronously in :meth:`send`; a missing or raising submitter fails the call."""

    def __init__(self, submitters: dict | None = None):
        self.submitters = dict(submitters or {})
        self.calls = 0

    def add(self, submitter) -> None:
        self.submitters[submitter.name] = submitter

    def bind(self, name: str, submitter) -> None:
        self.submitters[name] = submitter

    def same(self, name: str, submitter) -> bool:
        return self.submitters.get(name) is submitter

    def send(self, name: str, msg: Exchange) -> object:
        self.calls += 1
        try:
            target = self.submitters[name]
            return Ticket(target.exchange(msg))
        except Exception as exc:  # a failed call, as a dead actor would give
            return Ticket(exc)

    def wait(self, tickets: list, timeout: float) -> list[tuple[object, object]]:
        return [(t, t.result) for t in tickets]


class Ticket:
    """A finished in-process call (hashable by identity)."""

    __slots__ = ("result",)

    def __init__(self, result):
        self.result = result
