"""The submitter side of the protocol (:class:`agents.protocol.Submitter`), in-process: only
signed exchanges are acted on, a repeated exchange is idempotent, proofs are bound to the
exchange's nonce and never reveal the token, unacknowledged reports are retransmitted until
acknowledged, and the outbox is bounded."""

import hashlib

import numpy as np
import pytest

from agents.protocol import (
    Exchange,
    GrantBatch,
    Registration,
    Submission,
    Submitter,
    credential_proof,
    proof_from_hash,
)

TOKEN = "t" * 32


class Counting(Submitter):
    """Two rows per round; counts the grants it acts on."""

    def __init__(self, name="s", **kw):
        super().__init__(name, **kw)
        self.granted = []

    def _rows(self, rnd):
        return Submission(rnd, f"v{rnd}", [1, 2], np.ones((2, 1)))

    def _grant(self, rnd, sub, rows, fractions):
        self.granted.append((rnd, rows.tolist(), fractions.tolist()))


def signed(next_round, nonce="n1", token=TOKEN, **kw):
    return Exchange(next_round, nonce=nonce, name="s",
                    auth=credential_proof(token, nonce, "coordinator"), **kw)


def holder():
    s = Counting()
    s.set_credential(Registration("s", TOKEN, 1))
    return s


def test_the_reply_proves_the_token_for_this_nonce_only():
    s = holder()
    a, b = s.exchange(signed(1, "n1")), s.exchange(signed(1, "n2"))
    # what the coordinator, which keeps only the token's hash, checks
    assert a.proof == proof_from_hash(hashlib.sha256(TOKEN.encode()).hexdigest(), "n1")
    assert a.proof != b.proof and TOKEN not in (a.proof, b.proof)
    # a submitter's proof never equals the coordinator's signature of the same nonce
    assert a.proof != credential_proof(TOKEN, "n1", "coordinator")


def test_an_unsigned_or_forged_exchange_is_not_acted_on():
    s = holder()
    first = s.exchange(signed(1))
    grants = GrantBatch(1, first.submission.version, np.array([0]), np.array([1.0]))
    for msg in (Exchange(2, grants, nonce="x", name="s"),  # unsigned
                Exchange(2, grants, nonce="x", name="s",
                         auth=credential_proof("f" * 32, "x", "coordinator")),  # wrong key
                Exchange(2, grants, nonce="x", name="s",
                         auth=credential_proof(TOKEN, "other", "coordinator"))):  # replayed
        reply = s.exchange(msg)
        assert reply.submission is None and reply.reports == []
    assert s.granted == [] and s.unsigned_exchanges == 3
    s.exchange(signed(2, "y", grants=grants))
    assert s.granted == [(1, [0], [1.0])]


def test_a_repeated_exchange_acts_once_and_returns_the_same_submission():
    s = holder()
    sub1 = s.exchange(signed(1)).submission
    grants = GrantBatch(1, sub1.version, np.array([0, 1]), np.array([1.0, 0.5]))
    r1 = s.exchange(signed(2, "a", grants=grants))
    r2 = s.exchange(signed(2, "b", grants=grants))  # the coordinator restarted: same round
    assert s.granted == [(1, [0, 1], [1.0, 0.5])] and s.granted_rows == 2
    assert r1.submission.version == r2.submission.version == "v2"
    # the coordinator already holds version v2: only the version comes back
    again = s.exchange(signed(2, "c", known_version="v2")).submission
    assert again.agent_ids is None and again.version == "v2"


def test_grants_for_another_version_are_refused_with_a_notice():
    s = holder()
    s.exchange(signed(1))
    s.exchange(signed(2, grants=GrantBatch(1, "stale", np.array([0]), np.array([1.0]))))
    assert s.granted == [] and any("unknown submission" in n for n in s.notices)


def test_reports_are_retransmitted_until_acknowledged_and_the_outbox_is_bounded():
    s = Counting(max_outbox=3)
    s.set_credential(Registration("s", TOKEN, 1))
    reps = [s.queue_report(1, [1], [0.5]) for _ in range(4)]
    assert s.dropped_reports == 1 and [r.report_id for r in s.outbox] == \
        [r.report_id for r in reps[1:]]
    assert len({r.report_id for r in reps}) == 4
    assert s.exchange(signed(1, "a")).reports == s.outbox
    reply = s.exchange(signed(1, "b", acks=[reps[1].report_id, "unknown"]))
    assert [r.report_id for r in reply.reports] == [reps[2].report_id, reps[3].report_id]
    with pytest.raises(ValueError, match="kind"):
        s.queue_report(1, [1], [1.0], kind="bonus")


def test_an_exchange_for_another_name_is_refused():
    with pytest.raises(ValueError, match="reached submitter"):
        holder().exchange(Exchange(1, nonce="n", name="other"))


def test_a_restarted_submitter_takes_the_offered_credential_and_keeps_its_own_otherwise():
    fresh = Counting()  # no credential: any exchange is acted on, the offer is taken
    reply = fresh.exchange(Exchange(1, nonce="n", name="s", credential=TOKEN))
    assert fresh.token == TOKEN and reply.proof == credential_proof(TOKEN, "n")
    s = holder()  # holds one: an offer without renew does not replace it
    s.exchange(signed(1, credential="o" * 32))
    assert s.token == TOKEN
    s.exchange(signed(1, "m", credential="o" * 32, renew=True))
    assert s.token == "o" * 32
