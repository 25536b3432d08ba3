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

This module is the loop; each job around it has its own module: the configuration
(:mod:`coordinator.config`), the transport (:mod:`coordinator.transport`), the submitter
table (:mod:`coordinator.submitters`) and registration (:mod:`coordinator.registration`), the
exchange of submissions and grants (:mod:`coordinator.exchange`, checks in
:mod:`coordinator.wire`), the outcome intake (:mod:`coordinator.intake`), the metrics and the
pending window (:mod:`coordinator.bookkeeping`), and recovery (:mod:`coordinator.recovery`:
journal, snapshots, replay).
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from coordinator.bookkeeping import COUNTERS, RoundBookkeeping
from coordinator.checkpoints import CheckpointStore
from coordinator.config import CoordinatorConfig
from coordinator.credentials import load_admin_credential
from coordinator.decision import Decided, digest
from coordinator.errors import CredentialError
from coordinator.exchange import SubmissionExchange
from coordinator.intake import OutcomeIntake
from coordinator.journal import Journal
from coordinator.metrics_log import MetricsLog
from coordinator.recovery import History, Recovery
from coordinator.registration import Registrations
from coordinator.submitters import SubmitterTable
from coordinator.transport import LocalTransport, Transport
from coordinator.wire import check_ids, hash_token, plain_int, plain_values
from librex_alloc import (
    InvalidConfigError,
    InvalidInputError,
    RoundRequest,
    StateError,
    UnknownAgentError,
)
from librex_alloc.round_step import Reference


class SimulatedCrash(BaseException):
    """Raised by a test's crash hook to abandon a coordinator mid-call (in-process tests)."""


# --------------------------------------------------------------------------- coordinator
class Coordinator(Registrations, SubmissionExchange, OutcomeIntake, RoundBookkeeping,
                  Recovery):
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
        self._decided: Decided | None = None
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

    # ======================================================================= control
    # register, unregister, leave: coordinator/registration.py (Registrations)
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

    # -- phase 1: submissions: _gather (coordinator/exchange.py) --------------------------

    # -- phase 2: the decision -----------------------------------------------------------
    def _decide(self, t: int, times: dict) -> Decided:
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
                "digest": digest(decided.allocation)}
        self._log("ALLOC", meta, None if same else request.agent_ids, arrays)
        t0 = time.perf_counter()
        self._commit()
        times["commit_s"] = time.perf_counter() - t0
        self._crash("decision_committed")
        return decided

    def _allocate(self, t, request, layout, expected, key) -> Decided:
        alloc = self.policy.allocate(request)
        if alloc.round != t:  # pragma: no cover - the policy counts rounds with us
            raise StateError(f"policy round {alloc.round} != coordinator round {t}")
        self._prev_request, self._prev_key = request, key
        self.history.has_request = True
        self._decided_at[t] = time.monotonic()
        self._decided = Decided(t, request, alloc, layout, expected, key)
        return self._decided

    # -- phase 3: grants and outcomes: _push (coordinator/exchange.py, then intake.py)
    # -- phase 4: metrics: _metrics_row, _apply_metrics (coordinator/bookkeeping.py)

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

    # state changes, snapshots, restore: coordinator/registration.py, recovery.py

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
