"""Outcome intake of a policy: check a batch of outcomes without changing anything, then apply it.

:meth:`AllocationPolicy.check_outcomes <librex_alloc.policies.base.AllocationPolicy.check_outcomes>`
says per outcome row whether it would be accepted and why not (:class:`Reason`); it reads the
policy's registry, ledger and posterior family, and changes nothing. The
:class:`OutcomeCheck` it returns is applied by
:meth:`~librex_alloc.policies.base.AllocationPolicy.observe_checked`, which does not validate
the rows again: it only makes sure the check still describes the policy's state (the same
pending round, rows still unreported). ``observe`` is the two in one call.

A caller that holds several outcome batches (the coordinator: many submitters' reports per
round) checks each, decides which to take (:meth:`OutcomeCheck.overlaps` finds rows that two
checks of one round share) and applies those together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from librex_alloc._validation import as_float_array
from librex_alloc.errors import (
    InvalidInputError,
    LibrexError,
    NotAllocatedError,
    StateError,
    UnknownAgentError,
)
from librex_alloc.registry import check_ids, factorize_ids


class Reason(IntEnum):
    """Why an outcome row would not be accepted (``OK``: it would). A row gets the first that
    applies, in this order."""

    OK = 0
    BAD_SHAPE = 1  #: the values are not numbers, or not one per agent
    BAD_VALUE = 2  #: not finite, out of range for the reward family, or not a 0/1 flag
    DUPLICATE = 3  #: the agent appears earlier in the same batch
    BAD_ROUND = 4  #: the round is not an int
    NOT_PENDING = 5  #: the round is outside the pending window (not played, or expired)
    UNKNOWN_AGENT = 6  #: the policy does not know the agent
    NOT_ALLOCATED = 7  #: the agent was not allocated in that round
    ALREADY_REPORTED = 8  #: that (round, agent) outcome was applied before


#: The order in which ``observe`` raises (the first problem it meets): the whole batch's
#: problems first, then the per-agent ones.
RAISE_ORDER = (Reason.DUPLICATE, Reason.BAD_SHAPE, Reason.BAD_VALUE, Reason.UNKNOWN_AGENT,
               Reason.BAD_ROUND, Reason.NOT_PENDING, Reason.NOT_ALLOCATED,
               Reason.ALREADY_REPORTED)


@dataclass(frozen=True, eq=False)
class OutcomeCheck:
    """What :meth:`check_outcomes` found; row arrays are (m,), aligned with ``agent_ids``.

    round: the round reported; kind: "reward" or "success"; values: (m,) float64 (NaN where
    they could not be read); accepted: bool (m,); reasons: int8 (m,) :class:`Reason` codes;
    errors: the first error of each problem found, even on rows refused for an earlier
    reason (:class:`~librex_alloc.errors.LibrexError` subclasses, as ``observe`` raises
    them); error: the one ``observe`` would raise first."""

    round: object
    kind: str
    agent_ids: list
    values: np.ndarray
    accepted: np.ndarray
    reasons: np.ndarray
    errors: dict = field(default_factory=dict)
    _pending: object = None  # the ledger's PendingRound the positions index, if any
    _positions: np.ndarray | None = None  # (m,) rows of that round, -1 where absent

    @property
    def error(self) -> LibrexError | None:
        return self.first_error()

    @property
    def ok(self) -> bool:
        """Every row would be accepted."""
        return bool(self.accepted.all())

    def first_error(self, ignore: Sequence[Reason] = (), only: Sequence[Reason] | None = None
                    ) -> LibrexError | None:
        """The first error ``observe`` would raise, leaving out reasons in ``ignore`` (or
        looking only at those in ``only``)."""
        for reason in RAISE_ORDER:
            if reason in self.errors and reason not in ignore and \
                    (only is None or reason in only):
                return self.errors[reason]
        return None

    def has(self, *reasons: Reason) -> np.ndarray:
        """bool (m,): rows refused for one of ``reasons``."""
        out = self.reasons == reasons[0] if reasons else np.zeros(len(self.reasons), bool)
        for r in reasons[1:]:
            out |= self.reasons == r
        return out

    def overlaps(self, others: Sequence[OutcomeCheck]) -> np.ndarray:
        """bool (m,): accepted rows of this check that an accepted row of one of ``others``
        (checks of the same policy and round) reports too."""
        out = np.zeros(len(self.agent_ids), dtype=bool)
        mine = self._positions
        if mine is None:
            return out
        taken = [o._positions[o.accepted] for o in others
                 if o._pending is self._pending and o._positions is not None]
        if taken:
            out = self.accepted & np.isin(mine, np.concatenate(taken))
        return out


def check_outcomes(policy, round_id, agent_ids, rewards=None, *, successes=None
                   ) -> OutcomeCheck:
    """The check of :meth:`AllocationPolicy.check_outcomes` (no state change).

    Raises :class:`InvalidInputError` only when there are no rows to speak of: ids that are not
    a list of hashable ids, or not exactly one of rewards / successes."""
    # an integer id array of known, distinct agents (the coordinator's reports): one look-up
    fast = _distinct_known_slots(policy.registry, agent_ids)
    ids = agent_ids.tolist() if fast is not None else check_ids(agent_ids)
    if (rewards is None) == (successes is None):
        raise InvalidInputError("observe: give exactly one of rewards or successes")
    m = len(ids)
    kind = "success" if successes is not None else "reward"
    reasons = np.zeros(m, dtype=np.int8)
    errors: dict = {}

    def refuse(rows: np.ndarray, reason: Reason, error: LibrexError) -> None:
        """Rows with this problem: its error is kept even where an earlier reason already
        refuses them (``observe`` raises in :data:`RAISE_ORDER`)."""
        if rows.any():
            errors.setdefault(reason, error)
            reasons[rows & (reasons == 0)] = reason

    def refuse_all(reason: Reason, error: LibrexError) -> None:
        """A problem of the whole batch: an error even when it has no rows."""
        refuse(np.ones(m, dtype=bool), reason, error)
        errors.setdefault(reason, error)

    # values: numbers, one per agent, finite and in range
    raw, name = (successes, "successes") if successes is not None else (rewards, "rewards")
    try:
        values = as_float_array(raw, name, shape=(m,), finite=False)
    except InvalidInputError as exc:
        values = np.full(m, np.nan)
        refuse_all(Reason.BAD_SHAPE, exc)
    else:
        if successes is not None:
            good = (values == 0.0) | (values == 1.0)
        else:
            good = policy.posterior.rewards_ok(values)
        if not good.all():
            refuse(~good, Reason.BAD_VALUE, _value_error(policy, raw, name, m, successes))
    # the agents: once each, known to the policy
    slots = fast
    if slots is None:  # the general case: factorize, then look the distinct ids up
        codes, uniques = factorize_ids(ids)
        if len(uniques) != m:
            first = np.zeros(m, dtype=bool)
            first[np.unique(codes, return_index=True)[1]] = True
            refuse(~first, Reason.DUPLICATE,
                   InvalidInputError("observe: an agent appears twice in one call"))
        slots = policy.registry.lookup(uniques)[codes] if m else np.zeros(0, np.int64)
    # the round: pending, and the agents allocated in it and not reported yet
    pending, positions = None, None
    try:
        pending = policy.ledger.pending(round_id)
    except NotAllocatedError as exc:
        refuse_all(Reason.NOT_PENDING, exc)
    except InvalidInputError as exc:
        refuse_all(Reason.BAD_ROUND, exc)
    unknown = slots < 0
    if unknown.any():
        bad = ids[int(np.argmax(unknown))]
        errors.setdefault(Reason.UNKNOWN_AGENT, UnknownAgentError(f"unknown agent id {bad!r}"))
        refuse(unknown, Reason.UNKNOWN_AGENT, errors[Reason.UNKNOWN_AGENT])
    if pending is not None:
        positions = pending.find(slots) if m else np.zeros(0, np.int64)
        positions = np.where(unknown, -1, positions)
        absent = positions < 0
        if (absent & ~unknown).any():
            bad = ids[int(np.argmax(absent & ~unknown))]
            errors.setdefault(Reason.NOT_ALLOCATED, NotAllocatedError(
                f"agent {bad!r} was not allocated in round {round_id}"))
            refuse(absent & ~unknown, Reason.NOT_ALLOCATED, errors[Reason.NOT_ALLOCATED])
        done = ~absent & pending.reported[np.maximum(positions, 0)] \
            if len(pending.reported) else absent & False
        if done.any():
            bad = ids[int(np.argmax(done))]
            errors.setdefault(Reason.ALREADY_REPORTED, InvalidInputError(
                f"agent {bad!r}: its outcome of round {round_id} was already reported"))
            refuse(done, Reason.ALREADY_REPORTED, errors[Reason.ALREADY_REPORTED])
    return OutcomeCheck(round_id, kind, ids, values, reasons == 0, reasons, errors, pending,
                        positions)


def _distinct_known_slots(registry, agent_ids) -> np.ndarray | None:
    """Slots of an integer id array whose ids are all known and distinct (one hash look-up
    of the array, no factorizing: the coordinator's reports), else None (the general path
    then says which ids repeat or are unknown)."""
    if type(agent_ids) is not np.ndarray or agent_ids.ndim != 1 or \
            agent_ids.dtype.kind not in "iu" or len(agent_ids) <= 16:
        return None
    slots = registry.lookup(agent_ids)
    if slots.min() < 0 or np.bincount(slots).max() > 1:
        return None
    return slots


def _value_error(policy, raw, name: str, m: int, successes) -> LibrexError:
    """The error ``observe`` raises for these values (its message names the first problem)."""
    try:
        values = as_float_array(raw, name, shape=(m,))
        if successes is None:
            policy.posterior.validate_rewards(values)
    except LibrexError as exc:
        return exc
    return InvalidInputError("successes: expected 0/1 flags")


def observe_checked(policy, checks) -> int:
    """Apply the accepted rows of ``checks`` (one :class:`OutcomeCheck` or a sequence) as
    :meth:`AllocationPolicy.observe_checked` documents; returns how many were applied."""
    if isinstance(checks, OutcomeCheck):
        checks = [checks]
    groups: dict = {}
    for c in checks:
        if not isinstance(c, OutcomeCheck):
            raise InvalidInputError(f"observe_checked: expected OutcomeChecks, got "
                                    f"{type(c).__name__}")
        if not c.accepted.any():
            continue
        try:
            current = policy.ledger.pending(c.round)
        except LibrexError:
            current = None
        if current is None or current is not c._pending:
            raise StateError(f"observe_checked: the check of round {c.round!r} no longer "
                             f"describes this policy's state; check again")
        groups.setdefault((int(c.round), c.kind), []).append(c)
    plan = []
    for (rnd, kind), members in groups.items():
        pos = np.concatenate([c._positions[c.accepted] for c in members])
        pending = members[0]._pending
        if pending.reported[pos].any() or \
                np.count_nonzero(np.bincount(pos, minlength=1) > 1):
            raise StateError(f"observe_checked: round {rnd} outcomes of these checks were "
                             f"applied already or are reported twice; check again")
        plan.append((rnd, kind, pending, pos,
                     np.concatenate([c.values[c.accepted] for c in members])))
    applied = 0
    for rnd, kind, pending, pos, values in plan:
        policy.ledger.mark(rnd, pos)
        policy._learn(pending.arms[pos], values, kind == "success")
        policy.fairness.record_rewards(pending.agents[pos], values, pending.fractions[pos])
        applied += len(pos)
    return applied


__all__ = ["OutcomeCheck", "RAISE_ORDER", "Reason", "check_outcomes", "observe_checked"]
