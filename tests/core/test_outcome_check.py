"""The policy's outcome verb: check_outcomes says per row why not, changes nothing;
observe_checked applies a check once and refuses one that no longer fits the state."""

from __future__ import annotations

import numpy as np
import pytest

from librex_alloc import (
    ConstrainedThompsonSampling,
    InvalidInputError,
    NotAllocatedError,
    StateError,
    UnknownAgentError,
)
from librex_alloc.policies.outcomes import OutcomeCheck, Reason
from tests.conftest import assert_state_equal

IDS = ["a", "b", "c", "d"]
REQ = np.array([[1.0], [1.0], [1.0], [5.0]])


def _policy(family="bernoulli"):
    p = ConstrainedThompsonSampling(1, oracle="fast", seed=1, reward_family=family,
                                    max_pending_rounds=3)
    a = p.allocate_batch(IDS, REQ, [3.0])
    if family == "bernoulli":
        assert a.allocated_agents() == ["a", "b", "c"]  # "d" does not fit
    return p, a.allocated_agents()


def test_every_reason_per_row_and_nothing_changes():
    p, _ = _policy()
    p.observe(1, ["a"], rewards=[1.0])
    before = p.get_state()
    c = p.check_outcomes(1, ["a", "b", "d", "zz", "c"], [0.5, 0.5, 0.5, 0.5, 2.0])
    assert [Reason(r) for r in c.reasons] == [Reason.ALREADY_REPORTED, Reason.OK,
                                              Reason.NOT_ALLOCATED, Reason.UNKNOWN_AGENT,
                                              Reason.BAD_VALUE]
    assert c.accepted.tolist() == [False, True, False, False, False]
    assert isinstance(c.error, InvalidInputError) and "rewards" in str(c.error)
    assert isinstance(c.errors[Reason.UNKNOWN_AGENT], UnknownAgentError)
    assert "'d' was not allocated in round 1" in str(c.errors[Reason.NOT_ALLOCATED])
    assert_state_equal(p.get_state(), before)
    c = p.check_outcomes(7, ["a"], [0.5])
    assert c.reasons.tolist() == [Reason.NOT_PENDING] and \
        isinstance(c.error, NotAllocatedError)
    assert p.check_outcomes(True, ["a"], [0.5]).reasons.tolist() == [Reason.BAD_ROUND]
    assert p.check_outcomes(1, ["a", "b"], [0.5]).reasons.tolist() == [Reason.BAD_SHAPE] * 2
    c = p.check_outcomes(1, ["b", "b"], successes=[1, 0.5])
    assert c.reasons.tolist() == [Reason.OK, Reason.BAD_VALUE] and c.kind == "success"
    c = p.check_outcomes(1, ["b", "b"], successes=[1, 1])
    assert c.reasons.tolist() == [Reason.OK, Reason.DUPLICATE]
    assert p.check_outcomes(5, [], []).errors.keys() == {Reason.NOT_PENDING}
    with pytest.raises(InvalidInputError, match="exactly one"):
        p.check_outcomes(1, ["a"])
    assert_state_equal(p.get_state(), before)


def test_gaussian_range_and_finiteness():
    p, got = _policy("gaussian")
    assert got
    c = p.check_outcomes(1, got[:1] * 3, [3.5, np.nan, 1e300])
    assert c.reasons.tolist() == [Reason.OK, Reason.BAD_VALUE, Reason.BAD_VALUE]
    assert "finite" in str(c.errors[Reason.BAD_VALUE]) or "nan" in str(c.error).lower()


def test_observe_checked_equals_observe_and_refuses_stale_checks():
    (p, _), (q, _) = _policy(), _policy()
    c = p.check_outcomes(1, ["b", "a"], [0.3, 0.9])
    assert c.ok and p.observe_checked(c) == 2
    assert q.observe(1, ["b", "a"], rewards=[0.3, 0.9]) == 2
    assert_state_equal(p.get_state(), q.get_state())
    before = p.get_state()
    with pytest.raises(StateError, match="applied already"):
        p.observe_checked(c)  # its rows are reported now
    p.allocate_batch(IDS, REQ, [3.0])
    p.remove_agents(["d"])  # round 1's rows are rebuilt: the old check is stale
    stale = OutcomeCheck(c.round, c.kind, c.agent_ids, c.values, c.accepted, c.reasons,
                         c.errors, c._pending, c._positions)
    with pytest.raises(StateError, match="check again"):
        p.observe_checked(stale)
    with pytest.raises(InvalidInputError):
        p.observe_checked(["not a check"])
    assert p.get_state()["round"] == before["round"] + 1


def test_overlaps_between_checks_of_one_round():
    p, _ = _policy()
    first = p.check_outcomes(1, ["a", "b"], [0.1, 0.2])
    second = p.check_outcomes(1, ["c", "b"], [0.3, 0.4])
    assert second.overlaps([first]).tolist() == [False, True]
    assert p.check_outcomes(1, ["c"], [0.3]).overlaps([first]).tolist() == [False]
    assert p.observe_checked([first, p.check_outcomes(1, ["c"], [0.3])]) == 3
    with pytest.raises(StateError):
        p.observe_checked([second])


def test_observe_raises_as_before_and_skips_reported_rows():
    p, _ = _policy()
    with pytest.raises(UnknownAgentError):
        p.observe(1, ["zz"], rewards=[0.5])
    with pytest.raises(NotAllocatedError, match="'d' was not allocated"):
        p.observe(1, ["a", "d"], rewards=[0.5, 0.5])
    with pytest.raises(InvalidInputError, match="twice"):
        p.observe(1, ["a", "a"], rewards=[0.5, 9.0])
    with pytest.raises(NotAllocatedError, match="no pending"):
        p.observe(4, [], rewards=[])
    assert p.observe(1, ["a"], rewards=[0.5]) == 1
    assert p.observe(1, ["a", "b"], rewards=[0.5, 0.5]) == 1
