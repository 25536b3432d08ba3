"""The coordinator: registrations, the round loop, outcomes applied exactly once, checkpoints.

:class:`Coordinator` is a plain class (tested without Ray); :mod:`coordinator.actor` wraps it
as a named Ray actor. It talks to submitters through a :class:`Transport` (Ray actor calls, or
direct calls in-process) with the protocol of :mod:`agents.protocol`.

A round t:

1. *submit*: submitters without a submission for t are asked for one (usually the previous
   round's reply already carried it); the round closes when all have answered or
   ``round_deadline_s`` passes;
2. *solve*: their rows are concatenated (``RoundRequest.concat``, reused while no submitter's
   rows change) and ``policy.allocate`` decides;
3. *commit*: the decision and every change since the last commit are appended to the journal
   and fsynced before any grant leaves (write-ahead);
4. *push*: each submitter gets its grants and is asked for its round t + 1 submission in one
   call; replies carry outcomes (of this or earlier rounds), applied once each in submitter
   order, and are acknowledged after the next commit;
5. *metrics*: one row per round (reward, regret when the submitters know the true means,
   Gini/Jain, utilization, phase times, rejection counters) to Parquet in bounded memory;
6. every ``checkpoint_every`` rounds a full snapshot (policy state + coordinator state)
   replaces the journal.

Exactly once: every state change (registration, decision, accepted outcome, rejection,
metrics row) is a journal record; a restarted coordinator loads its newest snapshot and
replays the journal in order. Policy decisions are deterministic given the state and the
inputs, so the replay rebuilds the exact state, random generator included. A round whose
decision was committed but whose outcomes were not is pushed again; submitters recognize the
grants and retransmit unacknowledged outcomes, which the report ids deduplicate.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agents.protocol import (
    Exchange,
    GrantBatch,
    Registration,
    Reply,
    Report,
)
from coordinator.checkpoints import CheckpointStore
from coordinator.config import CoordinatorConfig
from coordinator.credentials import load_admin_credential
from coordinator.errors import CredentialError, OwnershipError
from coordinator.intake import OutcomeIntake
from coordinator.journal import (
    Journal,
    Record,
    config_diff,
    decode_ids,
)
from coordinator.metrics_log import MetricsLog
from coordinator.recovery import History, other_configuration
from coordinator.submitters import KEPT, PROVED, SWITCHED, SubmitterEntry, SubmitterTable
from coordinator.transport import LocalTransport, Transport
from coordinator.wire import (
    MAX_ID_CHARS,
    check_ids,
    hash_token,
    plain_ids,
    plain_int,
    plain_str,
    plain_values,
    reply_parts,
    safe_str,
    submission_rows,
)
from librex_alloc import (
    InvalidConfigError,
    InvalidInputError,
    RoundRequest,
    StateError,
    UnknownAgentError,
)
from librex_alloc.round_step import Reference, fairness_columns, round_row

FORMAT = "librex-alloc-coordinator/1"
COUNTERS = ("outcomes_applied", "duplicate_reports", "rejected_forged", "rejected_not_owner",
            "rejected_not_allocated", "rejected_replay", "rejected_invalid",
            "rejected_submissions", "restarts", "rejected_control", "ungranted_rows")


class SimulatedCrash(BaseException):
    """Raised by a test's crash hook to abandon a coordinator mid-call (in-process tests)."""


# --------------------------------------------------------------------------- internals
@dataclass
class _Decided:
    round: int
    request: RoundRequest
    allocation: object
    layout: list  # (name, version, start, stop)
    expected: np.ndarray | None
    key: tuple


def _digest(alloc) -> int:
    return zlib.crc32(np.ascontiguousarray(alloc.fractions, dtype=np.float64).tobytes())


# --------------------------------------------------------------------------- coordinator
class Coordinator(OutcomeIntake):
    """The round loop around one policy (see the module docstring).

    config: a :class:`CoordinatorConfig`. transport: how submitters are reached (default: an
    empty :class:`LocalTransport`). If ``config.checkpoint_dir`` holds a checkpoint, the
    coordinator resumes from it (its configuration must match; ``StateError`` otherwise).
    ``crash_hook(point)`` is called at named points (fault-injection for tests).
    """

    def __init__(self, config: CoordinatorConfig, transport: Transport | None = None):
        if not isinstance(config, CoordinatorConfig):
            raise InvalidConfigError("config: expected a CoordinatorConfig")
        self.config = config
        self.transport = transport if transport is not None else LocalTransport()
        self.crash_hook: Callable[[str], None] | None = None
        self._lock = threading.RLock()
        self.n_resources = config.policy.n_resources
        self.budget = np.asarray(config.budget, dtype=np.float64)
        self.policy = config.policy_class.from_config(config.policy)
        self.round = 0
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.submitters = SubmitterTable()
        self._dedup: dict[tuple, int] = {}  # (name, report id) -> outcomes applied
        self._dedup_rounds: OrderedDict[int, list] = OrderedDict()  # round -> its keys
        self._decided: _Decided | None = None
        self._collect_round = 1
        self._prev_request: RoundRequest | None = None
        self._prev_key: tuple | None = None
        self._reference = None if config.reference_oracle is None else \
            Reference(config.reference_oracle, quiet=True)
        self._acc_reward = 0.0
        self._acc_outcomes = 0
        self._last_checkpoint_s = 0.0
        self._stopped = False
        self._closed = False
        self._running = threading.Event()  # set while run() plays rounds
        self._decided_at: dict[int, float] = {}  # round -> monotonic time of its decision
        self._started = time.monotonic()
        self.store = CheckpointStore(config.checkpoint_dir)
        self.store.acquire()
        self.metrics = MetricsLog(os.path.join(self.store.directory, "metrics"),
                                  self.n_resources, config.rows_per_part,
                                  config=config.to_dict(), resources=config.resource_names)
        self.history = History(self.store, config.fsync, self._crash)
        try:
            self._restore()
            # the job's admin credential: issued at the first start, read back after a
            # restart (after the restore: a refused one changes nothing in the folder)
            self._admin_hash = hash_token(load_admin_credential(self.store.directory, create=True))
        except BaseException:  # a refused restore leaves the directory free
            self.history.discard()
            self.store.release()
            raise

    @property
    def journal(self) -> Journal | None:
        """The open journal (see :class:`coordinator.recovery.History`)."""
        return self.history.journal

    @property
    def _replaying(self) -> bool:
        return self.history.replaying

    # ======================================================================= registration
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

    def set_budget(self, budget) -> None:
        """Change the per-round budget (K,) from the next round on (a round already decided
        keeps its budget). ``InvalidInputError`` (nothing changed) unless K finite numbers
        ≥ 0 (a list of plain ints/floats or a numeric array)."""
        try:
            b = plain_values(budget if type(budget) is not tuple else list(budget))
        except InvalidInputError:
            b = None
        if b is None or b.shape != (self.n_resources,) or not np.all(np.isfinite(b)) or \
                np.any(b < 0):
            raise InvalidInputError(f"budget: expected {self.n_resources} finite values ≥ 0")
        with self._lock:
            # the parts keep their rows; the next round's request is concatenated again
            # with this budget (RoundRequest.concat takes the budget apart from the rows)
            self.budget = b.copy()
            self._prev_key = None
            self._log("BUDGET", {}, arrays={"budget": b})
            self._commit()

    # ======================================================================= outcomes
    # report and the rest of the outcome intake: coordinator/intake.py (OutcomeIntake)
    def _auth(self, token) -> str:
        name = self.submitters.name_of(token)
        if name is None:
            self._reject("rejected_forged")
            self._commit()
            raise CredentialError("unknown or revoked credential")
        return name

    def _reject(self, counter: str, n: int = 1) -> None:
        self.counters[counter] += n
        self._log("REJ", {"counter": counter, "n": n})

    # ======================================================================= the round loop
    def run(self, until_round: int | None = None, max_seconds: float | None = None,
            max_rounds: int | None = None) -> dict:
        """Play rounds until ``until_round`` is done, ``max_seconds`` pass, ``max_rounds``
        were played or :meth:`stop` is called (whichever first); returns :meth:`status`.
        Safe to retry: the target is a round number, not a count, when ``until_round`` is
        given."""
        for value, what in ((until_round, "until_round"), (max_rounds, "max_rounds")):
            if value is not None and plain_int(value) is None:
                raise InvalidInputError(f"{what}: expected an int or None")
        if max_seconds is not None and (type(max_seconds) not in (int, float) or
                                        not max_seconds >= 0):
            raise InvalidInputError("max_seconds: expected a number ≥ 0 or None")
        t_end = None if max_seconds is None else time.monotonic() + float(max_seconds)
        played = 0
        with self._lock:
            if self._closed:
                return self.status()
            self._running.set()
        try:
            while not self._stopped:
                if until_round is not None and self.round >= until_round:
                    break
                if max_rounds is not None and played >= max_rounds:
                    break
                if t_end is not None and played and time.monotonic() >= t_end:
                    break
                self.step()
                played += 1
            with self._lock:
                self._commit()
        finally:
            self._running.clear()
        return self.status()

    def stop(self) -> None:
        """Stop :meth:`run` after the current round (also from another thread or caller)."""
        self._stopped = True

    def resume(self) -> None:
        self._stopped = False

    def step(self) -> dict:
        """Play one round; returns its metrics row."""
        t_start = time.perf_counter()
        times = {}
        decided = self._decided
        if decided is None:
            t = self.round + 1
            self._gather(t)
            times["submit_s"] = time.perf_counter() - t_start
            with self._lock:
                decided = self._decide(t, times)
        t0 = time.perf_counter()
        report_s = self._push(decided)
        times["push_s"] = time.perf_counter() - t0 - report_s
        times["report_s"] = report_s
        with self._lock:
            self._crash("pushed")
            t0 = time.perf_counter()
            row = self._metrics_row(decided)
            times["metrics_s"] = time.perf_counter() - t0
            times["checkpoint_s"] = self._last_checkpoint_s
            times["round_s"] = time.perf_counter() - t_start
            row.update(times)
            self._apply_metrics(row)
            self._log("METRICS", {"row": row})
            self._last_checkpoint_s = 0.0
            if row["round"] % self.config.checkpoint_every == 0:
                t0 = time.perf_counter()
                self.snapshot()
                self._last_checkpoint_s = time.perf_counter() - t0
        return row

    # -- phase 1: submissions ----------------------------------------------------------
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

    # -- phase 2: the decision -----------------------------------------------------------
    def _decide(self, t: int, times: dict) -> _Decided:
        t0 = time.perf_counter()
        parts = [s for s in self.submitters.values() if s.request_round == t and s.requesting]
        key = tuple((s.name, s.version) for s in parts)
        if key == self._prev_key and self._prev_request is not None:
            request, same = self._prev_request, self.history.has_request
        else:
            request = RoundRequest.concat([s.part for s in parts], self.budget,
                                          n_resources=self.n_resources)
            same = False
        layout, start = [], 0
        for s in parts:
            layout.append((s.name, s.version, start, start + s.part.n_rows))
            start += s.part.n_rows
        expected = None
        if parts and all(s.expected is not None for s in parts):
            expected = np.concatenate([s.expected for s in parts])
        decided = self._allocate(t, request, layout, expected, key)
        times["decide_s"] = time.perf_counter() - t0
        self._crash("decided")
        arrays = {} if same else {"options": request.options, "requests": request.requests,
                                  "budget": request.budget}
        if expected is not None:
            arrays["expected"] = expected
        meta = {"round": t, "same": same, "layout": [list(x) for x in layout],
                "digest": _digest(decided.allocation)}
        self._log("ALLOC", meta, None if same else request.agent_ids, arrays)
        t0 = time.perf_counter()
        self._commit()
        times["commit_s"] = time.perf_counter() - t0
        self._crash("decision_committed")
        return decided

    def _allocate(self, t, request, layout, expected, key) -> _Decided:
        alloc = self.policy.allocate(request)
        if alloc.round != t:  # pragma: no cover - the policy counts rounds with us
            raise StateError(f"policy round {alloc.round} != coordinator round {t}")
        self._prev_request, self._prev_key = request, key
        self.history.has_request = True
        self._decided_at[t] = time.monotonic()
        self._decided = _Decided(t, request, alloc, layout, expected, key)
        return self._decided

    # -- phase 3: grants and outcomes ------------------------------------------------------
    def _push(self, d: _Decided) -> float:
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

    # -- phase 4: metrics ------------------------------------------------------------------
    def _metrics_row(self, d: _Decided) -> dict:
        # grants that never reached their agents: not credited as service (before the
        # fairness metrics below); replayed from the row's "ungranted" names
        ungranted = [n for n, _, _, _ in d.layout
                     if n in self.submitters and self.submitters[n].ungranted_round == d.round]
        self._withdraw(d, ungranted)
        alloc, req = d.allocation, d.request
        row = round_row(d.round, alloc.fractions, req.requests, req.budget, d.expected,
                        self._reference_reward(d), oracle=alloc.oracle,
                        resources=self.metrics.resources)
        row.pop("_used")
        row.update({"n_submitters": len(self.submitters),
                    "n_missing": len(self.submitters) - len(d.layout),
                    "reward": self._acc_reward, "n_reported": self._acc_outcomes})
        if d.round % self.config.fairness_every == 0:
            _, rew = self.policy.utilities("reward")
            _, serv = self.policy.utilities("service")
            if len(rew):
                row.update(fairness_columns(rew, serv))
        row.update({c: self.counters[c] for c in COUNTERS})
        row["ungranted"] = ungranted
        row["pending_from"] = self._pending_from(d.round)
        return row

    def _pending_from(self, rnd: int) -> int:
        """The oldest round whose outcomes stay acceptable after round ``rnd``: one of the
        last ``pending_window_rounds`` rounds, or decided less than ``pending_window_s``
        seconds ago (rounds of a previous process count from its restart)."""
        cfg = self.config
        oldest = rnd - cfg.pending_window_rounds + 1
        limit = time.monotonic() - cfg.pending_window_s
        out = max(oldest, rnd - cfg.pending_max_rounds + 1)
        for r in self.policy.ledger.rounds:
            if r >= oldest:
                break
            if self._decided_at.get(r, self._started) >= limit:
                return max(r, rnd - cfg.pending_max_rounds + 1)
        return out

    def _withdraw(self, d: _Decided, names: list) -> None:
        """Submitters ``names`` never got their grants of round ``d``: count the rows in
        ``ungranted_rows``, take the service back from the fairness bookkeeping and drop the
        rows from the ledger (no outcome can come for them)."""
        if not names:
            return
        fractions = d.allocation.fractions
        spans = {n: (a, b) for n, _, a, b in d.layout}
        rows = np.concatenate([a + np.nonzero(fractions[a:b] > 0)[0]
                               for a, b in (spans[n] for n in names if n in spans)] or
                              [np.zeros(0, np.int64)])
        if not len(rows):
            return
        ids = d.request.agent_ids
        sel = ids[rows] if isinstance(ids, np.ndarray) else [ids[i] for i in rows.tolist()]
        slots = np.asarray(self.policy.registry.lookup(list(sel) if not isinstance(
            sel, np.ndarray) else sel.tolist()), np.int64)
        budget = d.request.budget
        safe_b = np.where(budget > 0, budget, np.inf)
        share = (fractions[rows, None] * d.request.requests[rows] / safe_b).max(axis=1)
        uniq, inv = np.unique(slots, return_inverse=True)
        self.policy.fairness.withdraw(
            uniq, np.bincount(inv, weights=fractions[rows], minlength=len(uniq)),
            np.bincount(inv, weights=share, minlength=len(uniq)))
        self.policy.ledger.forget(d.round, uniq)
        self.counters["ungranted_rows"] += int(len(rows))

    def _reference_reward(self, d: _Decided) -> float | None:
        """Best expected reward on the submitters' true means (the shared
        :class:`~librex_alloc.round_step.Reference`: utilitarian, solved again only when the
        rows, budget or means change; a failed solve is a missing metric, never a reason to
        stop the loop)."""
        if self._reference is None or d.expected is None:
            return None
        return self._reference.objective(d.expected, d.request.requests, d.request.budget,
                                         d.request.codes, self.config.policy.divisible)

    def _apply_metrics(self, row: dict) -> None:
        rnd = int(row["round"])
        if self._replaying and row.get("ungranted") and self._decided is not None:
            self._withdraw(self._decided, row["ungranted"])
        self.metrics.append(row)
        self.round = rnd
        self._decided = None
        self._acc_reward, self._acc_outcomes = 0.0, 0
        # the pending window (see CoordinatorConfig): rounds outside the round window keep
        # only their unreported rows; rounds before pending_from expire
        window = self.config.pending_window_rounds
        pending_from = int(row.get("pending_from", rnd - window + 1))
        self.policy.ledger.compact(rnd - window, pending_from)
        while self._decided_at and next(iter(self._decided_at)) < pending_from:
            del self._decided_at[next(iter(self._decided_at))]
        while self._dedup_rounds and next(iter(self._dedup_rounds)) < pending_from:
            for key in self._dedup_rounds.popitem(last=False)[1]:
                self._dedup.pop(key, None)

    # ======================================================================= journal
    def _log(self, kind: str, meta: dict, ids=None, arrays: dict | None = None) -> None:
        self.history.log(kind, meta, ids, arrays)

    def _commit(self) -> None:
        """Make every logged change durable, then release the acknowledgements it covers."""
        if not self.history.commit():
            return
        for sub in self.submitters.entries.values():
            if sub.acks_uncommitted:
                sub.acks_ready.extend(a for a in sub.acks_uncommitted if a is not None)
                sub.acks_uncommitted = []

    def _crash(self, point: str) -> None:
        if self.crash_hook is not None and not self._replaying:
            self.crash_hook(point)

    # ======================================================================= state changes
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

    # ======================================================================= snapshots
    def snapshot(self) -> str | None:
        """Write a full snapshot now (only between rounds) and start a new journal; returns
        its path (None mid-round: the journal already covers that state)."""
        with self._lock:
            if self._decided is not None:
                self._commit()
                return None
            self._commit()  # the old journal stays complete: a fallback replays it
            self.metrics.flush()
            return self.history.snapshot({"policy": self.policy.get_state(),
                                          "coordinator": self._own_state()})

    def _own_state(self) -> dict:
        dedup = [(r, n, rid, self._dedup[(n, rid)]) for r, keys in self._dedup_rounds.items()
                 for n, rid in keys]
        return {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "round": self.round,
            "budget": self.budget.copy(),
            "counters": dict(self.counters),
            "submitters": self.submitters.state(),
            "dedup": {
                "rounds": np.asarray([d[0] for d in dedup], np.int64),
                "names": [d[1] for d in dedup],
                "report_ids": [d[2] for d in dedup],
                "applied": np.asarray([d[3] for d in dedup], np.int64),
            },
        }

    def _set_own_state(self, st: dict) -> None:
        if st.get("format") != FORMAT:
            raise StateError(f"coordinator state: format {st.get('format')!r}")
        mine = self.config.to_dict()
        if st["config"] != mine:
            diff = sorted(k for k in mine if st["config"].get(k) != mine[k])
            raise other_configuration(self.store.directory, diff)
        self.round = int(st["round"])
        self.budget = np.asarray(st["budget"], dtype=np.float64)
        self.counters.update({k: int(v) for k, v in st["counters"].items()})
        self.submitters.load(st["submitters"])
        d = st["dedup"]
        for r, n, rid, applied in zip(d["rounds"].tolist(), d["names"], d["report_ids"],
                                      d["applied"].tolist()):
            self._dedup[(n, rid)] = applied
            self._dedup_rounds.setdefault(r, []).append((n, rid))

    # ======================================================================= restore
    def _restore(self) -> None:
        """Load the newest readable snapshot and replay the journals after it
        (:meth:`History.restore`: nothing committed is dropped silently)."""
        done = self.history.restore(self.config.to_dict(), self.config.accept_loss,
                                    self._load, self._replay_record, self._replay_tentatively)
        if done.fresh:  # a new job: the journal says whose history it holds
            self._log("CONFIG", {"config": self.config.to_dict()})
            self._commit()
        if done.problems:
            self.counters["lost_records"] += done.lost
            self.recovery = done.problems
            logging.getLogger(__name__).warning(
                "%s: resumed with the loss accepted: %d journal record(s) dropped, state at "
                "round %d; %s", self.store.directory, done.lost, self.round,
                "; ".join(self.recovery))
            self._log("REJ", {"counter": "lost_records", "n": done.lost})
        if done.restored or done.problems:
            self.counters["restarts"] += 1
            self._log("REJ", {"counter": "restarts", "n": 1})
            self._commit()

    def _load(self, state: dict | None, damaged: bool) -> None:
        if state is not None:
            policy = self.config.policy_class.from_state(state["policy"])
            if policy.config != self.config.policy:
                raise StateError(f"checkpoint {self.store.directory!r}: its policy "
                                 f"configuration differs from this coordinator's")
            self.policy = policy
            self._set_own_state(state["coordinator"])
        self.counters.setdefault("lost_records", 0)
        self.metrics.drop_after(self.round, set_aside="lost" if damaged else None)

    #: what the last restore accepted to lose (descriptions), empty when nothing
    recovery: list = []

    def _replay_tentatively(self, r: Record) -> bool:
        """Replay one record that follows lost ones; False (and nothing changed) when it does
        not fit the state: a decision for another round or one that differs from the recorded
        one, a metrics row for a round not decided, or any error."""
        meta = r.meta
        if r.kind == "ALLOC" and (self._decided is not None or
                                  int(meta["round"]) != self.round + 1):
            return False
        if r.kind == "METRICS" and (self._decided is None or
                                    int(meta["row"]["round"]) != self._decided.round):
            return False
        saved = None
        if r.kind == "ALLOC":
            saved = (self.policy.get_state(), self._prev_request, self._prev_key,
                     self.history.has_request, self._decided, self._reference)
        try:
            self._replay(r.kind, meta, r.arrays)
            return True
        except Exception:
            if saved is not None:
                self.policy = self.config.policy_class.from_state(saved[0])
                (_, self._prev_request, self._prev_key, self.history.has_request,
                 self._decided, self._reference) = saved
            return False

    def _replay_record(self, r: Record) -> None:
        self._replay(r.kind, r.meta, r.arrays)

    def _replay(self, kind: str, meta: dict, arrays: dict) -> None:
        if kind == "CONFIG":
            diff = config_diff(meta["config"], self.config.to_dict())
            if diff:
                raise other_configuration(self.store.directory, diff)
        elif kind == "REG":
            self._apply_register(meta["name"], meta["token_hash"], decode_ids(meta, arrays))
        elif kind == "UNREG":
            self._apply_unregister(meta["name"])
        elif kind == "LEAVE":
            self._apply_leave(meta["name"], decode_ids(meta, arrays))
        elif kind == "BUDGET":
            self.budget = arrays["budget"].astype(np.float64)
            self._prev_key = None
        elif kind == "REJ":
            self.counters[meta["counter"]] += int(meta["n"])
        elif kind == "DUP":
            self.counters["duplicate_reports"] += 1
        elif kind == "OBS":
            values = arrays["values"]
            rnd = int(meta["round"])
            self._observe(rnd, decode_ids(meta, arrays), values, meta["kind"])
            self._record_reports(rnd, meta["names"], meta["report_ids"], meta["sizes"], values)
        elif kind == "ALLOC":
            if meta["same"]:
                request = self._prev_request
            else:
                request = RoundRequest.build(decode_ids(meta, arrays), arrays["requests"],
                                             arrays["budget"], arrays["options"],
                                             n_resources=self.n_resources)
            layout = [tuple(x) for x in meta["layout"]]
            key = tuple((n, v) for n, v, _, _ in layout)
            d = self._allocate(int(meta["round"]), request, layout, arrays.get("expected"), key)
            if _digest(d.allocation) != meta["digest"]:
                raise StateError(f"journal replay diverged at round {meta['round']}: the "
                                 f"decision differs from the one recorded")
        elif kind == "METRICS":
            self._apply_metrics(meta["row"])
        else:
            raise StateError(f"journal: unknown record kind {kind!r}")

    # ======================================================================= roles
    def check_admin(self, credential) -> None:
        """Raise :class:`CredentialError` (counted in ``rejected_control``) unless
        ``credential`` is the job's admin credential (:func:`load_admin_credential`)."""
        if type(credential) is str and hmac.compare_digest(hash_token(credential).encode(),
                                                           self._admin_hash.encode()):
            return
        with self._lock:
            if not self._closed:
                self._reject("rejected_control")
                self._commit()
            else:
                self.counters["rejected_control"] += 1
        raise CredentialError("this call needs the job's admin credential")

    # ======================================================================= queries
    def status(self) -> dict:
        """Round, submitters, counters and whether the loop is stopped."""
        with self._lock:
            return {"round": self.round, "stopped": self._stopped,
                    "submitters": list(self.submitters),
                    "in_flight": [s.name for s in self.submitters.values()
                                  if s.ticket is not None],
                    "failing": {s.name: (s.failures, s.last_error)
                                for s in self.submitters.values() if s.failures},
                    "agents": len(self.submitters.owner), "counters": dict(self.counters),
                    "pending_decision": self._decided is not None}

    def metrics_since(self, after_round: int, limit: int = 10_000) -> dict:
        """Metrics rows with round > ``after_round`` (≤ ``limit``), as {column: list}."""
        with self._lock:
            return self.metrics.rows_since(after_round, limit)

    def policy_state(self) -> dict:
        """The policy's full state (``get_state``), e.g. to compare two runs."""
        with self._lock:
            return self.policy.get_state()

    def allocated_rounds(self, agent_id) -> list[int]:
        """Pending rounds (oldest first) in which ``agent_id`` was allocated."""
        with self._lock:
            slot = np.asarray(self.policy.registry.agent_slots([agent_id]), np.int64)
            ledger = self.policy.ledger
            return [r for r in ledger.rounds if ledger.pending(r).find(slot)[0] >= 0]

    def agent_stats(self, agent_ids, option: int = 0) -> dict:
        """Posterior observation counts and means (n,) of ``agent_ids``' option ``option``."""
        ids = check_ids(agent_ids)
        with self._lock:
            reg = self.policy.registry
            slots = np.asarray(reg.agent_slots(ids), dtype=np.int64)
            arms = reg.arms_of(slots, np.full(len(ids), option, np.int64))
            if np.any(arms < 0):
                raise UnknownAgentError("an agent has no such option")
            return {"slots": slots, "count": self.policy.posterior.count(arms),
                    "mean": self.policy.posterior.mean(arms)}

    def close(self, wait_s: float | None = None) -> None:
        """Stop the loop, snapshot (if between rounds), close the journal and release the
        directory. A :meth:`run` in progress (another thread) is stopped first and waited
        for (up to ``wait_s``, default three round deadlines plus 10 s); after close,
        :meth:`run` returns at once. Closing twice does nothing."""
        self._stopped = True
        if wait_s is None:
            wait_s = 3 * self.config.round_deadline_s + 10.0
        end = time.monotonic() + wait_s
        while self._running.is_set() and time.monotonic() < end:
            time.sleep(0.01)
        with self._lock:
            if self._closed:
                return
            if self._running.is_set():
                raise StateError("close: the round loop is still running (stopped: it ends "
                                 "after the current round); call close again")
            self._closed = True
            if self._decided is None:
                self.snapshot()
            self.history.close()
            self.store.release()

    def abandon(self) -> None:
        """Drop the journal's uncommitted records and release the directory, as a crash of
        the process would (in-process tests of recovery)."""
        self.history.discard()
        self.store.release()
