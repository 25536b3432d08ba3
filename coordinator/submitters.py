"""The submitter table: who is registered, under which credential, owning which agents, and
how its calls are going (credentials, ownership, health).

:class:`SubmitterTable` holds plain data and answers questions about it; it journals nothing
and counts nothing. The coordinator decides, journals each change (``REG``, ``UNREG``,
``LEAVE``) and then applies it here, so a replay of the journal applies the same changes in
the same order. Credentials are kept only as hashes (:func:`coordinator.wire.hash_token`);
exchanges are signed and replies' proofs checked with HMACs keyed by those hashes
(:mod:`agents.protocol`).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from agents.protocol import Exchange, proof_from_hash
from coordinator.journal import encode_ids
from coordinator.wire import hash_token
from librex_alloc import RoundRequest


@dataclass
class SubmitterEntry:
    """One registered submitter. ``name``, ``token_hash`` and ``agents`` are its durable
    state (snapshots, journal); the rest is rebuilt after a restart."""

    name: str
    token_hash: str
    agents: list = field(default_factory=list)
    # runtime only (rebuilt after a restart)
    index: pd.Index | None = None
    version: str | None = None
    part: RoundRequest | None = None
    expected: np.ndarray | None = None
    request_round: int = -1
    requesting: bool = False
    ticket: object = None
    ticket_round: int = -1
    ticket_time: float = 0.0
    ticket_nonce: str = ""
    ticket_offer: str | None = None  # the credential offered with the call in flight
    ticket_grants: int = -1  # round whose (non-empty) grants the call in flight carries
    ungranted_round: int = -1  # round whose grants could not be delivered
    offer: tuple | None = None  # (credential, new agent ids) sent with the next exchange
    offer_by_register: bool = False  # the offer answers a register() without credential
    renew: bool = False  # its last reply proved no credential: it should take the offer
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""
    notices: list = field(default_factory=list)
    acks_uncommitted: list = field(default_factory=list)
    acks_ready: list = field(default_factory=list)

    def owned_index(self) -> pd.Index:
        """Position of each owned agent id in ``agents`` (a hash index)."""
        if self.index is None:
            self.index = pd.Index(self.agents)
        return self.index


#: what :meth:`SubmitterTable.check_proof` found: the current credential; the current one
#: after someone else's ``register`` with the submitter's handle (refused: count it); the
#: offered one (apply the new registration); none
PROVED, KEPT, SWITCHED, FORGED = "proved", "kept", "switched", "forged"


class SubmitterTable:
    """Registered submitters by name, their credentials (hashes) and the agents they own."""

    def __init__(self):
        self.entries: dict[str, SubmitterEntry] = {}
        self.by_token: dict[str, str] = {}  # credential hash -> submitter name
        self.owner: dict = {}  # agent id -> submitter name

    # -- questions -------------------------------------------------------------------------
    def __contains__(self, name) -> bool:
        return name in self.entries

    def __getitem__(self, name: str) -> SubmitterEntry:
        return self.entries[name]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        """Names, sorted (the order every round treats them in)."""
        return iter(sorted(self.entries))

    def values(self) -> list[SubmitterEntry]:
        """Entries, sorted by name."""
        return [self.entries[n] for n in sorted(self.entries)]

    def name_of(self, token) -> str | None:
        """The submitter whose current credential is ``token`` (a str), else None."""
        return self.by_token.get(hash_token(token)) if type(token) is str else None

    def holds(self, name: str, token) -> bool:
        """Is ``token`` the current credential of ``name``?"""
        entry = self.entries.get(name)
        return entry is not None and type(token) is str and \
            hmac.compare_digest(hash_token(token), entry.token_hash)

    def taken(self, name: str, ids: list) -> list:
        """Ids among ``ids`` owned by a submitter other than ``name``."""
        return [a for a in ids if self.owner.get(a, name) != name]

    def unowned(self, ids: list) -> list:
        return [a for a in ids if a not in self.owner]

    def owns_all(self, name: str, ids) -> bool:
        return not np.any(self.entries[name].owned_index().get_indexer(ids) < 0)

    # -- changes (journaled by the coordinator before they are applied) --------------------
    def register(self, name: str, token_hash: str, new_ids: list) -> SubmitterEntry:
        """Add ``name`` (or give it a new credential), owning ``new_ids`` in addition."""
        entry = self.entries.get(name)
        if entry is None:
            entry = self.entries[name] = SubmitterEntry(name, token_hash)
        else:
            self.by_token.pop(entry.token_hash, None)
            entry.token_hash = token_hash
            entry.version, entry.part, entry.request_round = None, None, -1
        self.by_token[token_hash] = name
        for a in new_ids:
            self.owner[a] = name
        entry.agents.extend(new_ids)
        entry.index = None
        return entry

    def unregister(self, name: str) -> list:
        """Remove ``name``; returns the agents it owned (still marked as owned: see
        :meth:`release`)."""
        entry = self.entries.pop(name)
        self.by_token.pop(entry.token_hash, None)
        return entry.agents

    def leave(self, name: str, ids: list) -> None:
        """Agents ``ids`` leave submitter ``name`` (see :meth:`release`)."""
        entry = self.entries[name]
        gone = set(ids)
        entry.agents = [a for a in entry.agents if a not in gone]
        entry.index, entry.part, entry.version = None, None, None

    def release(self, ids: list) -> None:
        """Agents ``ids`` are owned by nobody."""
        for a in ids:
            self.owner.pop(a, None)

    # -- durable state ---------------------------------------------------------------------
    def state(self) -> dict:
        names = sorted(self.entries)
        ids = [a for n in names for a in self.entries[n].agents]
        id_meta, id_arrays = encode_ids(ids)
        return {
            "names": names,
            "token_hashes": [self.entries[n].token_hash for n in names],
            "counts": np.asarray([len(self.entries[n].agents) for n in names], np.int64),
            "ids": id_arrays.get("ids", id_meta.get("ids", [])),
        }

    def load(self, st: dict) -> None:
        """Register every submitter of a :meth:`state` (into an empty table)."""
        ids = st["ids"].tolist() if isinstance(st["ids"], np.ndarray) else list(st["ids"])
        bounds = np.concatenate([[0], np.cumsum(st["counts"])]).astype(int)
        for j, (name, th) in enumerate(zip(st["names"], st["token_hashes"])):
            self.register(name, th, ids[bounds[j]:bounds[j + 1]])

    # -- health ----------------------------------------------------------------------------
    @staticmethod
    def backing_off(entry: SubmitterEntry) -> bool:
        """A submitter whose calls keep failing (a dead actor fails at once) is called again
        only after 0.1 s, 0.2 s, ... up to 5 s. Only failed calls count: a slow call (late,
        or abandoned) is no failure, and any reply ends the back-off, so a late submitter
        takes part again in the next round."""
        return entry.failures >= 3 and time.monotonic() < entry.retry_at

    @staticmethod
    def failed(entry: SubmitterEntry, error: str, slow: bool) -> None:
        """A call failed (``slow``: abandoned or timed out, not counted as a failure)."""
        entry.last_error = error
        if not slow:
            entry.failures += 1
            if entry.failures >= 3:
                entry.retry_at = time.monotonic() + min(0.1 * 2 ** (entry.failures - 3), 5.0)

    @staticmethod
    def answered(entry: SubmitterEntry) -> None:
        entry.failures, entry.retry_at = 0, 0.0

    # -- credentials in the exchange -------------------------------------------------------
    @staticmethod
    def message(entry: SubmitterEntry, next_round: int, grants=None) -> Exchange:
        """The next exchange for ``entry``: a fresh nonce, signed with its credential's hash,
        carrying a credential offer if one is pending, its acknowledgements and notices."""
        offer = entry.offer[0] if entry.offer is not None else None
        nonce = secrets.token_hex(8)
        msg = Exchange(next_round, grants, entry.version, entry.acks_ready, entry.notices,
                       nonce=nonce, name=entry.name, credential=offer, renew=entry.renew,
                       auth=proof_from_hash(entry.token_hash, nonce, "coordinator"))
        entry.acks_ready, entry.notices = [], []
        return msg

    @staticmethod
    def sent(entry: SubmitterEntry, ticket, msg: Exchange, rnd: int) -> None:
        """Remember the call in flight (what its reply must prove, which grants it carries)."""
        entry.ticket = ticket
        entry.ticket_round, entry.ticket_time = rnd, time.monotonic()
        entry.ticket_nonce, entry.ticket_offer = msg.nonce, msg.credential
        entry.ticket_grants = msg.grants.round if msg.grants is not None and \
            len(msg.grants.rows) else -1

    def offer(self, entry: SubmitterEntry, new_ids: list, by_register: bool) -> None:
        """Offer a new credential with the next exchange (to the handle only)."""
        entry.offer = (secrets.token_hex(16), new_ids)
        entry.offer_by_register, entry.renew = by_register, False

    def check_proof(self, entry: SubmitterEntry, proof, nonce: str, offered: str | None
                    ) -> str:
        """What a reply's ``proof`` shows for the exchange with ``nonce`` (which offered the
        credential ``offered``, if any): :data:`PROVED` its current credential (a pending
        offer is withdrawn), :data:`SWITCHED` the offered one (the caller journals and
        applies the new registration: ``entry.offer`` is then returned to it as
        ``(token, new ids)`` through :meth:`take_offer`), or :data:`FORGED` neither (a new
        credential is offered with the next exchange, and the submitter told to take it)."""
        ok = type(proof) is str and len(proof) == 64 and bool(nonce)
        given = proof.encode("utf-8", "replace") if ok else b""
        pending = offered is not None and entry.offer is not None and entry.offer[0] == offered
        if ok and hmac.compare_digest(given, proof_from_hash(entry.token_hash, nonce).encode()):
            forged_register = pending and entry.offer_by_register
            if pending:
                entry.offer, entry.offer_by_register = None, False
            entry.renew = False
            # someone registered this name with its handle while it holds a valid
            # credential: it keeps it, nothing is revoked (the caller counts the attempt)
            return KEPT if forged_register else PROVED
        if ok and pending and hmac.compare_digest(
                given, proof_from_hash(hash_token(offered), nonce).encode()):
            return SWITCHED
        entry.notices.append("reply ignored: stale or missing credential (a new one is "
                             "offered with the next exchange)")
        if entry.offer is None:
            entry.offer = (secrets.token_hex(16), [])
        entry.offer_by_register, entry.renew = False, True
        return FORGED

    def take_offer(self, entry: SubmitterEntry) -> tuple[str, list]:
        """The accepted offer ``(token hash, agents not owned by anyone)``, withdrawn."""
        token, new = entry.offer
        entry.offer, entry.offer_by_register, entry.renew = None, False, False
        return hash_token(token), self.unowned(new)
