"""Configs, policies and ``LibrexAlloc`` pickle and deep-copy (issue 14, item 5).

``PolicyConfig.prior``/``params`` were ``mappingproxy`` objects, which neither pickle nor
deep-copy: no policy could cross a ``multiprocessing`` / ``concurrent.futures`` boundary or be
copied for a what-if run. A copy must continue exactly as the original (same draws) and share
nothing with it.
"""

from __future__ import annotations

import concurrent.futures
import copy
import multiprocessing
import pickle

import numpy as np
import pytest

from librex_alloc import FairnessConfig, LibrexAlloc, PolicyConfig, RoundRequest, make_policy
from librex_alloc.config import FrozenMapping
from librex_alloc.policies import BASELINES
from tests.conftest import assert_state_equal

NAMES = [cls.name for cls in BASELINES]
IDS = ["a", "b", "c", "d", "e", ("t", 1)]
REQ = np.array([[1.0, 2.0], [2.0, 1.0], [1.5, 1.5], [3.0, 0.5], [0.5, 3.0], [1.0, 1.0]])
BUDGET = np.array([4.0, 4.0])
PACE = np.array([3.0, 2.5])


def _copies():
    return {
        "pickle": lambda x: pickle.loads(pickle.dumps(x)),
        "pickle-0": lambda x: pickle.loads(pickle.dumps(x, protocol=0)),
        "deepcopy": copy.deepcopy,
    }


COPIES = list(_copies())


def _config() -> PolicyConfig:
    return PolicyConfig(2, fairness=FairnessConfig(mode="alpha", alpha=0.5, min_share=0.1),
                        oracle="fast", reward_family="gaussian",
                        prior={"mu_prior": 0.5, "kappa_prior": 2.0}, discount=0.99, seed=7,
                        params={"exploration": 1.5})


@pytest.mark.parametrize("how", COPIES)
def test_config_round_trips(how):
    cfg = _config()
    twin = _copies()[how](cfg)
    assert twin == cfg and hash(twin) == hash(cfg)
    assert isinstance(twin.prior, FrozenMapping) and isinstance(twin.params, FrozenMapping)
    assert twin.to_dict() == cfg.to_dict()
    assert dict(twin.prior) == {"mu_prior": 0.5, "kappa_prior": 2.0}


def test_config_stays_immutable():
    cfg = _config()
    with pytest.raises(TypeError):
        cfg.prior["mu_prior"] = 1.0
    with pytest.raises(TypeError):
        cfg.params["exploration"] = 3.0
    with pytest.raises(AttributeError):
        cfg.prior._data = {}
    with pytest.raises(AttributeError):
        cfg.discount = 0.5
    # the config does not keep the caller's dict: changing it later changes nothing
    params = {"exploration": 1.5}
    c2 = PolicyConfig(2, params=params)
    params["exploration"] = 9.0
    assert c2.params["exploration"] == 1.5
    assert FrozenMapping({"a": 1}) == {"a": 1} and repr(FrozenMapping({"a": 1}))


def _make(name: str):
    p = make_policy(name, n_resources=2, seed=3, oracle="fast", max_pending_rounds=6,
                    divisible=name == "proportional-share",
                    fairness=FairnessConfig(min_share=0.2) if name == "fair-learn" else "none")
    if name == "oracle":
        p.set_true_means(IDS, np.linspace(0.1, 0.9, len(IDS)))
    return p


def _round(p, rng, report=True):
    a = p.allocate(RoundRequest.build(IDS, REQ, BUDGET, pace=PACE))
    got = a.allocated_agents()
    if report and got:
        p.observe(a.round, got, rewards=rng.random(len(got)))
    return a.values.copy(), a.fractions.copy()


def _played(name: str):
    """A policy in use: learned state, a pending (unreported) round."""
    p = _make(name)
    rng = np.random.default_rng(0)
    for t in range(5):
        _round(p, rng, report=t != 3)
    return p


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("name", NAMES)
def test_every_policy_copies_and_continues_identically(name, how):
    p = _played(name)
    q = _copies()[how](p)
    assert type(q) is type(p) and q.config == p.config
    assert_state_equal(q.get_state(), p.get_state())
    # interleaved: a copy that shared any array with the original would diverge
    rp, rq = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(4):
        (v1, f1), (v2, f2) = _round(p, rp), _round(q, rq)
        assert np.array_equal(v1, v2) and np.array_equal(f1, f2)
    assert_state_equal(q.get_state(), p.get_state())


def _librex() -> LibrexAlloc:
    la = LibrexAlloc(n_agents=4, n_resource_types=2, fairness_mode="proportional", seed=5,
                     min_share={1: 0.3}, weights={2: 2.0}, oracle="fast")
    for t in range(4):
        out = la.allocate({i: [1.0 + i, 2.0 - 0.3 * i] for i in range(4)}, [3.0, 3.0])
        for agent, granted in out.items():
            if np.any(granted > 0) and t != 2:
                la.update(agent, {"reward": 0.25 * agent})
    return la


def _librex_future(la: LibrexAlloc):
    seen = []
    for _ in range(3):
        out = la.allocate({i: [1.0 + i, 2.0 - 0.3 * i] for i in range(4)}, [3.0, 3.0])
        seen.append(np.array([out[i] for i in range(4)]))
        for agent, granted in out.items():
            if np.any(granted > 0):
                la.update(agent, {"success": agent % 2 == 0})
    return seen


@pytest.mark.parametrize("how", COPIES)
def test_librex_alloc_in_use_copies_and_continues_identically(how):
    la = _librex()
    twin = _copies()[how](la)
    assert_state_equal(twin.get_state(), la.get_state())
    for x, y in zip(_librex_future(la), _librex_future(twin)):
        assert np.array_equal(x, y)
    assert_state_equal(twin.get_state(), la.get_state())


def _play_remote(policy):
    """Runs in a worker process: three rounds, then the decisions and the policy back."""
    rng = np.random.default_rng(1)
    decisions = [_round(policy, rng) for _ in range(3)]
    return decisions, policy


def test_a_policy_crosses_a_process_pool():
    """``concurrent.futures`` with a process pool: the worker's decisions equal the local
    twin's, and the policy it sends back continues like the local one."""
    p = _played("constrained-ts")
    local = copy.deepcopy(p)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        remote_decisions, back = pool.submit(_play_remote, p).result(timeout=120)
    local_decisions, _ = _play_remote(local)
    for (v1, f1), (v2, f2) in zip(remote_decisions, local_decisions):
        assert np.array_equal(v1, v2) and np.array_equal(f1, f2)
    assert_state_equal(back.get_state(), local.get_state())
