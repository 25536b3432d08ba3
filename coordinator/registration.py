"""Registration of submitters: who may submit for which agents, and with which credential.

:class:`Registrations` is a part of :class:`~coordinator.core.Coordinator` (a mixin: it uses
the coordinator's submitter table, transport, policy, journal and lock). Every change is
journaled (``REG``, ``UNREG``, ``LEAVE``) and replayed through the same ``_apply_*`` methods.
"""

from __future__ import annotations

import secrets

from agents.protocol import Registration
from coordinator.errors import CredentialError, OwnershipError
from coordinator.wire import MAX_ID_CHARS, check_ids, hash_token, plain_ids, plain_str
from librex_alloc import InvalidInputError


class Registrations:
    """The registration side of the coordinator (see the module docstring)."""

    def register(self, name: str, agent_ids, handle=None, token: str | None = None
                 ) -> Registration:
        """Register submitter ``name`` for ``agent_ids``; returns its credential.

        handle: how the transport reaches it (its Ray actor handle; in-process, the object),
        else it is found by name. A name already registered may register again:

        - with its current ``token``: a new credential is returned, the old one revoked;
        - with the same handle (a restarted actor, which lost its credential): the returned
          :class:`Registration` carries no token. The new credential travels with the next
          exchange *to that handle*, so only the actor itself can receive it; an actor that
          still holds the current credential (a live one: someone else called register with
          its handle) keeps it, nothing is revoked, and the attempt is counted in
          ``rejected_forged``.

        The agents it owned stay its own (their posteriors are untouched). Agents owned by
        another submitter are refused (:class:`OwnershipError`, counted in
        ``rejected_not_owner``); a re-registration that proves nothing is a
        :class:`CredentialError` (``rejected_forged``)."""
        if plain_str(name) is None:
            raise InvalidInputError(f"name: expected a non-empty str of at most "
                                    f"{MAX_ID_CHARS} characters (UTF-8)")
        ids = check_ids(plain_ids(agent_ids))
        try:
            for a in ids:
                if type(a) is str:
                    a.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError("agent_ids: an id is not valid UTF-8 text") from None
        with self._lock:
            table = self.submitters
            taken = table.taken(name, ids)
            if taken:
                self._reject("rejected_not_owner")
                self._commit()
                raise OwnershipError(f"register {name!r}: agent {taken[0]!r} is owned by "
                                     f"{table.owner[taken[0]]!r} ({len(taken)} taken)")
            sub = table.entries.get(name)
            holds = table.holds(name, token)
            if sub is not None and not (
                    holds or (handle is not None and getattr(self.transport, "same",
                                                             lambda n, h: False)(name, handle))):
                self._reject("rejected_forged")
                self._commit()
                raise CredentialError(f"register {name!r}: already registered; only the same "
                                      f"actor or the holder of its credential may register "
                                      f"again")
            new = table.unowned(ids)
            if sub is not None and not holds:
                # the same handle, no credential: offer one through the handle
                table.offer(sub, new, by_register=True)
                return Registration(name, None, self.round + 1)
            if handle is not None and hasattr(self.transport, "bind"):
                self.transport.bind(name, handle)
            token = secrets.token_hex(16)
            self._apply_register(name, hash_token(token), new)
            self._log("REG", {"name": name, "token_hash": hash_token(token)}, new)
            self._commit()
            return Registration(name, token, self.round + 1)

    def unregister(self, token: str) -> int:
        """The submitter leaves with all its agents (their posteriors and pending outcomes are
        dropped); returns the number of agents removed."""
        with self._lock:
            name = self._auth(token)
            n = len(self.submitters[name].agents)
            self._apply_unregister(name)
            self._log("UNREG", {"name": name})
            self._commit()
            return n

    def leave(self, token: str, agent_ids) -> int:
        """Some of the submitter's agents leave; returns how many."""
        ids = check_ids(plain_ids(agent_ids))
        with self._lock:
            name = self._auth(token)
            if not self.submitters.owns_all(name, ids):
                self._reject("rejected_not_owner")
                self._commit()
                raise OwnershipError(f"leave: {name!r} does not own all of these agents")
            self._apply_leave(name, ids)
            self._log("LEAVE", {"name": name}, ids)
            self._commit()
            return len(ids)

    def _auth(self, token) -> str:
        name = self.submitters.name_of(token)
        if name is None:
            self._reject("rejected_forged")
            self._commit()
            raise CredentialError("unknown or revoked credential")
        return name

    def _apply_register(self, name: str, token_hash: str, new_ids: list) -> None:
        self.submitters.register(name, token_hash, new_ids)

    def _forget_agents(self, ids: list) -> None:
        known = [a for a in ids if a in self.policy.registry]
        if known:
            self.policy.remove_agents(known)
        self.submitters.release(ids)  # freed slots may be reused: cached slots forgotten
        self._prev_key = None

    def _apply_unregister(self, name: str) -> None:
        self._forget_agents(self.submitters.unregister(name))

    def _apply_leave(self, name: str, ids: list) -> None:
        self.submitters.leave(name, ids)
        self._forget_agents(ids)
