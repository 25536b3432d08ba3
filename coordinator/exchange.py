"""The submission exchange of the coordinator: one call per submitter and round.

:class:`SubmissionExchange` is a part of :class:`~coordinator.core.Coordinator` (a mixin: it
uses the coordinator's transport, submitter table, journal and lock). Phase 1 of a round
(:meth:`_gather`) asks the submitters that have no submission for round t yet; phase 3
(:meth:`_push`) sends each its grants of round t with the request for round t + 1 in one call.
Every finished call goes through :meth:`_process_reply`, in submitter-name order: its form and
credential proof are checked (a malformed or forged reply is rejected and counted, the
submitter's rows are missing from that round, the loop goes on), its reports go to the
outcome intake in one batch, its submission is checked and kept for the next decision.
"""

from __future__ import annotations

import time

import numpy as np

from agents.protocol import Exchange, GrantBatch, Reply, Report
from coordinator.decision import Decided
from coordinator.submitters import KEPT, PROVED, SWITCHED, SubmitterEntry
from coordinator.wire import (
    MAX_ID_CHARS,
    plain_int,
    plain_str,
    reply_parts,
    safe_str,
    submission_rows,
)


class SubmissionExchange:
    """The exchange side of the coordinator (see the module docstring)."""

    def _send(self, sub: SubmitterEntry, msg: Exchange, rnd: int) -> None:
        self.submitters.sent(sub, self.transport.send(sub.name, msg), msg, rnd)

    def _gather(self, t: int) -> None:
        with self._lock:
            self._collect_round = t
            waiting = []
            for sub in self.submitters.values():
                if sub.request_round == t or sub.ticket is not None or \
                        self.submitters.backing_off(sub):
                    continue
                self._send(sub, self.submitters.message(sub, t), t)
                waiting.append(sub.ticket)
        self._wait(waiting)

    #: round deadlines after which a call still in flight is abandoned
    ABANDON_AFTER = 3

    def _wait(self, tickets: list) -> float:
        """Wait for ``tickets`` (≤ the round deadline) and process every finished call, in
        submitter-name order; returns the seconds spent processing replies."""
        done = dict(self.transport.wait(tickets, self.config.round_deadline_s)) \
            if tickets else {}
        with self._lock:
            t0 = time.perf_counter()
            inflight = [s for s in self.submitters.values() if s.ticket is not None]
            others = [s.ticket for s in inflight if s.ticket not in done]
            if others:  # earlier calls that finished meanwhile
                done.update(self.transport.wait(others, 0.0))
            batch: list = []
            give_up = time.monotonic() - self.ABANDON_AFTER * self.config.round_deadline_s
            for sub in inflight:  # in name order
                if sub.ticket in done:
                    result = done[sub.ticket]
                    sub.ticket = None
                    self._process_reply(sub, result, batch)
                elif sub.ticket_time < give_up:
                    # a call lost in a restart may never finish (Ray 2.60: a call sent while
                    # the actor restarts can stay pending); the exchange is idempotent, so
                    # call again: unacknowledged outcomes are sent again, once applied
                    getattr(self.transport, "forget", lambda t: None)(sub.ticket)
                    sub.ticket = None
                    self._process_reply(sub, TimeoutError("call abandoned"), batch,
                                        slow=True)
            if batch:
                results = self._apply_reports([(sub.name, rep) for sub, rep in batch])
                for (sub, rep), res in zip(batch, results):
                    if isinstance(res, BaseException):
                        sub.notices.append(str(res)[:500])
                    # a report whose id is malformed cannot be acknowledged: its submitter
                    # keeps sending it, and it is rejected (and counted) each time
                    rid = plain_str(rep.report_id) if type(rep) is Report else None
                    sub.acks_uncommitted.append(rid)
            return time.perf_counter() - t0

    def _process_reply(self, sub: SubmitterEntry, result, batch: list, slow: bool = False
                       ) -> None:
        """Check the reply's form and credential proof, keep the submission; the reports go
        to ``batch``. A malformed reply is rejected (``rejected_invalid``): the submitter's
        rows are missing from this round, the loop goes on."""
        nonce, sub.ticket_nonce = sub.ticket_nonce, ""
        offered, sub.ticket_offer = sub.ticket_offer, None
        grants_round, sub.ticket_grants = sub.ticket_grants, -1
        if type(result) is not Reply:
            if not issubclass(type(result), BaseException):  # (isinstance reads __class__)
                self._reject("rejected_invalid")
                sub.notices.append(f"reply rejected: expected a Reply, got "
                                   f"{type(result).__name__}")
                return  # the call returned: the grants reached it
            if grants_round >= 0 and self._decided is not None and \
                    grants_round == self._decided.round:
                sub.ungranted_round = grants_round  # the call failed: no grant reached it
            self.submitters.failed(sub, safe_str(result), slow)
            return
        self.submitters.answered(sub)
        try:
            proof, reports, submission = reply_parts(result)
        except Exception as exc:  # noqa: BLE001 - a hostile reply may raise anything
            self._reject("rejected_invalid")
            sub.notices.append(f"reply rejected: {safe_str(exc)}")
            return
        if not self._check_proof(sub, proof, nonce, offered):
            return
        batch.extend((sub, rep) for rep in reports)
        self._accept_submission(sub, submission)

    def _check_proof(self, sub: SubmitterEntry, proof, nonce: str, offered: str | None
                     ) -> bool:
        """Does the reply prove the submitter's credential (or the one offered to it)? A
        reply proving the offered one switches to it (durably, at once); a reply proving
        none is ignored and a new credential is offered with the next exchange
        (:meth:`SubmitterTable.check_proof`)."""
        found = self.submitters.check_proof(sub, proof, nonce, offered)
        if found == SWITCHED:
            token_hash, new = self.submitters.take_offer(sub)
            self._apply_register(sub.name, token_hash, new)
            self._log("REG", {"name": sub.name, "token_hash": token_hash}, new)
            self._commit()  # the submitter holds only this credential now
        elif found != PROVED:
            self._reject("rejected_forged")  # KEPT: someone tried register with its handle
        return found in (PROVED, KEPT, SWITCHED)

    def _accept_submission(self, sub: SubmitterEntry, s) -> None:
        rnd = self._collect_round
        if s is None:
            sub.request_round, sub.requesting = rnd, False
            return
        version = plain_str(s.version)
        if plain_int(s.round) != rnd or version is None:
            if plain_int(s.round) is None or version is None:
                self._reject("rejected_submissions")
                sub.notices.append(f"round {rnd}: submission rejected: its round must be an "
                                   f"int and its version a str of at most {MAX_ID_CHARS} "
                                   f"characters")
            return  # else stale: a late reply for a round already closed
        if s.agent_ids is None:
            if version == sub.version and sub.part is not None:
                sub.request_round, sub.requesting = rnd, True
            else:
                sub.version = None  # we do not hold these rows: ask for them in full
            return
        try:
            part, expected = submission_rows(s, sub.name, sub.owned_index(), self.budget,
                                             self.n_resources)
        except Exception as exc:  # noqa: BLE001 - a hostile submission may raise anything
            self._reject("rejected_submissions")
            sub.notices.append(f"round {rnd}: submission rejected: {safe_str(exc)}")
            sub.version, sub.part = None, None
            return
        sub.version, sub.part, sub.expected = version, part, expected
        sub.request_round, sub.requesting = rnd, True

    def _push(self, d: Decided) -> float:
        with self._lock:
            self._collect_round = d.round + 1
            fractions = d.allocation.fractions
            slots = {name: (version, a, b) for name, version, a, b in d.layout}
            waiting = []
            for sub in self.submitters.values():
                name = sub.name
                if sub.ticket is not None:
                    if name in slots and np.any(fractions[slots[name][1]:slots[name][2]] > 0):
                        sub.ungranted_round = d.round  # its grants cannot be sent
                    continue
                grants = None
                if name in slots:
                    version, a, b = slots[name]
                    rows = np.nonzero(fractions[a:b] > 0)[0]
                    grants = GrantBatch(d.round, version, rows, fractions[a:b][rows])
                elif self.submitters.backing_off(sub):
                    continue
                self._send(sub, self.submitters.message(sub, d.round + 1, grants), d.round + 1)
                waiting.append(sub.ticket)
        return self._wait(waiting)
