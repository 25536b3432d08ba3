"""The ledger and fairness helpers the coordinator's pending window and ungranted rows use."""

from __future__ import annotations

import numpy as np
import pytest

from librex_alloc.fairness import FairnessConfig, FairnessState
from librex_alloc.ledger import OutcomeLedger


def ledger_with(rounds: dict) -> OutcomeLedger:
    led = OutcomeLedger(100)
    led.resize(10)
    for rnd, agents in rounds.items():
        a = np.asarray(agents, np.int64)
        led.record(rnd, a, a, np.ones(len(a)))
    return led


def test_compact_keeps_only_unreported_rows_and_expires_old_rounds():
    led = ledger_with({1: [0, 1], 2: [2, 3], 3: [4, 5], 4: [6]})
    led.mark(2, np.array([0]))  # round 2: agent 2 reported, agent 3 not
    led.mark(3, np.array([0, 1]))  # round 3: all reported
    led.compact(through=2, expire_before=1)
    assert led.rounds == [1, 2, 3, 4]
    assert led.pending(2).agents.tolist() == [3]  # only the unreported row is left
    led.compact(through=3, expire_before=1)
    assert led.rounds == [1, 2, 4]  # fully reported: gone
    led.compact(through=4, expire_before=3)
    assert led.rounds == [4]  # 1 and 2 expired; 4 has an unreported row


def test_forget_drops_rows_of_one_round():
    led = ledger_with({1: [0, 1, 2]})
    assert led.forget(1, np.array([1, 7])) == 1
    assert led.pending(1).agents.tolist() == [0, 2]
    assert led.forget(2, np.array([0])) == 0


@pytest.mark.parametrize("utility", ["service", "share"])
@pytest.mark.parametrize("horizon", [None, 10.0])
def test_withdraw_undoes_the_service_of_a_round(utility, horizon):
    cfg = FairnessConfig(mode="alpha", alpha=1.0, utility=utility, min_share=0.3, horizon=horizon)
    tracker = FairnessState(cfg)
    tracker.resize(4)
    agents = np.arange(4)
    rng = np.random.default_rng(0)
    for _ in range(5):
        tracker.record_round(agents, rng.random(4), rng.random(4))
    before = {k: v.copy() for k, v in tracker.get_state().items()}
    fractions, shares = np.array([1.0, 0.5, 0.0, 0.2]), np.array([0.4, 0.2, 0.0, 0.1])
    tracker.record_round(agents, fractions, shares)
    emptied = tracker.queue == 0
    tracker.withdraw(agents, fractions, shares)
    after = tracker.get_state()
    # as if the agents had requested and got nothing this round
    tracker_ref = FairnessState(cfg)
    tracker_ref.resize(4)
    tracker_ref.set_state(before)
    tracker_ref.record_round(agents, np.zeros(4), np.zeros(4))
    ref = tracker_ref.get_state()
    for key in ("active", "served", "utility_sum", "ema", "reward_sum"):
        assert np.allclose(after[key], ref[key]), key
    # virtual queues: exact unless the allocation emptied one (then: min_share, documented)
    assert np.allclose(after["queue"][~emptied], ref["queue"][~emptied])
    assert np.allclose(after["queue"][emptied], 0.3)
