"""The round loop survives its callers (in-process, no Ray): malformed replies, submissions and
reports from a registered submitter beside a good one, budget changes between rounds, a late
shard and a shard that dies holding its grants."""

from __future__ import annotations

import dataclasses
import tempfile
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_helpers import K, assert_state_equal, local_run, make_config, make_env

from agents import AgentShard, LiveAgentHost, Report, Submission
from agents.protocol import Reply
from coordinator import Coordinator, CoordinatorConfig, LocalTransport
from coordinator.transport import Ticket
from librex_alloc import InvalidInputError


# ----------------------------------------------------------------------------- the callers
class Boom:
    """An object that raises on every access (what a hostile actor can send over Ray)."""

    def __getattribute__(self, name):
        raise RuntimeError("boom")

    def _raise(self, *a, **k):
        raise RuntimeError("boom")

    __len__ = __iter__ = __hash__ = __eq__ = __ne__ = __lt__ = __str__ = __repr__ = _raise
    __index__ = __int__ = __float__ = __bool__ = __array__ = __getitem__ = _raise


class RaisingReply(Reply):
    """A Reply subclass whose reports raise when read."""

    @property
    def reports(self):
        raise RuntimeError("boom")

    @reports.setter
    def reports(self, value):
        pass


class Small:
    """A live agent asking for little; every grant earns 0.5."""

    def request(self, rnd):
        return np.full(K, 0.01)

    def on_grant(self, rnd, grant):
        return 0.5


class Hostile:
    """A registered live host whose replies ``corrupt(reply, msg)`` rewrites."""

    def __init__(self):
        self.host = LiveAgentHost("hostile", {"h-0": Small(), "h-1": Small()}, K)
        self.name = "hostile"
        self.corrupt = None

    def exchange(self, msg):
        reply = self.host.exchange(msg)
        return reply if self.corrupt is None else self.corrupt(reply, msg)


def setup(directory, n_agents=40):
    """A coordinator with one good shard (agents 0..n-1) and the hostile host."""
    env = make_env(n_agents)
    coord, transport, (good,) = local_run(env, directory, n_shards=1)
    hostile = Hostile()
    transport.bind("hostile", hostile)
    hostile.host.set_credential(coord.register("hostile", ["h-0", "h-1"], handle=hostile))
    coord.run(until_round=3)
    assert coord.metrics_since(2)["n_rows"] == [n_agents + 2]
    return coord, transport, good, hostile


# ----------------------------------------------------------------------------- the table
def report(msg, **changes):
    """A well-formed report of the hostile host's for a round h-0 was allocated in, changed."""
    fields = {"report_id": f"bad-{msg.nonce}", "round": max(msg.next_round - 1, 1),
              "agent_ids": ["h-0"], "values": np.array([0.5]), "kind": "reward", **changes}
    rep = Report.__new__(Report)
    rep.__dict__.update(fields)  # no validation: exactly what a hostile actor can send
    return rep


def with_report(**changes):
    def corrupt(reply, msg):
        return Reply(reply.proof, reply.submission, [*reply.reports, report(msg, **changes)])
    return corrupt


def submission(msg, **changes):
    fields = {"round": msg.next_round, "version": f"v-{msg.nonce}", "agent_ids": ["h-0"],
              "requests": np.full((1, K), 0.01), "options": None, "expected": None,
              **changes}
    sub = Submission.__new__(Submission)
    sub.__dict__.update(fields)
    return sub


def with_submission(**changes):
    def corrupt(reply, msg):
        return Reply(reply.proof, submission(msg, **changes), reply.reports)
    return corrupt


def with_reply(**changes):
    def corrupt(reply, msg):
        out = Reply.__new__(Reply)
        out.__dict__.update({**reply.__dict__, **changes})
        return out
    return corrupt


def const(value):
    return lambda reply, msg: value


#: (label, corrupt, counter that must grow (None: none), hostile rows missing)
SCENARIOS = [
    # not a Reply at all
    ("none", const(None), "rejected_invalid", True),
    ("int", const(42), "rejected_invalid", True),
    ("dict", const({"proof": "x"}), "rejected_invalid", True),
    ("raises on access", const(Boom()), "rejected_invalid", True),
    ("raising subclass", lambda r, m: RaisingReply(r.proof, r.submission, []),
     "rejected_invalid", True),
    ("an exception object", const(RuntimeError("as if the call failed")), None, True),
    # a Reply with bad fields
    ("reports None", with_reply(reports=None), "rejected_invalid", True),
    ("reports a str", with_reply(reports="abc"), "rejected_invalid", True),
    ("reports a dict", with_reply(reports={1: 2}), "rejected_invalid", True),
    ("reports huge", with_reply(reports=[None] * 100_001), "rejected_invalid", True),
    ("report None", with_reply(reports=[None]), "rejected_invalid", False),
    ("report raises", lambda r, m: Reply(r.proof, r.submission, [Boom()]),
     "rejected_invalid", False),
    ("proof a list", with_reply(proof=["x"]), "rejected_forged", True),
    ("proof missing", with_reply(proof=None), "rejected_forged", True),
    ("proof wrong", with_reply(proof="0" * 64), "rejected_forged", True),
    ("proof raises", with_reply(proof=Boom()), "rejected_forged", True),
    ("submission a dict", with_reply(submission={"round": 1}), "rejected_invalid", True),
    ("submission raises", with_reply(submission=Boom()), "rejected_invalid", True),
    # malformed reports
    ("report id a list", with_report(report_id=["x"]), "rejected_invalid", False),
    ("report id None", with_report(report_id=None), "rejected_invalid", False),
    ("report id an int", with_report(report_id=7), "rejected_invalid", False),
    ("report id huge", with_report(report_id="x" * 10_000), "rejected_invalid", False),
    ("report id raises", with_report(report_id=Boom()), "rejected_invalid", False),
    ("round a list", with_report(round=[1]), "rejected_invalid", False),
    ("round a str", with_report(round="1"), "rejected_invalid", False),
    ("round a bool", with_report(round=True), "rejected_invalid", False),
    ("round a float", with_report(round=1.0), "rejected_invalid", False),
    ("round huge", with_report(round=10**30), "rejected_not_allocated", False),
    ("round negative", with_report(round=-1), "rejected_not_allocated", False),
    ("round in the future", with_report(round=10**6), "rejected_not_allocated", False),
    ("round raises", with_report(round=Boom()), "rejected_invalid", False),
    ("ids None", with_report(agent_ids=None), "rejected_invalid", False),
    ("ids a str", with_report(agent_ids="h-0"), "rejected_invalid", False),
    ("ids nested", with_report(agent_ids=[["h-0"]]), "rejected_invalid", False),
    ("ids floats", with_report(agent_ids=[1.5]), "rejected_invalid", False),
    ("ids twice", with_report(agent_ids=["h-0", "h-0"], values=np.array([0.5, 0.5])),
     "rejected_invalid", False),
    ("ids 2-D array", with_report(agent_ids=np.array([[0]])), "rejected_invalid", False),
    ("ids object array", with_report(agent_ids=np.array(["h-0"], dtype=object)),
     "rejected_invalid", False),
    ("ids raise", with_report(agent_ids=[Boom()]), "rejected_invalid", False),
    ("another's agent", with_report(agent_ids=[0]), "rejected_not_owner", False),
    ("unknown agent", with_report(agent_ids=["nobody"]), "rejected_not_owner", False),
    ("values NaN", with_report(values=np.array([np.nan])), "rejected_invalid", False),
    ("values inf", with_report(values=np.array([np.inf])), "rejected_invalid", False),
    ("values huge", with_report(values=np.array([1e308])), "rejected_invalid", False),
    ("values negative", with_report(values=[-1.0]), "rejected_invalid", False),
    ("values too many", with_report(values=[0.5, 0.5]), "rejected_invalid", False),
    ("values strs", with_report(values=["a"]), "rejected_invalid", False),
    ("values None", with_report(values=None), "rejected_invalid", False),
    ("values raise", with_report(values=Boom()), "rejected_invalid", False),
    ("values object array", with_report(values=np.array([0.5], dtype=object)),
     "rejected_invalid", False),
    ("values 2-D", with_report(values=np.array([[0.5]])), "rejected_invalid", False),
    ("kind a list", with_report(kind=["reward"]), "rejected_invalid", False),
    ("kind unknown", with_report(kind="other"), "rejected_invalid", False),
    ("kind raises", with_report(kind=Boom()), "rejected_invalid", False),
    # malformed submissions
    ("sub round a list", with_submission(round=[1]), "rejected_submissions", True),
    ("sub round raises", with_submission(round=Boom()), "rejected_submissions", True),
    ("sub round stale", lambda r, m: with_submission(round=m.next_round + 5)(r, m), None,
     True),
    ("sub version a list", with_submission(version=["v"]), "rejected_submissions", True),
    ("sub version None", with_submission(version=None), "rejected_submissions", True),
    ("sub version huge", with_submission(version="v" * 10_000), "rejected_submissions", True),
    ("sub another's agents", with_submission(agent_ids=[0]), "rejected_submissions", True),
    ("sub unknown agents", with_submission(agent_ids=["zz"]), "rejected_submissions", True),
    ("sub ids raise", with_submission(agent_ids=[Boom()]), "rejected_submissions", True),
    ("sub requests NaN", with_submission(requests=np.full((1, K), np.nan)),
     "rejected_submissions", True),
    ("sub requests inf", with_submission(requests=np.full((1, K), np.inf)),
     "rejected_submissions", True),
    ("sub requests huge", with_submission(requests=np.full((1, K), 1e300)),
     "rejected_submissions", True),
    ("sub requests negative", with_submission(requests=np.full((1, K), -1.0)),
     "rejected_submissions", True),
    ("sub requests shape", with_submission(requests=np.full((1, K + 1), 0.01)),
     "rejected_submissions", True),
    ("sub requests 1-D", with_submission(requests=np.full(K, 0.01)),
     "rejected_submissions", True),
    ("sub requests a list", with_submission(requests=[[0.01] * K]),
     "rejected_submissions", True),
    ("sub requests objects", with_submission(requests=np.full((1, K), 0.01, dtype=object)),
     "rejected_submissions", True),
    ("sub requests raise", with_submission(requests=Boom()), "rejected_submissions", True),
    ("sub options floats", with_submission(options=np.array([0.5])),
     "rejected_submissions", True),
    ("sub options a list", with_submission(options=[0]), "rejected_submissions", True),
    ("sub options too many", with_submission(options=np.array([0, 1])),
     "rejected_submissions", True),
    ("sub expected NaN", with_submission(expected=np.array([np.nan])),
     "rejected_submissions", True),
    ("sub expected huge", with_submission(expected=np.array([1e300])),
     "rejected_submissions", True),
    ("sub expected shape", with_submission(expected=np.array([0.5, 0.5])),
     "rejected_submissions", True),
    ("sub expected raises", with_submission(expected=Boom()), "rejected_submissions", True),
]


@pytest.mark.parametrize("label,corrupt,counter,missing", SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_a_hostile_submitter_cannot_stop_the_loop(tmp_path, label, corrupt, counter,
                                                  missing):
    coord, transport, good, hostile = setup(tmp_path)
    before = dict(coord.counters)
    granted = good.granted_rows
    hostile.corrupt = corrupt
    for _ in range(3):  # every call: the loop goes on
        assert coord.run(max_rounds=1)["round"] == coord.round
    rows = coord.metrics_since(3)
    assert rows["round"] == [4, 5, 6]
    assert all(n >= 40 for n in rows["n_rows"])  # the good shard's rows are served ...
    assert good.granted_rows > granted  # ... and granted
    assert rows["n_missing"][1:] == ([1, 1] if missing else [0, 0]), rows["n_missing"]
    grew = {k for k in coord.counters if coord.counters[k] > before[k]}
    grew -= {"outcomes_applied", "duplicate_reports"}
    if label == "an exception object":  # a failed call: the grants it carried are counted
        grew -= {"ungranted_rows"}
    assert grew == ({counter} if counter else set()), grew
    # the rejections are durable: a restarted coordinator has the same state and counters
    coord.journal.commit()
    state, counters = coord.policy_state(), dict(coord.counters)
    coord.abandon()
    again = Coordinator(coord.config, transport)
    assert_state_equal(again.policy_state(), state)
    assert {k: v for k, v in again.counters.items() if k != "restarts"} == \
        {k: v for k, v in counters.items() if k != "restarts"}
    # the hostile host behaves again: its rows are back in the next rounds
    hostile.corrupt = None
    again.run(until_round=again.round + 3)
    assert again.metrics_since(again.round - 1)["n_missing"] == [0]


JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=4),
    st.lists(st.integers(-3, 3), max_size=3), st.lists(st.floats(), max_size=3),
    st.builds(Boom), st.just(np.array([[1.0]])), st.just(np.array([np.nan])),
    st.just(np.array(["h-0"], dtype=object)), st.dictionaries(st.text(max_size=2),
                                                            st.integers(), max_size=2),
    st.tuples(st.integers()))
FIELDS = ([("reply", f.name) for f in dataclasses.fields(Reply)]
          + [("report", f.name) for f in dataclasses.fields(Report)]
          + [("submission", f.name) for f in dataclasses.fields(Submission)])


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(where=st.sampled_from(FIELDS), value=JUNK)
def test_any_junk_in_any_field_leaves_the_loop_running(where, value):
    kind, name = where
    corrupt = {"reply": with_reply, "report": with_report,
               "submission": with_submission}[kind](**{name: value})
    with tempfile.TemporaryDirectory() as d:
        coord, transport, good, hostile = setup(d, n_agents=20)
        granted = good.granted_rows
        hostile.corrupt = corrupt
        coord.run(until_round=6)
        rows = coord.metrics_since(3)
        assert rows["round"] == [4, 5, 6] and all(n >= 20 for n in rows["n_rows"])
        assert good.granted_rows > granted
        coord.close()


def test_a_report_whose_id_is_a_list_is_rejected_and_counted(tmp_path):
    coord, transport, good, hostile = setup(tmp_path)
    rnd = coord.allocated_rounds("h-0")[-1]
    counters, state = dict(coord.counters), coord.policy_state()
    for rid in (["x"], None, 7):
        bad = Report.__new__(Report)
        bad.__dict__.update(report_id=rid, round=rnd, agent_ids=["h-0"], values=[0.5],
                            kind="reward")
        with pytest.raises(InvalidInputError, match="report id"):
            coord.report(hostile.host.token, bad)
        counters["rejected_invalid"] += 1
        assert coord.counters == counters
        assert_state_equal(coord.policy_state(), state)


# ----------------------------------------------------------------------------- budget
def test_set_budget_between_rounds_takes_effect_at_the_next_round(tmp_path):
    env = make_env(60)
    coord, transport, shards = local_run(env, tmp_path, rounds=3)
    coord.set_budget(env.budget)  # the same budget: the loop goes on
    coord.run(until_round=5)
    half = np.asarray(env.budget) / 2
    coord.set_budget(half.tolist())
    seen, allocate = [], coord.policy.allocate
    coord.policy.allocate = lambda request: (seen.append(request.budget), allocate(request))[1]
    coord.run(until_round=6)
    del coord.policy.allocate
    assert np.array_equal(coord._prev_request.budget, half)
    assert np.all(coord.metrics_since(5)["n_allocated"][0] > 0)
    assert len(seen) == 1 and np.array_equal(seen[0], half)
    # bad budgets change nothing
    counters, state = dict(coord.counters), coord.policy_state()
    for bad in ([1.0] * (K + 1), [np.nan] * K, [-1.0] * K, "abc", None, [[1.0] * K],
                [True] * K, [Boom()] * K):
        with pytest.raises(InvalidInputError):
            coord.set_budget(bad)
    assert coord.counters == counters and np.array_equal(coord.budget, half)
    assert_state_equal(coord.policy_state(), state)
    # the new budget is durable
    coord.run(until_round=8)
    coord.abandon()
    again = Coordinator(coord.config, transport)
    assert np.array_equal(again.budget, half)
    again.run(until_round=9)
    assert np.array_equal(again._prev_request.budget, half)


def test_set_budget_from_another_thread_while_running(tmp_path):
    """A budget change during a round applies from a later round; no round fails."""
    import threading

    env = make_env(60)
    coord, transport, shards = local_run(env, tmp_path, rounds=2)
    done = threading.Event()

    def change():
        for i in range(50):
            coord.set_budget(np.asarray(env.budget) * (0.5 + (i % 2) / 2))
            time.sleep(0.001)
        done.set()

    thread = threading.Thread(target=change)
    thread.start()
    while not done.is_set():
        coord.run(max_rounds=1)
    thread.join()
    coord.run(max_rounds=2)
    assert coord.round >= 4


# ----------------------------------------------------------------------------- a late shard
class SlowTransport(LocalTransport):
    """In-process calls whose replies arrive late: ``slow[name]`` lists the delays (s) of the
    next calls to ``name`` (the call runs at once; its reply is held back)."""

    def __init__(self):
        super().__init__()
        self.slow: dict[str, list] = {}

    def send(self, name, msg):
        ticket = super().send(name, msg)
        delays = self.slow.get(name)
        ready = time.monotonic() + (delays.pop(0) if delays else 0.0)
        return _Held(ticket.result, ready)

    def wait(self, tickets, timeout):
        end = time.monotonic() + timeout
        pending = [t for t in tickets if t.ready > time.monotonic()]
        if pending:
            time.sleep(max(0.0, min(max(t.ready for t in pending), end) - time.monotonic()))
        now = time.monotonic()
        return [(t, t.result) for t in tickets if t.ready <= now]


class _Held(Ticket):
    __slots__ = ("ready",)

    def __init__(self, result, ready):
        super().__init__(result)
        self.ready = ready


def slow_run(tmp_path, deadline, **cfg_kw):
    env = make_env(40)
    transport = SlowTransport()
    coord = Coordinator(make_config(env, tmp_path, round_deadline_s=deadline, **cfg_kw),
                        transport)
    shards = []
    for i, idx in enumerate(np.array_split(np.arange(40), 2)):
        shard = AgentShard(f"shard-{i}", env, idx, seed=11)
        transport.add(shard)
        shard.set_credential(coord.register(shard.name, shard.agent_ids(), handle=shard))
        shards.append(shard)
    coord.run(until_round=3)
    return coord, transport, shards


def test_late_outcomes_are_accepted_within_the_pending_time(tmp_path):
    """A shard answers one call 0.5 s past the 0.5 s deadline; meanwhile more rounds than the
    pending window's 3 pass. Its outcomes are within the window's seconds (3 deadlines by
    default): all accepted."""
    coord, transport, shards = slow_run(tmp_path, 0.5, max_pending_rounds=3)
    transport.slow["shard-1"] = [1.0]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.3:
        coord.run(max_rounds=5)
    coord.run(max_rounds=2)  # the late reply's outcomes are acknowledged by now
    assert coord.round > 4 + 2 * 3  # the late reply came many rounds later
    assert coord.counters["rejected_not_allocated"] == 0
    granted = sum(s.granted_rows for s in shards)
    assert coord.counters["outcomes_applied"] == granted  # each round's, the last included
    assert coord.metrics_since(coord.round - 3)["n_missing"] == [0, 0, 0]  # it is back


def test_outcomes_older_than_both_windows_expire(tmp_path):
    """With a 0.2 s and 2-round window, a reply 0.4 s late brings outcomes that expired."""
    coord, transport, shards = slow_run(tmp_path, 0.15, max_pending_rounds=2,
                                        pending_window_s=0.2)
    assert coord.policy.config.max_pending_rounds == 1000  # the ledger's bound
    transport.slow["shard-1"] = [0.4]
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.6:
        coord.run(max_rounds=5)
    coord.run(max_rounds=2)
    assert coord.counters["rejected_not_allocated"] >= 1
    assert len(coord.policy.ledger.rounds) <= 3  # old rounds do not pile up


def test_a_late_shard_rejoins_at_the_next_round(tmp_path):
    """Four calls in a row abandoned (slower than 3 deadlines) are no failures: when the shard
    answers in time again it is called, and served, in the very next round."""
    coord, transport, shards = slow_run(tmp_path, 0.05)
    transport.slow["shard-1"] = [0.2] * 4
    while transport.slow["shard-1"] or coord.status()["in_flight"]:
        coord.run(max_rounds=1)
    assert coord.metrics_since(coord.round - 1)["n_missing"] == [1]  # out while it was slow
    coord.run(max_rounds=1)
    assert coord.metrics_since(coord.round - 1)["n_missing"] == [0]
    assert not coord.status()["failing"]


def test_a_submitter_that_fails_is_backed_off_but_rejoins_once_it_answers(tmp_path):
    coord, transport, shards = slow_run(tmp_path, 0.05)
    real = transport.submitters["shard-1"]

    class Dead:
        name = "shard-1"

        def exchange(self, msg):
            raise RuntimeError("actor died")

    transport.submitters["shard-1"] = Dead()
    coord.run(max_rounds=6)
    assert coord.status()["failing"]["shard-1"][0] >= 3
    transport.submitters["shard-1"] = real
    t0 = time.monotonic()
    while coord.metrics_since(coord.round - 1)["n_missing"] != [0]:
        coord.run(max_rounds=1)
        assert time.monotonic() - t0 < 6.0  # the back-off is bounded (5 s)
    assert not coord.status()["failing"]


# ----------------------------------------------------------------------------- dead shards
class DiesWithGrants:
    """Wraps a shard: the call carrying the grants of round ``die_round`` fails (the actor
    died before it got them)."""

    def __init__(self, shard, die_round):
        self.shard, self.name, self.die_round = shard, shard.name, die_round
        self.lost_rows = None

    def exchange(self, msg):
        if msg.grants is not None and msg.grants.round == self.die_round:
            self.lost_rows = len(msg.grants.rows)
            raise RuntimeError("actor died")
        return self.shard.exchange(msg)


def test_grants_that_never_reached_a_dead_shard_are_counted_and_not_credited(tmp_path):
    env = make_env(60)
    coord, transport, shards = local_run(env, tmp_path, rounds=4, fairness="none")
    dying = DiesWithGrants(shards[1], 5)
    transport.bind("shard-1", dying)
    reg = coord.policy.registry
    ids = shards[1].agent_ids()
    served = coord.policy.fairness.served[reg.agent_slots(ids)].copy()
    coord.run(until_round=5)
    assert dying.lost_rows > 0
    assert coord.counters["ungranted_rows"] == dying.lost_rows
    assert coord.metrics_since(4)["ungranted_rows"] == [dying.lost_rows]
    # not credited: the shard's agents were not served in round 5 ...
    assert np.array_equal(coord.policy.fairness.served[reg.agent_slots(ids)], served)
    # ... and no outcome is awaited for them
    assert all(5 not in coord.allocated_rounds(a) for a in ids)
    state = coord.policy_state()
    # the same after a restart (the journal replays it)
    coord.journal.commit()
    coord.abandon()
    again = Coordinator(coord.config, transport)
    assert_state_equal(again.policy_state(), state)
    assert again.counters["ungranted_rows"] == dying.lost_rows
    again.run(until_round=8)  # the shard is back
    assert again.metrics_since(7)["n_missing"] == [0]


def test_the_pending_window_settings_are_validated(tmp_path):
    env = make_env(10)
    cfg = make_config(env, tmp_path)
    assert cfg.pending_window_rounds == 20 and cfg.pending_window_s == 90.0
    assert cfg.pending_max_rounds == cfg.policy.max_pending_rounds == 1000
    assert dataclasses.replace(cfg) == cfg  # normalizing twice changes nothing
    assert make_config(env, tmp_path, pending_window_s=0).pending_max_rounds == 20
    for bad in ({"pending_window_s": -1}, {"pending_window_s": float("inf")},
                {"pending_window_s": True}, {"pending_window_rounds": 0},
                {"pending_max_rounds": 5}, {"pending_window_rounds": 2.5}):
        with pytest.raises(ValueError):
            make_config(env, tmp_path, **bad)
    assert isinstance(cfg, CoordinatorConfig)
