"""The runtime on Ray, with real kills: the coordinator (ray.kill and SIGKILL, and a crash
between a report's commit and its reply), a shard (SIGKILL), a hostile actor, a live worker."""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest
from runtime_helpers import assert_state_equal, local_run, make_config, make_env

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

from agents.actors import start_live_agent, start_shards  # noqa: E402
from agents.examples import HashingWorker  # noqa: E402
from coordinator.actor import admin_credential, get_or_create_coordinator  # noqa: E402
from librex_alloc import PolicyConfig  # noqa: E402


def wait_until(predicate, timeout=60.0, every=0.05):
    """Poll ``predicate`` until it is true (a condition wait, not a fixed sleep)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError("condition not reached")


def start_job(ns, tmp_path, n_agents=300, n_shards=2, **cfg_kw):
    env = make_env(n_agents)
    cfg = make_config(env, tmp_path / "ckpt", **cfg_kw)
    coord = get_or_create_coordinator(cfg, "coord", namespace=ns)
    shards = start_shards(env, n_shards, "coord", namespace=ns, seed=11)
    return env, cfg, coord, shards


# ----------------------------------------------------------------------------- coordinator
@pytest.mark.parametrize("how", ["ray.kill", "SIGKILL"])
def test_coordinator_killed_twice_ends_as_an_uninterrupted_run(ray_session, tmp_path, how):
    ns = f"coord-kill-{how}"
    env, cfg, coord, shards = start_job(ns, tmp_path)
    adm = admin_credential(cfg.checkpoint_dir)
    ray.get(coord.run.remote(until_round=8, admin=adm))
    first_pid = ray.get(coord.pid.remote())
    running = coord.run.remote(until_round=40, admin=adm)
    wait_until(lambda: ray.get(coord.status.remote())["round"] >= 14)
    if how == "ray.kill":
        ray.kill(coord, no_restart=False)
    else:
        os.kill(first_pid, signal.SIGKILL)
    assert ray.get(running, timeout=120)["round"] == 40  # the retried call finished the job
    assert ray.get(coord.pid.remote()) != first_pid
    # a second crash, between committing a decision and pushing its grants
    ray.get(coord.inject_crash.remote("decision_committed", admin=adm))
    assert ray.get(coord.run.remote(until_round=50, admin=adm), timeout=120)["round"] == 50
    status = ray.get(coord.status.remote())
    assert status["counters"]["restarts"] == 2

    ref, _, _ = local_run(env, tmp_path / "reference", rounds=50)
    assert_state_equal(ray.get(coord.policy_state.remote(admin=adm)), ref.policy_state())
    applied = status["counters"]["outcomes_applied"]
    assert applied == ref.counters["outcomes_applied"]  # none lost, none applied twice
    granted = sum(ray.get(s.stats.remote())["granted_rows"] for s in shards)
    assert applied == granted
    rows = ray.get(coord.metrics_since.remote(0, 10_000, admin=adm))
    assert rows["round"] == list(range(1, 51))
    assert rows["n_allocated"] == ref.metrics_since(0)["n_allocated"]


def test_a_dead_shard_does_not_stop_the_run(ray_session, tmp_path):
    ns = "shard-kill"
    env, cfg, coord, shards = start_job(ns, tmp_path, round_deadline_s=1.0)
    adm = admin_credential(cfg.checkpoint_dir)
    ray.get(coord.run.remote(until_round=6, admin=adm))
    victim = shards[0]
    before = ray.get(victim.stats.remote())
    ids = list(range(150))  # shard-0 hosts agents 0..149
    stats_before = ray.get(coord.agent_stats.remote(ids, admin=adm))
    os.kill(before["pid"], signal.SIGKILL)

    def back() -> bool:  # play rounds until the restarted shard takes part again
        status = ray.get(coord.run.remote(max_rounds=5, admin=adm))
        rows = ray.get(coord.metrics_since.remote(status["round"] - 1, admin=adm))
        return rows["n_missing"] == [0]

    wait_until(back, timeout=120, every=0)
    end = ray.get(coord.status.remote())["round"] + 10
    assert ray.get(coord.run.remote(until_round=end, admin=adm), timeout=120)["round"] == end
    rows = ray.get(coord.metrics_since.remote(6, 100_000, admin=adm))
    assert rows["round"] == list(range(7, end + 1))
    assert max(rows["n_missing"]) == 1  # rounds closed without it ...
    assert rows["n_missing"][-10:] == [0] * 10  # ... until it was back
    after = ray.get(victim.stats.remote())
    assert after["incarnation"] != before["incarnation"] and after["registrations"] == 1
    assert after["granted_rows"] > 0  # it is served again
    stats_after = ray.get(coord.agent_stats.remote(ids, admin=adm))
    assert np.array_equal(stats_after["slots"], stats_before["slots"])  # same agents
    assert np.all(stats_after["count"] >= stats_before["count"])  # posteriors kept
    assert stats_after["count"].sum() > stats_before["count"].sum()
    counters = ray.get(coord.status.remote())["counters"]
    assert counters["rejected_replay"] == 0 and counters["duplicate_reports"] == 0


# ----------------------------------------------------------------------------- live agents
class Quiet:
    """A live agent that asks for little and reports by hand (through the actor)."""

    def request(self, rnd):
        return np.full(2, 0.01)

    def on_grant(self, rnd, grant):
        return None


class Hostile:
    """A submitter actor that registers honestly, then tries to cheat in every way it can."""

    def __init__(self, ns):
        from agents import LiveAgentHost

        self.host = LiveAgentHost("hostile", Quiet(), 2, agent_id="h-0")
        self.coord = ray.get_actor("coord", namespace=ns)
        reg = ray.get(self.coord.register.remote("hostile", ["h-0"]))
        self.host.set_credential(reg)
        self.token = reg.token

    def exchange(self, msg):
        return self.host.exchange(msg)

    def _try(self, token, report):
        from agents import Report

        try:
            return ray.get(self.coord.report.remote(token, Report(*report)))
        except Exception as exc:  # the coordinator's error, re-raised by Ray
            return type(getattr(exc, "cause", exc)).__name__

    def cheat(self, foreign_id, foreign_round):
        out = {
            "foreign agent": self._try(self.token, ("a1", foreign_round, [foreign_id], [1.0])),
            "forged token": self._try("f" * 32, ("a2", foreign_round, [foreign_id], [1.0])),
            "unallocated round": self._try(self.token, ("a3", 10**6, ["h-0"], [1.0])),
        }
        for what, args in (("steal agents", ("hostile", [foreign_id])),
                           ("take over a name", ("worker", ["w"]))):
            try:
                ray.get(self.coord.register.remote(*args))
                out[what] = "accepted"
            except Exception as exc:
                out[what] = type(getattr(exc, "cause", exc)).__name__
        return out

    def report_twice(self, own_round):
        first = self._try(self.token, ("b1", own_round, ["h-0"], [1.0]))
        return first, self._try(self.token, ("b2", own_round, ["h-0"], [0.0]))


def test_live_worker_hostile_actor_and_a_retried_report(ray_session, tmp_path):
    ns = "live"
    cfg = make_config(make_env(2), tmp_path / "ckpt")
    cfg = type(cfg)(PolicyConfig(2, oracle="fast", seed=5), (4.0, 256.0), cfg.checkpoint_dir,
                    round_deadline_s=30.0)
    coord = get_or_create_coordinator(cfg, "coord", namespace=ns)
    adm = admin_credential(cfg.checkpoint_dir)
    worker = HashingWorker([(1, 16), (1, 64)], work_mib=1, need_mib=32, deadline_s=30)
    w = start_live_agent("worker", worker, 2, "coord", agent_id="w", namespace=ns)
    q = start_live_agent("quiet", Quiet(), 2, "coord", agent_id="q", namespace=ns)
    ray.get(coord.run.remote(until_round=12, admin=adm))
    # the worker did real work and every outcome was applied once
    history = ray.get(w.agent_attribute.remote("w", "history", admin=adm))
    assert len(history) >= 10
    assert all(not h["success"] for h in history if h["option"] == 0)
    assert all(h["success"] for h in history if h["option"] == 1)
    counters = ray.get(coord.status.remote())["counters"]
    assert counters["outcomes_applied"] == len(history)

    # a hostile actor: every attempt is rejected with a clear error, counted, changes nothing
    hostile = ray.remote(Hostile).options(name="hostile", namespace=ns).remote(ns)
    ray.get(hostile.cheat.remote("w", 1))  # constructed and registered (nothing is pending)
    ray.get(coord.run.remote(until_round=20, admin=adm))
    h_round = ray.get(coord.allocated_rounds.remote("h-0", admin=adm))[-1]
    q_round = ray.get(coord.allocated_rounds.remote("q", admin=adm))[-1]
    w_round = ray.get(coord.allocated_rounds.remote("w", admin=adm))[-1]
    counters = ray.get(coord.status.remote())["counters"]
    state = ray.get(coord.policy_state.remote(admin=adm))
    got = ray.get(hostile.cheat.remote("w", w_round))
    assert got == {"foreign agent": "OwnershipError", "forged token": "CredentialError",
                   "unallocated round": "NotAllocatedError", "steal agents": "OwnershipError",
                   "take over a name": "CredentialError"}
    after = ray.get(coord.status.remote())["counters"]
    assert after["rejected_not_owner"] - counters["rejected_not_owner"] == 2
    assert after["rejected_forged"] - counters["rejected_forged"] == 2
    assert after["rejected_not_allocated"] - counters["rejected_not_allocated"] == 1
    assert_state_equal(ray.get(coord.policy_state.remote(admin=adm)), state)
    first, second = ray.get(hostile.report_twice.remote(h_round))
    assert first["applied"] == 1 and second == "ReplayError"
    after = ray.get(coord.status.remote())["counters"]
    assert after["rejected_replay"] - counters["rejected_replay"] == 1

    # the quiet agent reports by hand; the coordinator dies after making it durable and
    # before answering: Ray retries the call, which is recognized and applied once
    count = ray.get(coord.agent_stats.remote(["q"], admin=adm))["count"][0]
    ray.get(coord.inject_crash.remote("report_committed", admin=adm))
    ack = ray.get(q.report.remote(q_round, ["q"], [1.0], report_id="q-report-1", admin=adm),
                  timeout=120)
    assert ack == {"report_id": "q-report-1", "applied": 1, "duplicate": True}
    final = ray.get(coord.status.remote())["counters"]
    assert final["restarts"] == 1 and final["duplicate_reports"] == 1
    assert final["outcomes_applied"] == after["outcomes_applied"] + 1
    assert ray.get(coord.agent_stats.remote(["q"], admin=adm))["count"][0] == count + 1
    # a replay of the same outcome under a new id is refused
    with pytest.raises(Exception, match="already reported"):
        ray.get(q.report.remote(q_round, ["q"], [1.0], admin=adm))
