"""The one protocol every submitter (agent shard or live agent) speaks to the coordinator.

Per round the coordinator sends each submitter one :class:`Exchange` and gets one
:class:`Reply` back (over Ray: one actor call per submitter per round):

- ``Exchange.grants``: the submitter's grants for the round just decided (rows of the
  submission it made for that round, with the granted fractions), or ``None``;
- ``Exchange.next_round``: the round to submit for next;
- ``Exchange.acks``: ids of this submitter's reports the coordinator has processed *and made
  durable* (applied, duplicate or rejected): the submitter may forget them;
- ``Reply.submission``: the requests for ``next_round`` (a delta: rows are omitted when they
  equal the version the coordinator already holds, ``Exchange.known_version``);
- ``Reply.reports``: every outcome not yet acknowledged: outcomes of this round's grants, late
  outcomes of earlier rounds, and retransmissions of reports whose ack was lost.

A submitter registers first (``Coordinator.register``) and gets a credential (token). A
pushed report (``Coordinator.report``) carries the token; a reply carries only a *proof*
(``credential_proof``: an HMAC of the exchange's fresh nonce keyed by the token's hash), so
calling a submitter's ``exchange`` never reveals its token. The coordinator signs each
exchange the same way (``Exchange.auth``, over ``"coordinator:" + nonce``): a submitter that
holds a credential acts only on signed exchanges (an unsigned one gets a reply with no
submission and no reports, and its grants and acknowledgements are ignored). An exchange may
offer a new credential (``Exchange.credential``): a submitter without one (a restarted actor)
takes it; one that holds a credential keeps it unless the exchange says its proof failed
(``renew``: the coordinator does not know its credential, so it cannot sign for it). An
exchange addressed to another name (``Exchange.name``) is refused. Reports
carry a report id unique to the submitter, so a retransmitted report is recognized and
applied once.

:class:`Submitter` implements the submitter side of this protocol (outbox, acks, per-round
caches, idempotent handling of a repeated exchange); :class:`~agents.shard.AgentShard` and
:class:`~agents.live.LiveAgentHost` supply the rows and the outcomes.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

KINDS = ("reward", "success")


def proof_from_hash(token_hash: str, nonce: str, by: str = "submitter") -> str:
    """HMAC-SHA256 of ``by:nonce`` keyed by a credential's hash (hex sha256 of the token):
    what the coordinator, which keeps only hashes, checks (``by="submitter"``, a reply's
    proof) and signs (``by="coordinator"``, an exchange's ``auth``). The two never coincide,
    whatever the nonce."""
    return hmac.new(token_hash.encode(), f"{by}:{nonce}".encode("utf-8", "replace"),
                    hashlib.sha256).hexdigest()


def credential_proof(token: str, nonce: str, by: str = "submitter") -> str:
    """The proof that the sender holds ``token``, bound to one exchange's ``nonce``."""
    token_hash = hashlib.sha256(str(token).encode("utf-8", "surrogatepass")).hexdigest()
    return proof_from_hash(token_hash, nonce, by)


@dataclass
class Registration:
    """What :meth:`Coordinator.register` returns: the submitter's name, its credential (keep
    it secret: it authorizes reports for the agents registered under ``name``) and the next
    round the coordinator will play."""

    name: str
    token: str
    next_round: int


@dataclass
class Submission:
    """A submitter's option rows for one round.

    version: changes whenever the rows change. agent_ids: (N,) int64 array or list of int/str
    ids, one per option row; None when the rows equal the version the coordinator holds.
    requests: (N, K) float ≥ 0, resource units. options: (N,) int option index per row (None:
    order of appearance per agent). expected: (N,) true mean reward per row when the submitter
    knows it (simulations; used for regret), else None.
    """

    round: int
    version: str
    agent_ids: np.ndarray | list | None = None
    requests: np.ndarray | None = None
    options: np.ndarray | None = None
    expected: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return 0 if self.agent_ids is None else len(self.agent_ids)


@dataclass
class GrantBatch:
    """One round's grants for one submitter: ``rows`` (m,) int64 positions in the submission of
    ``version`` for ``round``; ``fractions`` (m,) float in (0, 1] of each row's request."""

    round: int
    version: str
    rows: np.ndarray
    fractions: np.ndarray


@dataclass
class Report:
    """Outcomes of one round for some of the submitter's agents.

    report_id: unique per submitter (a retransmission keeps it). agent_ids: m distinct ids (a
    list, or an int64 array).
    values: (m,) float: rewards (``kind="reward"``, in [0, 1] for Bernoulli policies) or 0/1
    flags (``kind="success"``).
    """

    report_id: str
    round: int
    agent_ids: list
    values: np.ndarray
    kind: str = "reward"


@dataclass
class Exchange:
    """Coordinator → submitter, once per round (see the module docstring)."""

    next_round: int
    grants: GrantBatch | None = None
    known_version: str | None = None
    acks: list = field(default_factory=list)
    notices: list = field(default_factory=list)
    nonce: str = ""  # fresh per exchange: the reply's proof is bound to it
    name: str | None = None  # the submitter it is addressed to
    credential: str | None = None  # a credential offered (see the module docstring)
    renew: bool = False  # the last reply proved no credential: take the offered one
    auth: str | None = None  # the coordinator's signature (see the module docstring)


@dataclass
class Reply:
    """Submitter → coordinator: the proof of its credential for this exchange
    (:func:`credential_proof`), its submission for ``Exchange.next_round`` (None: nothing to
    request) and every unacknowledged report."""

    proof: str | None
    submission: Submission | None
    reports: list


class Submitter:
    """Submitter side of the protocol; subclasses implement :meth:`_rows` and :meth:`_grant`
    (and may override :meth:`_late`).

    name: the submitter's name (its Ray actor name); ``max_outbox``: unacknowledged reports kept
    for retransmission (the oldest are dropped beyond it, counted in ``dropped_reports``).
    """

    #: rounds of submissions and processed grants remembered (for repeated exchanges)
    MEMORY = 16

    def __init__(self, name: str, *, max_outbox: int = 10_000):
        self.name = str(name)
        self.token: str | None = None
        self.incarnation = uuid.uuid4().hex[:12]
        self.max_outbox = int(max_outbox)
        self._seq = 0
        self._outbox: OrderedDict[str, Report] = OrderedDict()
        self._submissions: OrderedDict[int, Submission | None] = OrderedDict()
        self._granted: OrderedDict[int, None] = OrderedDict()
        self.notices: deque = deque(maxlen=100)
        self.dropped_reports = 0
        self.unsigned_exchanges = 0
        self.granted_rows = 0
        self.reported_rows = 0

    # -- credential --------------------------------------------------------------------
    def set_credential(self, registration: Registration) -> None:
        """Keep the credential returned by :meth:`Coordinator.register` (a registration
        without one, by a restarted actor, leaves it to the next exchange's offer)."""
        if registration.token is not None:
            self.token = registration.token

    # -- the exchange ------------------------------------------------------------------
    def exchange(self, msg: Exchange) -> Reply:
        """Answer one :class:`Exchange`. Idempotent: a repeated exchange (a coordinator that
        restarted and plays the round again) does not act on the same grants twice and returns
        the same submission; unacknowledged reports are sent again until acknowledged.
        Raises ``ValueError`` for an exchange addressed to another submitter."""
        if msg.name is not None and msg.name != self.name:
            raise ValueError(f"exchange for {msg.name!r} reached submitter {self.name!r}")
        nonce = msg.nonce if type(msg.nonce) is str else ""
        signed = self.token is None or (
            type(msg.auth) is str and hmac.compare_digest(
                msg.auth.encode("utf-8", "replace"),
                credential_proof(self.token, nonce, "coordinator").encode()))
        if type(msg.credential) is str and (self.token is None or msg.renew is True):
            self.token = msg.credential
        if not signed:  # not from the coordinator (or it lost our credential): act on nothing
            self.unsigned_exchanges += 1
            return Reply(credential_proof(self.token, nonce), None, [])
        for rid in msg.acks:
            self._outbox.pop(rid, None)
        self.notices.extend(msg.notices)
        g = msg.grants
        if g is not None and g.round not in self._granted:
            self._remember(self._granted, g.round, None)
            sub = self._submissions.get(g.round)
            if sub is None or sub.version != g.version:
                self.notices.append(f"round {g.round}: grants for an unknown submission")
            elif len(g.rows):
                self.granted_rows += len(g.rows)
                self._grant(g.round, sub, np.asarray(g.rows, np.int64),
                            np.asarray(g.fractions, np.float64))
        self._late(msg.next_round)
        sub = self._submissions.get(msg.next_round)
        if msg.next_round not in self._submissions:
            sub = self._rows(msg.next_round)
            self._remember(self._submissions, msg.next_round, sub)
        if sub is not None and sub.version == msg.known_version:
            sub = Submission(sub.round, sub.version)  # the coordinator has these rows
        proof = None if self.token is None else credential_proof(self.token, msg.nonce)
        return Reply(proof, sub, list(self._outbox.values()))

    def _remember(self, memo: OrderedDict, key: int, value) -> None:
        memo[key] = value
        while len(memo) > self.MEMORY:
            memo.popitem(last=False)

    # -- outcomes ----------------------------------------------------------------------
    def queue_report(self, rnd: int, agent_ids, values, kind: str = "reward") -> Report:
        """Put outcomes of round ``rnd`` in the outbox (sent with the next reply until acked).

        agent_ids: m distinct ids; values: (m,) floats (see :class:`Report`)."""
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        ids = agent_ids if isinstance(agent_ids, np.ndarray) else list(agent_ids)
        rep = Report(self.next_report_id(), int(rnd), ids,
                     np.asarray(values, dtype=np.float64), kind)
        self._outbox[rep.report_id] = rep
        self.reported_rows += len(rep.agent_ids)
        while len(self._outbox) > self.max_outbox:
            _, old = self._outbox.popitem(last=False)
            self.dropped_reports += 1
            self.reported_rows -= len(old.agent_ids)
        return rep

    def next_report_id(self) -> str:
        """A report id never used before by this submitter (name, incarnation, counter)."""
        self._seq += 1
        return f"{self.name}:{self.incarnation}:{self._seq}"

    @property
    def outbox(self) -> list[Report]:
        """Reports not yet acknowledged, oldest first."""
        return list(self._outbox.values())

    # -- hooks -------------------------------------------------------------------------
    def _rows(self, rnd: int) -> Submission | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _grant(self, rnd: int, sub: Submission, rows: np.ndarray,
               fractions: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _late(self, next_round: int) -> None:
        """Called before each reply: queue outcomes that became available since."""
