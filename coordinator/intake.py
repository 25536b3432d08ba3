"""Outcome intake of the coordinator: reports checked completely, then applied exactly once.

:class:`OutcomeIntake` is a part of :class:`~coordinator.core.Coordinator` (a mixin: it uses
the coordinator's policy, submitter table, counters, journal and lock). A report of submitter
``name`` goes through, in order (the first failure rejects it whole, counted once):

1. its form: a :class:`~agents.protocol.Report` with a report id (``rejected_invalid``); a
   report id already applied returns its first answer (``duplicate_reports``);
2. its rows: ids, kind, one value per agent, and what the policy's
   :meth:`~librex_alloc.policies.base.AllocationPolicy.check_outcomes` says of the values
   (finite, in range for the reward family, 0/1 flags) — ``rejected_invalid``;
3. ownership: every agent is the submitter's (``rejected_not_owner``);
4. the policy's check of the round and agents: the round pending and every agent allocated in
   it (``rejected_not_allocated``), none reported before or by an earlier report of the same
   batch (``rejected_replay``).

Accepted reports are applied with one ``policy.observe_checked`` per (round, kind), in order,
and journaled (``OBS``) with their report ids, so a replay applies them once. The policy's
registry, ledger and posterior are not read here: the policy's check says all of it.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from agents.protocol import KINDS, Report
from coordinator.errors import OwnershipError, ReplayError
from coordinator.wire import (
    MAX_ID_CHARS,
    check_ids,
    plain_array,
    plain_ids,
    plain_int,
    plain_str,
    plain_values,
    safe_str,
)
from librex_alloc import InvalidInputError, LibrexError, NotAllocatedError, StateError
from librex_alloc.policies.outcomes import OutcomeCheck, Reason

#: Reasons of the policy's check that make a report malformed (``rejected_invalid``).
INVALID = (Reason.BAD_SHAPE, Reason.BAD_VALUE, Reason.DUPLICATE, Reason.BAD_ROUND)


class OutcomeIntake:
    """The outcome side of the coordinator (see the module docstring)."""

    def report(self, token: str, report: Report) -> dict:
        """Report outcomes directly (outside the round loop). The outcome is durable when this
        returns: ``{"report_id", "applied", "duplicate"}``. A retransmission of the same
        report id returns its first answer with ``duplicate=True`` and applies nothing.
        Raises :class:`CredentialError`, :class:`OwnershipError`, ``NotAllocatedError``,
        :class:`ReplayError` or ``InvalidInputError`` (each counted, nothing applied)."""
        with self._lock:
            name = self._auth(token)
            try:
                applied, dup = self._apply_report(name, report)
            finally:
                self._commit()
            self._crash("report_committed")
            return {"report_id": report.report_id, "applied": applied, "duplicate": dup}

    def _apply_report(self, name: str, rep: Report) -> tuple[int, bool]:
        """Validate one report of submitter ``name`` completely, then apply it; raises the
        rejection's error."""
        result = self._apply_reports([(name, rep)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _check_report(self, name: str, rep) -> tuple | LibrexError:
        """Steps 1-3 of the module docstring: ``(round, ids, values, the policy's check)`` to
        go on with, a duplicate's first answer ``(applied, True)``, or the error (counted)."""
        # only exact types are used (a subclass or a foreign object could run code on any
        # access); anything else is malformed, counted in rejected_invalid
        if type(rep) is not Report:
            self._reject("rejected_invalid")
            return InvalidInputError(f"report: expected a Report, got {type(rep).__name__}")
        rid = plain_str(rep.report_id)
        if rid is None:
            self._reject("rejected_invalid")
            return InvalidInputError(f"report: the report id must be a non-empty str of at "
                                     f"most {MAX_ID_CHARS} characters")
        seen = self._dedup.get((name, rid))
        if seen is not None:
            self.counters["duplicate_reports"] += 1
            self._log("DUP", {})
            return seen, True
        rnd = plain_int(rep.round)
        try:
            raw_ids = plain_ids(rep.agent_ids)
            # an integer id array goes to the policy's check as it is (one look-up there; it
            # finds repeated ids too), anything else as a checked list
            ids = raw_ids if plain_array(raw_ids, "iu") else check_ids(raw_ids)
            values = plain_values(rep.values)
            if type(rep.kind) is not str or rep.kind not in KINDS or \
                    values.shape != (len(ids),) or rnd is None:
                raise InvalidInputError(f"report {rid!r}: malformed (kind "
                                        f"{safe_str(rep.kind, 40)}, {values.shape} values for "
                                        f"{len(ids)} agents, round {safe_str(rep.round, 40)})")
            if rep.kind == "success":
                check = self.policy.check_outcomes(rnd, ids, successes=values)
            else:
                check = self.policy.check_outcomes(rnd, ids, values)
            bad = check.first_error(only=INVALID)
            if bad is not None:
                raise bad
        except (LibrexError, TypeError, ValueError) as exc:
            self._reject("rejected_invalid")
            return InvalidInputError(str(exc))
        pos = self.submitters[name].owned_index().get_indexer(ids) if len(ids) else \
            np.zeros(0, np.int64)
        if np.any(pos < 0):
            self._reject("rejected_not_owner")
            return OwnershipError(f"report {rep.report_id!r}: {name!r} does not own every "
                                  f"agent it reports for")
        return int(rnd), ids, values, check

    def _apply_reports(self, items: list[tuple[str, Report]]) -> list:
        """Validate every report (name, Report) completely, then apply the accepted ones with
        one ``policy.observe_checked`` per (round, kind), in order. Returns per item
        ``(applied, duplicate)`` or the rejection's error (counted in the metrics, nothing
        applied)."""
        results: list = [None] * len(items)
        checked = []
        for j, (name, rep) in enumerate(items):
            c = self._check_report(name, rep)
            if isinstance(c, tuple) and len(c) == 4:
                checked.append((j, *c))
            else:
                results[j] = c
        if not checked:
            return results
        groups: OrderedDict[tuple, list] = OrderedDict()
        taken: dict[int, list[OutcomeCheck]] = {}  # round -> checks accepted in this batch
        for j, rnd, ids, values, check in checked:
            name, rep = items[j]
            not_pending = check.errors.get(Reason.NOT_PENDING)
            if not_pending is not None:
                self._reject("rejected_not_allocated")
                results[j] = NotAllocatedError(f"report {rep.report_id!r}: {not_pending}")
                continue
            absent = check.has(Reason.UNKNOWN_AGENT, Reason.NOT_ALLOCATED)
            if np.any(absent):
                self._reject("rejected_not_allocated")
                bad = check.agent_ids[int(np.argmax(absent))]
                results[j] = NotAllocatedError(f"report {rep.report_id!r}: agent {bad!r} was "
                                               f"not allocated in round {rnd}")
                continue
            earlier = taken.get(rnd)
            if np.any(check.has(Reason.ALREADY_REPORTED)) or (
                    earlier and np.any(check.overlaps(earlier))):
                self._reject("rejected_replay")
                results[j] = ReplayError(f"report {rep.report_id!r}: round {rnd} outcomes "
                                         f"were already reported for some of its agents")
                continue
            taken.setdefault(rnd, []).append(check)
            groups.setdefault((rnd, rep.kind), []).append(
                (j, name, rep.report_id, ids, values, check))
        for (rnd, kind), members in groups.items():
            count = sum(len(m[3]) for m in members)
            values = np.concatenate([m[4] for m in members])
            arrays = [m[3] for m in members]
            logged = np.concatenate(arrays) if all(
                isinstance(a, np.ndarray) for a in arrays) else \
                [a for ids in arrays for a in (ids.tolist() if isinstance(ids, np.ndarray)
                                               else ids)]
            try:
                applied = self.policy.observe_checked([m[5] for m in members]) if count else 0
            except LibrexError as exc:  # pragma: no cover - everything was checked above
                for m in members:
                    self._reject("rejected_invalid")
                    results[m[0]] = InvalidInputError(f"report {m[2]!r}: {exc}")
                continue
            if applied != count:  # pragma: no cover - replays were rejected above
                raise StateError(f"round {rnd}: {applied} outcomes applied of {count}")
            names = [m[1] for m in members]
            rids = [m[2] for m in members]
            sizes = [len(m[3]) for m in members]
            self._record_reports(rnd, names, rids, sizes, values)
            self._log("OBS", {"round": rnd, "kind": kind, "names": names, "report_ids": rids,
                              "sizes": sizes}, logged, {"values": values})
            for m in members:
                results[m[0]] = (len(m[3]), False)
        return results

    def _observe(self, rnd: int, ids: list, values: np.ndarray, kind: str) -> int:
        """Apply journaled outcomes (a replayed ``OBS`` record) through ``policy.observe``."""
        if kind == "success":
            return self.policy.observe(rnd, ids, successes=values)
        return self.policy.observe(rnd, ids, rewards=values)

    def _record_reports(self, rnd, names, report_ids, sizes, values) -> None:
        """The report ids applied (for duplicates) and the counters of accepted outcomes."""
        keys = self._dedup_rounds.setdefault(rnd, [])
        for name, rid, size in zip(names, report_ids, sizes):
            self._dedup[(name, rid)] = int(size)
            keys.append((name, rid))
        self.counters["outcomes_applied"] += int(sum(sizes))
        self._acc_reward += float(values.sum())
        self._acc_outcomes += int(sum(sizes))
