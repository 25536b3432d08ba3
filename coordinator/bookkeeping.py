"""The end of a round: its metrics row, grants that never arrived, the pending window.

:class:`RoundBookkeeping` is a part of :class:`~coordinator.core.Coordinator` (a mixin: it
uses the coordinator's policy, submitter table, counters and metrics log). The row is the
shared :func:`~librex_alloc.round_step.round_row` (the simulator writes the same) plus the
runtime's columns (submitters, missing parts, counters, ungranted names, the pending window);
:meth:`_apply_metrics` closes the round, live and in a replay alike.
"""

from __future__ import annotations

import time

import numpy as np

from coordinator.decision import Decided
from librex_alloc.round_step import fairness_columns, round_row

#: the coordinator's counters (each a metrics column, journaled with every change)
COUNTERS = ("outcomes_applied", "duplicate_reports", "rejected_forged", "rejected_not_owner",
            "rejected_not_allocated", "rejected_replay", "rejected_invalid",
            "rejected_submissions", "restarts", "rejected_control", "ungranted_rows")


class RoundBookkeeping:
    """The metrics side of the coordinator (see the module docstring)."""

    def _metrics_row(self, d: Decided) -> dict:
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

    def _withdraw(self, d: Decided, names: list) -> None:
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

    def _reference_reward(self, d: Decided) -> float | None:
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
