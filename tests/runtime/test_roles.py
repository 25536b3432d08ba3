"""Roles: the job's admin credential guards control calls and state reads; a submitter's
credential never leaves it; a live submitter's name cannot be taken over."""

from __future__ import annotations

import os
import stat
import threading
import time

import numpy as np
import pytest
from runtime_helpers import assert_state_equal, local_run, make_config, make_env

from agents import Exchange, GrantBatch, Report
from agents.protocol import credential_proof
from coordinator import Coordinator, CredentialError, ReplayError
from coordinator.credentials import ADMIN_FILE, load_admin_credential


# ----------------------------------------------------------------------------- admin credential
def test_the_admin_credential_is_issued_once_kept_0600_and_read_back(tmp_path):
    env = make_env(20)
    coord, transport, shards = local_run(env, tmp_path, rounds=2)
    path = tmp_path / ADMIN_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    admin = load_admin_credential(str(tmp_path))
    coord.check_admin(admin)  # accepted
    for bad in (None, "", "0" * 64, admin[:-1], admin.upper(), 42, [admin], admin + "\x80"):
        with pytest.raises(CredentialError):
            coord.check_admin(bad)
    assert coord.counters["rejected_control"] == 8
    # a restarted coordinator reads the same credential back (and kept the count)
    coord.abandon()
    again = Coordinator(coord.config, transport)
    again.check_admin(admin)
    assert load_admin_credential(str(tmp_path)) == admin
    assert again.counters["rejected_control"] == 8
    with pytest.raises(CredentialError):
        again.check_admin("f" * 64)


def test_a_credential_file_others_can_read_is_refused(tmp_path):
    load_admin_credential(str(tmp_path), create=True)
    os.chmod(tmp_path / ADMIN_FILE, 0o644)
    with pytest.raises(PermissionError, match="0600"):
        load_admin_credential(str(tmp_path))
    (tmp_path / ADMIN_FILE).write_text("not a credential")
    os.chmod(tmp_path / ADMIN_FILE, 0o600)
    with pytest.raises(ValueError, match="not an admin credential"):
        load_admin_credential(str(tmp_path))


# ----------------------------------------------------------------------------- tokens
def test_an_exchange_never_returns_the_token(tmp_path):
    env = make_env(20)
    coord, transport, shards = local_run(env, tmp_path, n_shards=1, rounds=2)
    shard = shards[0]
    reply = shard.exchange(Exchange(coord.round + 1, nonce="n-1"))
    values = [getattr(reply, f) for f in ("proof", "submission", "reports")]
    assert shard.token not in repr(values)
    assert reply.proof == credential_proof(shard.token, "n-1")
    assert shard.exchange(Exchange(coord.round + 1, nonce="n-2")).proof != reply.proof
    with pytest.raises(ValueError, match="reached submitter"):
        shard.exchange(Exchange(coord.round + 1, name="shard-9"))


def test_an_exchange_the_coordinator_did_not_sign_is_not_acted_on(tmp_path):
    env = make_env(20)
    coord, transport, shards = local_run(env, tmp_path, n_shards=1, rounds=2)
    shard = shards[0]
    outbox = [r.report_id for r in shard.outbox]  # the last round's, not yet acknowledged
    assert outbox
    granted = shard.granted_rows
    version = shard._last[0]  # the version of its current rows
    # someone acknowledges everything and hands out grants; a reply's proof for a nonce
    # that looks like a signed one is no signature
    trick = shard.exchange(Exchange(3, nonce="coordinator:abc")).proof
    for auth in (None, "0" * 64, trick, 7):
        reply = shard.exchange(Exchange(3, GrantBatch(3, version, np.arange(5), np.ones(5)),
                                        acks=outbox, nonce="abc", auth=auth))
        assert reply.submission is None and reply.reports == []
    assert [r.report_id for r in shard.outbox] == outbox and shard.granted_rows == granted
    assert shard.unsigned_exchanges == 5
    coord.run(until_round=4)  # the coordinator's exchanges are signed: nothing changes
    assert coord.metrics_since(2)["n_missing"] == [0, 0]
    assert shard.unsigned_exchanges == 5


def test_taking_over_a_live_submitters_name_fails_and_revokes_nothing(tmp_path):
    env = make_env(40)
    coord, transport, shards = local_run(env, tmp_path, rounds=2)
    token = shards[0].token
    reg = coord.register("shard-0", shards[0].agent_ids(), handle=shards[0])
    assert reg.token is None  # the caller gets nothing
    coord.run(until_round=4)
    assert shards[0].token == token  # the shard kept its credential ...
    rnd = coord.round
    ids = [a for a in shards[0].agent_ids() if rnd in coord.allocated_rounds(a)]
    assert ids
    # ... which still works for its own reports (an outcome it already reported is refused
    # as a replay, not as a forgery)
    with pytest.raises(ReplayError):
        coord.report(token, Report("again", rnd, ids[:1], [1.0]))
    assert coord.metrics_since(2)["n_missing"] == [0, 0]
    assert coord.counters["rejected_forged"] == 1


# ----------------------------------------------------------------------------- close
def test_close_twice_and_run_after_close_do_not_raise(tmp_path):
    env = make_env(20)
    coord, transport, shards = local_run(env, tmp_path, rounds=2)
    coord.close()
    coord.close()
    assert coord.run(until_round=5)["round"] == 2


def test_close_while_the_loop_runs_stops_it_first(tmp_path):
    env = make_env(20)
    coord, transport, shards = local_run(env, tmp_path, rounds=1)
    errors = []

    def loop():
        try:
            coord.run(until_round=10**6)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    end = time.monotonic() + 60
    while coord.status()["round"] < 3:  # the loop is running (no fixed sleep)
        assert time.monotonic() < end and thread.is_alive(), errors
        time.sleep(0.01)
    coord.close()
    thread.join(10)
    assert not thread.is_alive() and not errors
    state = coord.policy_state()
    again = Coordinator(coord.config, transport)  # the closed coordinator's last state
    assert_state_equal(again.policy_state(), state)


# ----------------------------------------------------------------------------- on Ray
@pytest.mark.slow
def test_control_calls_need_the_admin_credential_on_ray(ray_session, tmp_path):
    ray = ray_session
    from agents.actors import start_shards
    from coordinator.actor import admin_credential, get_or_create_coordinator

    ns = "roles"
    env = make_env(60)
    cfg = make_config(env, tmp_path / "ckpt")
    coord = get_or_create_coordinator(cfg, "coord", namespace=ns)
    (shard,) = start_shards(env, 1, "coord", namespace=ns, seed=1)
    adm = admin_credential(cfg.checkpoint_dir)
    calls = {
        "run": lambda **k: coord.run.remote(until_round=1, **k),
        "stop": lambda **k: coord.stop.remote(**k),
        "resume": lambda **k: coord.resume.remote(**k),
        "set_budget": lambda **k: coord.set_budget.remote(list(env.budget), **k),
        "snapshot": lambda **k: coord.snapshot.remote(**k),
        "policy_state": lambda **k: coord.policy_state.remote(**k),
        "agent_stats": lambda **k: coord.agent_stats.remote([0], **k),
        "allocated_rounds": lambda **k: coord.allocated_rounds.remote(0, **k),
        "metrics_since": lambda **k: coord.metrics_since.remote(0, **k),
        "inject_crash": lambda **k: coord.inject_crash.remote("nowhere", **k),
        "close": lambda **k: coord.close.remote(**k),
    }
    for name, call in calls.items():
        for kw in ({}, {"admin": "0" * 64}, {"admin": None}):
            with pytest.raises(Exception) as err:
                ray.get(call(**kw))
            cause = getattr(err.value, "cause", err.value)
            assert isinstance(cause, CredentialError), (name, kw, err.value)
    # a submitter actor's push-report needs it too (it reports with its own credential)
    with pytest.raises(Exception) as err:
        ray.get(shard.report.remote(1, [0], [1.0]))
    assert isinstance(getattr(err.value, "cause", err.value), CredentialError)
    # ... and so do moving it to another coordinator and reading its agents
    for kw in ({}, {"admin": "0" * 64}):
        with pytest.raises(Exception) as err:
            ray.get(shard.attach.remote("elsewhere", **kw))
        assert isinstance(getattr(err.value, "cause", err.value), CredentialError)
    status = ray.get(coord.status.remote())  # open: counters only
    assert status["counters"]["rejected_control"] == 3 * len(calls) + 3
    assert ray.get(shard.stats.remote())["registrations"] == 1  # still this job's
    assert ray.get(coord.run.remote(until_round=3, admin=adm))["round"] == 3
    # the shard's exchange, called by anyone, gives its token away no more
    reply = ray.get(shard.exchange.remote(Exchange(4, nonce="x")))
    assert reply.proof is not None and len(reply.proof) == 64
    assert not hasattr(reply, "token")
    # registering under the shard's name with its handle: no credential, nothing revoked
    reg = ray.get(coord.register.remote("shard-0", list(range(60)), shard))
    assert reg.token is None
    assert ray.get(coord.run.remote(until_round=6, admin=adm))["round"] == 6
    rows = ray.get(coord.metrics_since.remote(3, admin=adm))
    assert rows["n_missing"] == [0, 0, 0]
    after = ray.get(coord.status.remote())["counters"]
    assert after["rejected_forged"] == 1
    ray.get(coord.close.remote(admin=adm))
    ray.kill(coord, no_restart=True)
    # a submitter whose coordinator is gone for good belongs to nobody: attach passes the
    # check and fails only because no coordinator of that name exists
    with pytest.raises(Exception) as err:
        ray.get(shard.attach.remote("nowhere-coord"))
    assert not isinstance(getattr(err.value, "cause", err.value), CredentialError)
    assert "nowhere-coord" in str(err.value)
    ray.kill(shard, no_restart=True)


@pytest.mark.slow
def test_reading_a_live_agent_needs_the_admin_credential(ray_session, tmp_path):
    ray = ray_session
    from agents.actors import start_live_agent
    from agents.examples import BernoulliAgent
    from coordinator.actor import admin_credential, get_or_create_coordinator

    ns = "roles-live"
    env = make_env(2)
    cfg = make_config(env, tmp_path / "ckpt")
    coord = get_or_create_coordinator(cfg, "coord", namespace=ns)
    adm = admin_credential(cfg.checkpoint_dir)
    agent = BernoulliAgent(env.request_table[0, 0], env.means[0, 0], seed=0)
    w = start_live_agent("b", agent, env.n_resources, "coord", agent_id=0, namespace=ns)
    ray.get(coord.run.remote(until_round=3, admin=adm))
    for kw in ({}, {"admin": "f" * 64}):
        with pytest.raises(Exception) as err:
            ray.get(w.agent_attribute.remote(0, "request_vector", **kw))
        assert isinstance(getattr(err.value, "cause", err.value), CredentialError)
    for bad_id, attr, exc in ((0, "_rng", AttributeError), (0, "__class__", AttributeError),
                              (0, 3, AttributeError), (7, "seed", KeyError),
                              ([0], "seed", KeyError)):
        with pytest.raises(Exception) as err:
            ray.get(w.agent_attribute.remote(bad_id, attr, admin=adm))
        assert isinstance(getattr(err.value, "cause", err.value), exc), (bad_id, attr)
    got = ray.get(w.agent_attribute.remote(0, "request_vector", admin=adm))
    assert np.array_equal(got, env.request_table[0, 0])
    assert ray.get(coord.run.remote(until_round=5, admin=adm))["round"] == 5  # unharmed
    ray.get(coord.close.remote(admin=adm))
    for h in (coord, w):
        ray.kill(h, no_restart=True)
