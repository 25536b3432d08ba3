"""The runtime's plain classes, in-process (no Ray): protocol, exactly-once, security, metrics."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
from runtime_helpers import (
    K,
    assert_state_equal,
    local_run,
    make_config,
    make_env,
    metrics_rounds,
)

from agents import AgentShard, Exchange, GrantBatch, LiveAgentHost, Report
from agents.examples import HashingWorker
from coordinator import Coordinator, CredentialError, LocalTransport, OwnershipError, ReplayError
from coordinator.core import SimulatedCrash
from coordinator.journal import read_journal
from coordinator.metrics_log import consolidate
from librex_alloc import InvalidInputError, NotAllocatedError, PolicyConfig, StateError

# ----------------------------------------------------------------------------- the shard


def test_shard_submits_one_batch_and_samples_rewards_in_one_call():
    env = make_env(100)
    shard = AgentShard("s", env, np.arange(0, 100, 2), seed=5)
    reply = shard.exchange(Exchange(next_round=1))
    sub = reply.submission
    assert np.array_equal(sub.agent_ids, np.arange(0, 100, 2))
    assert sub.requests.shape == (50, K)
    assert np.array_equal(sub.requests, env.request_table[::2, 0, :])
    assert np.array_equal(sub.expected, env.means[::2, 0])
    rows = np.array([0, 3, 7])
    reply = shard.exchange(Exchange(2, GrantBatch(1, sub.version, rows, np.ones(3)),
                                    known_version=sub.version))
    assert reply.submission.agent_ids is None  # unchanged rows are not sent again
    (rep,) = reply.reports
    assert rep.round == 1 and list(rep.agent_ids) == [0, 6, 14]
    rng = np.random.default_rng([5, shard.stream, 1])
    assert np.array_equal(rep.values, env.sample(np.array([0, 6, 14]), np.zeros(3, int), rng))
    # a repeated exchange (a restarted coordinator) does not act on the grants again
    again = shard.exchange(Exchange(2, GrantBatch(1, sub.version, rows, np.ones(3))))
    assert [r.report_id for r in again.reports] == [rep.report_id]
    assert shard.granted_rows == 3
    # acknowledged reports are forgotten
    assert shard.exchange(Exchange(3, acks=[rep.report_id])).reports == []


def test_shard_delays_and_drops_outcomes():
    env = make_env(400)
    shard = AgentShard("s", env, seed=1, delay=(1, 3), report_prob=0.5)
    sub = shard.exchange(Exchange(1)).submission
    rows = np.arange(400)
    first = shard.exchange(Exchange(2, GrantBatch(1, sub.version, rows, np.ones(400))))
    assert first.reports == []  # nothing is due yet
    seen = {}
    for t in range(3, 7):
        for rep in shard.exchange(Exchange(t)).reports:
            seen[rep.report_id] = len(rep.agent_ids)
    assert 150 < sum(seen.values()) < 250  # about half reported, all within 3 rounds late


# ----------------------------------------------------------------------------- the round


def test_round_loop_applies_every_outcome_once(tmp_path):
    env = make_env(300)
    coord, _, shards = local_run(env, tmp_path, n_shards=3, rounds=25)
    rows = coord.metrics_since(0)
    assert rows["round"] == list(range(1, 26))
    assert sum(rows["n_allocated"]) == coord.counters["outcomes_applied"] > 0
    assert sum(rows["n_reported"]) == coord.counters["outcomes_applied"]
    assert sum(s.granted_rows for s in shards) == coord.counters["outcomes_applied"]
    assert all(n == 0 for n in rows["n_missing"])
    assert all(u <= 1 + 1e-9 for u in rows["utilization_0"])
    assert not any(np.isnan(rows["regret"])) and all(r >= -1e-6 for r in rows["regret"])
    # the policy's round counter is the coordinator's and every allocation is recorded
    assert coord.policy.round == 25 and coord.status()["counters"]["rejected_forged"] == 0


def test_empty_rounds_and_a_dead_submitter_do_not_stop_the_run(tmp_path):
    env = make_env(60)
    coord, transport, shards = local_run(env, tmp_path, n_shards=2)
    del transport.submitters["shard-1"]  # its calls now fail, as a dead actor's would
    coord.run(until_round=12)
    rows = coord.metrics_since(0)
    assert rows["n_missing"] == [1] * 12
    assert rows["n_rows"][-1] == 30
    lonely = Coordinator(make_config(env, tmp_path / "empty"), LocalTransport())
    lonely.run(until_round=3)
    assert lonely.metrics_since(0)["n_rows"] == [0, 0, 0]


# ----------------------------------------------------------------------------- exactly once
POINTS = ["decided", "decision_committed", "pushed", "snapshot_written"]


class _CrashAt:
    def __init__(self, point, nth):
        self.point, self.nth, self.seen = point, nth, 0

    def __call__(self, point):
        if point == self.point:
            self.seen += 1
            if self.seen == self.nth:
                raise SimulatedCrash(point)


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_any_point_resumes_to_the_uninterrupted_state(tmp_path, point):
    env = make_env(200)
    ref, _, _ = local_run(env, tmp_path / "ref", rounds=34)
    coord, transport, shards = local_run(env, tmp_path / "run")
    coord.crash_hook = _CrashAt(point, 2 if point == "snapshot_written" else 17)
    with pytest.raises(SimulatedCrash):
        coord.run(until_round=34)
    # a new process: the constructor restores from the directory; the shards kept running
    coord.abandon()
    coord = Coordinator(coord.config, transport)
    assert coord.counters["restarts"] == 1
    coord.run(until_round=34)
    assert_state_equal(coord.policy_state(), ref.policy_state())
    assert coord.counters["outcomes_applied"] == ref.counters["outcomes_applied"]
    assert coord.counters["outcomes_applied"] == sum(s.granted_rows for s in shards)
    assert metrics_rounds(coord) == list(range(1, 35))
    for col in ("reward", "n_allocated", "expected_reward", "n_reported"):
        assert coord.metrics_since(0)[col] == ref.metrics_since(0)[col], col


def test_torn_journal_tail_is_ignored(tmp_path):
    env = make_env(100)
    coord, transport, _ = local_run(env, tmp_path, rounds=15)
    before = coord.policy_state()
    path = coord.journal.path
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(b"LXJ1\x10\x00\x00\x00garbage")  # a record cut off by a crash
    coord.abandon()
    again = Coordinator(coord.config, transport)
    assert_state_equal(again.policy_state(), before)
    assert os.path.getsize(path) >= size  # truncated back to the valid records (+ restart)
    assert all(k for k, _, _ in read_journal(path))


def test_unreadable_newest_snapshot_falls_back_to_the_previous_one(tmp_path):
    env = make_env(100)
    coord, transport, _ = local_run(env, tmp_path, rounds=25, checkpoint_every=10)
    before = coord.policy_state()
    snaps = coord.store.snapshots()
    assert len(snaps) == 2
    newest = coord.store.snapshot_path(snaps[-1])
    with open(newest, "r+b") as f:
        f.seek(os.path.getsize(newest) // 2)
        f.write(b"\xff" * 64)
    coord.abandon()
    again = Coordinator(coord.config, transport)
    assert_state_equal(again.policy_state(), before)
    assert metrics_rounds(again) == list(range(1, 26))
    again.run(until_round=30)
    assert metrics_rounds(again) == list(range(1, 31))


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    env = make_env(50)
    coord, _, _ = local_run(env, tmp_path, rounds=3)
    with pytest.raises(StateError, match="in use"):
        coord.store.acquire(timeout=0.1)  # one coordinator per directory at a time
    coord.close()
    other = make_config(env, tmp_path, policy=PolicyConfig(K, fairness="none", oracle="fast"))
    with pytest.raises(StateError, match="configuration"):
        Coordinator(other)


# ----------------------------------------------------------------------------- security
class _Greedy:
    """A live agent asking for almost nothing (so it is allocated often)."""

    def request(self, rnd):
        return np.full(K, 0.01)

    def on_grant(self, rnd, grant):
        return None  # it reports by hand in the test


def test_nobody_reports_for_someone_else(tmp_path):
    env = make_env(80)
    coord, transport, shards = local_run(env, tmp_path, rounds=3)
    hostile = LiveAgentHost("hostile", _Greedy(), K, agent_id="h-0")
    transport.add(hostile)
    reg = coord.register("hostile", ["h-0"])
    hostile.set_credential(reg)
    coord.run(until_round=12)
    mine = coord.policy.last_allocated_round("h-0")
    assert mine is not None
    honest_round = coord.round
    honest_id = next(a for a in (coord.policy.registry.agent_id(int(s)) for s in
                                 coord.policy.ledger.pending(honest_round).agents)
                     if a != "h-0")
    counters = dict(coord.counters)
    state = coord.policy_state()

    def attempt(error, token, report, counter):
        with pytest.raises(error):
            coord.report(token, report)
        counters[counter] += 1
        assert coord.counters == counters
        assert_state_equal(coord.policy_state(), state)

    attempt(OwnershipError, reg.token, Report("x1", honest_round, [honest_id], [1.0]),
            "rejected_not_owner")
    attempt(CredentialError, "0" * 32, Report("x2", mine, ["h-0"], [1.0]), "rejected_forged")
    attempt(NotAllocatedError, reg.token, Report("x3", 10**6, ["h-0"], [1.0]),
            "rejected_not_allocated")
    attempt(OwnershipError, reg.token, Report("x4", mine, ["h-0", "h-1"], [1.0, 1.0]),
            "rejected_not_owner")  # h-1 is nobody's: not owned
    unallocated = next(r for r in coord.policy.ledger.rounds
                       if r != mine and coord.policy.ledger.pending(r).find(
                           np.array([coord.policy.registry.agent_slots(["h-0"])[0]]))[0] < 0)
    attempt(NotAllocatedError, reg.token, Report("x5", unallocated, ["h-0"], [1.0]),
            "rejected_not_allocated")
    with pytest.raises(OwnershipError):
        coord.register("hostile", [honest_id])
    counters["rejected_not_owner"] += 1
    # its own outcome is accepted once; a replay under a new id is rejected; a retransmission
    # of the same report id is acknowledged without being applied again
    assert coord.report(reg.token, Report("ok", mine, ["h-0"], [1.0]))["applied"] == 1
    counters["outcomes_applied"] += 1
    state = coord.policy_state()
    attempt(ReplayError, reg.token, Report("again", mine, ["h-0"], [1.0]), "rejected_replay")
    ack = coord.report(reg.token, Report("ok", mine, ["h-0"], [1.0]))
    assert ack == {"report_id": "ok", "applied": 1, "duplicate": True}
    counters["duplicate_reports"] += 1
    assert coord.counters == counters
    assert_state_equal(coord.policy_state(), state)
    # counters survive a restart
    coord.abandon()
    again = Coordinator(coord.config, transport)
    assert {k: v for k, v in again.counters.items() if k != "restarts"} == \
        {k: v for k, v in counters.items() if k != "restarts"}


def test_a_submission_naming_someone_elses_agents_is_rejected(tmp_path):
    env = make_env(40)
    coord, transport, shards = local_run(env, tmp_path)
    thief = AgentShard("thief", env, np.arange(0, 40))  # submits every agent's rows
    transport.add(thief)
    thief.set_credential(coord.register("thief", ["t-0"]))
    coord.run(until_round=4)
    assert coord.counters["rejected_submissions"] >= 1
    assert max(coord.metrics_since(0)["n_rows"]) == 40  # only the honest shards' rows
    assert any("does not own" in n for n in thief.notices)


def test_stale_credentials_after_reregistration_and_unregister(tmp_path):
    env = make_env(40)
    coord, transport, shards = local_run(env, tmp_path, rounds=2)
    old = shards[0].token
    with pytest.raises(CredentialError):  # someone else cannot take the name over
        coord.register("shard-0", shards[0].agent_ids())
    assert coord.counters["rejected_forged"] == 1
    # someone holding the live shard's handle registers its name: no credential comes back,
    # and the shard keeps its own (the attempt is counted when the shard proves it)
    reg = coord.register("shard-0", shards[0].agent_ids(), handle=shards[0])
    assert reg.token is None
    coord.run(until_round=3)
    assert shards[0].token == old and coord.counters["rejected_forged"] == 2
    assert coord.metrics_since(2)["n_missing"] == [0]
    # the shard restarts (its credential is lost) and registers with its handle: the new
    # credential reaches it with the next exchange; the old one is revoked
    shards[0].token = None
    shards[0].set_credential(coord.register("shard-0", shards[0].agent_ids(),
                                            handle=shards[0]))
    coord.run(until_round=4)
    assert shards[0].token not in (None, old)
    assert coord.metrics_since(3)["n_missing"] == [0]
    with pytest.raises(CredentialError):
        coord.leave(old, [0])
    n = coord.unregister(shards[1].token)
    assert n == 20 and all(a not in coord.policy.registry for a in range(20, 40))
    coord.run(until_round=6)
    assert coord.metrics_since(0)["n_rows"][-1] == 20
    # the freed agents (and their policy slots, reused) join again under a new submitter;
    # their outcomes are validated against the new slots, every one applied once
    late = AgentShard("late", env, np.arange(20, 40), seed=3)
    late.set_credential(coord.register("late", late.agent_ids(), handle=late))
    before = coord.counters["outcomes_applied"]
    coord.run(until_round=12)
    rows = coord.metrics_since(6)
    assert rows["n_rows"][-1] == 40
    assert rows["n_reported"] == rows["n_allocated"]  # each round's outcomes, all applied
    rejected = {k: v for k, v in coord.counters.items() if k.startswith("rejected")}
    assert rejected == {**dict.fromkeys(rejected, 0), "rejected_forged": 3}, rejected
    assert late.granted_rows > 0
    assert coord.counters["outcomes_applied"] - before == sum(rows["n_reported"])


# ----------------------------------------------------------------------------- live agents
def test_live_hashing_worker_learns_which_option_works(tmp_path):
    worker = HashingWorker([(1, 16), (1, 64)], work_mib=1, need_mib=32, deadline_s=30)
    host = LiveAgentHost("worker", worker, 2, agent_id="w")
    transport = LocalTransport({"worker": host})
    cfg = make_config(make_env(2), tmp_path)
    cfg = type(cfg)(PolicyConfig(2, oracle="fast", seed=3), (4.0, 256.0), str(tmp_path))
    coord = Coordinator(cfg, transport)
    host.set_credential(coord.register("worker", ["w"]))
    coord.run(until_round=40)
    jobs = worker.history
    assert coord.counters["outcomes_applied"] == len(jobs) >= 39  # all but the last round's
    assert all(not j["success"] for j in jobs if j["option"] == 0)  # 16 MiB < 32 needed
    assert all(j["success"] for j in jobs if j["option"] == 1)
    stats0, stats1 = coord.agent_stats(["w"], 0), coord.agent_stats(["w"], 1)
    assert stats1["mean"][0] > stats0["mean"][0]
    assert sum(j["option"] == 1 for j in jobs[-10:]) >= 8  # it learned


def test_live_agent_reports_later_through_poll_and_survives_its_errors(tmp_path):
    worker = HashingWorker([(2, 64)], work_mib=1, need_mib=8, deadline_s=30,
                           asynchronous=True)

    class Broken:
        def request(self, rnd):
            if rnd % 2:
                raise RuntimeError("boom")
            return [1.0, 1.0]

        def on_grant(self, rnd, grant):
            return 0.5

    host = LiveAgentHost("pair", {"w": worker, "b": Broken()}, 2)
    transport = LocalTransport({"pair": host})
    cfg = type(make_config(make_env(2), tmp_path))(PolicyConfig(2, oracle="fast", seed=1),
                                                   (8.0, 512.0), str(tmp_path))
    coord = Coordinator(cfg, transport)
    host.set_credential(coord.register("pair", ["w", "b"]))
    coord.run(until_round=10)
    worker.wait(30)
    coord.run(until_round=12)  # the last outcomes arrive with the next replies
    assert host.errors == 7 and any("boom" in n for n in host.notices)
    n_jobs = len(worker.history)
    assert n_jobs >= 10
    assert coord.counters["outcomes_applied"] >= n_jobs - 2 + 4
    assert coord.counters["rejected_replay"] == 0


# ----------------------------------------------------------------------------- metrics
def test_metrics_stream_to_parquet_in_bounded_memory(tmp_path):
    env = make_env(50)
    coord, _, _ = local_run(env, tmp_path, rounds=30, rows_per_part=7, checkpoint_every=1000)
    assert coord.metrics.buffered < 7
    assert len(coord.metrics.parts()) == 4
    out = tmp_path / "rounds.parquet"
    assert consolidate(coord.metrics.directory, str(out)) == 28
    table = pq.read_table(out)
    assert table.column("round").to_pylist() == list(range(1, 29))
    assert pq.ParquetFile(out).metadata.num_row_groups == 1  # sized for analysis, not per part
    from librex_alloc.round_step import read_config
    for path in (out, coord.metrics.parts()[0][0]):  # the run's configuration travels along
        assert read_config(path)["rows_per_part"] == 7
        assert read_config(path)["policy"]["fairness"] == coord.config.policy.to_dict()["fairness"]
    assert metrics_rounds(coord) == list(range(1, 31))


# ----------------------------------------------------------------------------- dynamics
def dynamic_env():
    return make_env(150, churn_rate=0.1, drift="random_walk", drift_rate=0.02, delay=(0, 2),
                    missing_prob=0.1)


def test_churn_drift_and_late_feedback_from_the_environment(tmp_path):
    env = dynamic_env()
    coord, _, shards = local_run(env, tmp_path, rounds=30)
    rows = coord.metrics_since(0)
    assert coord.status()["agents"] == 150  # every hosted agent registered, active or not
    assert len(set(rows["n_rows"])) > 1  # churn: the active set changes
    granted = sum(s.granted_rows for s in shards)
    applied = coord.counters["outcomes_applied"]
    assert 0.75 * granted < applied < granted  # some outcomes never arrive, some are late
    assert sum(rows["n_reported"]) == applied
    rejected = {k: v for k, v in coord.counters.items() if k.startswith("rejected")}
    assert not any(rejected.values()), rejected
    assert coord.counters["duplicate_reports"] == 0


def test_crash_under_churn_and_delays_resumes_exactly(tmp_path):
    ref, _, _ = local_run(dynamic_env(), tmp_path / "ref", rounds=30)
    coord, transport, _ = local_run(dynamic_env(), tmp_path / "run")
    coord.crash_hook = _CrashAt("pushed", 13)
    with pytest.raises(SimulatedCrash):
        coord.run(until_round=30)
    coord.abandon()
    coord = Coordinator(coord.config, transport)
    coord.run(until_round=30)
    assert_state_equal(coord.policy_state(), ref.policy_state())
    assert coord.counters["outcomes_applied"] == ref.counters["outcomes_applied"]


@pytest.mark.parametrize("as_array", [True, False])
def test_a_report_naming_an_agent_twice_is_rejected(tmp_path, as_array):
    """Repeated ids in one report (an int array or a list) change nothing and are counted."""
    env = make_env(60)
    # outcomes arrive 5 rounds late: round 4's are not reported yet
    coord, transport, shards = local_run(env, tmp_path, n_shards=1, rounds=4,
                                         shard_kw={"delay": 5})
    shard = shards[0]
    rnd = coord.round
    pending = coord.policy.ledger.pending(rnd)
    ids = [coord.policy.registry.agent_id(int(s)) for s in pending.agents[:3]]
    assert len(ids) == 3
    twice = [ids[0], ids[1], ids[0]]
    arg = np.asarray(twice, dtype=np.int64) if as_array else twice
    counters, state = dict(coord.counters), coord.policy_state()
    with pytest.raises(InvalidInputError, match="twice"):
        coord.report(shard.token, Report("dup-ids", rnd, arg, [1.0, 0.0, 1.0]))
    counters["rejected_invalid"] += 1
    assert coord.counters == counters
    assert_state_equal(coord.policy_state(), state)
    # the same agents once each are accepted
    once = np.asarray(ids, dtype=np.int64) if as_array else ids
    assert coord.report(shard.token, Report("ok-ids", rnd, once, [1.0, 0.0, 1.0]))["applied"] == 3
