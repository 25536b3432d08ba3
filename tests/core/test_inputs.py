"""The library's inputs (issue 14 item 5, library side; issue 17 "Bad input").

Number-valued settings take Python or numpy ints and floats, never bools, text, complex
numbers, None (where not allowed), NaN or ±inf; complex arrays are refused wherever requests,
budgets or rewards enter; ``solve``'s own arguments are checked the same way; a Gaussian prior
at the constructor's bounds samples finite values; environment constructors check every
argument; ``LibrexAlloc.update`` raises the batch API's error types; ``BudgetTracker`` keeps
one K and finite budgets. A refused call changes nothing: ``get_state()`` and the next
rounds' draws equal an untouched twin's.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from librex_alloc import (
    BudgetTracker,
    ConstrainedThompsonSampling,
    FairnessConfig,
    InvalidConfigError,
    InvalidInputError,
    LibrexAlloc,
    OrlibEnvironment,
    PolicyConfig,
    RoundRequest,
    SyntheticEnvironment,
    UnknownAgentError,
    make_policy,
    simulate,
    solve,
)
from librex_alloc._validation import check_scalar
from librex_alloc.fairness import MAX_ALPHA
from librex_alloc.posteriors import MAX_GAUSSIAN_REWARD, GaussianPosterior, make_posterior
from tests.conftest import assert_state_equal

# ------------------------------------------------------------------ number-valued settings
# name -> (build(value), low, high, low_open, none_allowed). Every number-valued setting of
# PolicyConfig (its own fields and the posterior's prior), FairnessConfig and solve.
V = np.array([1.0, 2.0])
R = np.array([[1.0], [1.5]])
B = np.array([2.0])


def _cfg(**kw):
    return PolicyConfig(1, **kw)


def _gauss(**prior):
    return PolicyConfig(1, reward_family="gaussian", prior=prior)


FLOAT_SETTINGS = {
    "time_limit": (lambda v: _cfg(time_limit=v).time_limit, 0.0, 86_400.0, True, True),
    "gap_tolerance": (lambda v: _cfg(gap_tolerance=v).gap_tolerance, 0.0, 1.0, False, True),
    "discount": (lambda v: _cfg(discount=v).discount, 0.0, 1.0, True, False),
    "alpha_prior": (lambda v: _cfg(prior={"alpha_prior": v}).prior["alpha_prior"],
                    0.0, 1e100, True, False),
    "beta_prior": (lambda v: _cfg(prior={"beta_prior": v}).prior["beta_prior"],
                   0.0, 1e100, True, False),
    "mu_prior": (lambda v: _gauss(mu_prior=v).prior["mu_prior"], -1e100, 1e100, False, False),
    "kappa_prior": (lambda v: _gauss(kappa_prior=v).prior["kappa_prior"], 1e-100, 1e100,
                    False, False),
    "a_prior": (lambda v: _gauss(a_prior=v).prior["a_prior"], 1e-100, 1e100, False, False),
    "b_prior": (lambda v: _gauss(b_prior=v).prior["b_prior"], 1e-100, 1e100, False, False),
    "fairness_alpha": (lambda v: FairnessConfig(mode="alpha", alpha=v).alpha, 0.0, MAX_ALPHA,
                       False, False),
    "fairness_horizon": (lambda v: FairnessConfig(horizon=v).horizon, 1.0, 1e12, False, True),
    "epsilon": (lambda v: FairnessConfig(epsilon=v).epsilon, 1e-12, 1e12, False, False),
    "min_share": (lambda v: FairnessConfig(min_share=v).min_share, 0.0, 1.0, False, False),
    "eta": (lambda v: FairnessConfig(eta=v).eta, 0.0, 1e12, False, False),
    "max_reward_loss": (lambda v: FairnessConfig(max_reward_loss=v).max_reward_loss, 0.0, 1.0,
                        False, True),
    "reward_loss_v": (lambda v: FairnessConfig(reward_loss_v=v).reward_loss_v, 1e-6, 1e6,
                      False, False),
    "solve.time_limit": (lambda v: _solved(time_limit=v), 0.0, math.inf, True, True),
    "solve.gap_tolerance": (lambda v: _solved(gap_tolerance=v), 0.0, math.inf, False, True),
}
INT_SETTINGS = {
    "n_resources": (lambda v: PolicyConfig(v).n_resources, 1, 10_000),
    "max_pending_rounds": (lambda v: _cfg(max_pending_rounds=v).max_pending_rounds, 1,
                           1_000_000),
    "seed": (lambda v: _cfg(seed=v).seed, 0, 2**63 - 1),
}


def _solved(**kw):
    solve(V, R, B, method="exact", **kw)
    return kw.popitem()[1]


def _numbers(value: float):
    """The accepted spellings of a number: Python and numpy floats (and ints when integral)."""
    out = [float(value), np.float64(value)]
    with np.errstate(over="ignore"):
        single = np.float32(value)
    if float(single) == value:
        out.append(np.float32(value))
    if float(value).is_integer() and abs(value) < 2**62:
        out += [int(value), np.int64(int(value))]
    return out


def _bad_values(draw, value: float, none_allowed: bool, inf_ok: bool = False) -> list:
    text = draw(st.sampled_from([repr(float(value)), str(value), f"{value:g}", " 1 "]))
    bad = [True, False, np.True_, text, text.encode(), complex(value, 0.0),
           complex(value, 1.0), np.complex128(value), float("nan"), np.float64("nan"),
           Decimal("0.5"), [value], np.array([value])]
    if not inf_ok:
        bad += [float("inf"), -float("inf"), np.float32("inf")]
    if not none_allowed:
        bad.append(None)
    return bad


@st.composite
def float_cases(draw):
    name = draw(st.sampled_from(sorted(FLOAT_SETTINGS)))
    _, low, high, low_open, _ = FLOAT_SETTINGS[name]
    hi = min(high, 1e6)
    value = draw(st.floats(low, hi, exclude_min=low_open, allow_nan=False,
                           allow_infinity=False) | st.sampled_from([hi] + ([] if low_open
                                                                            else [low])))
    return name, value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=float_cases(), data=st.data())
def test_every_float_setting_takes_real_numbers_only(case, data):
    name, value = case
    build, low, high, low_open, none_allowed = FLOAT_SETTINGS[name]
    for spelling in _numbers(value):
        got = build(spelling)
        assert got == float(spelling) and (name.startswith("solve.") or type(got) is float), \
            (name, spelling)
    if none_allowed:
        build(None)
    for bad in _bad_values(data.draw, value, none_allowed):
        with pytest.raises(InvalidConfigError):
            build(bad)
            pytest.fail(f"{name} accepted {bad!r}")
    # just outside the range
    outside = [low if low_open else np.nextafter(low, -np.inf)]
    if math.isfinite(high):
        outside.append(np.nextafter(high, np.inf))
    for bad in outside:
        with pytest.raises(InvalidConfigError):
            build(bad)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(INT_SETTINGS)), frac=st.floats(0, 1), data=st.data())
def test_every_int_setting_takes_ints_only(name, frac, data):
    build, low, high = INT_SETTINGS[name]
    value = int(low + frac * min(high - low, 10**6))
    for spelling in (value, np.int64(value), np.uint32(value) if value < 2**32 else value):
        got = build(spelling)
        assert got == value and type(got) is int
    for bad in [True, np.True_, str(value), float(value), np.float64(value), complex(value),
                float("nan"), float("inf"), None if name != "seed" else "x", high + 1, low - 1,
                10**400]:
        with pytest.raises(InvalidConfigError):
            build(bad)


def test_check_scalar_refuses_what_is_not_a_real_number():
    for bad in (True, np.bool_(False), "0.1", b"1", 1 + 0j, None, float("nan"), 10**400,
                Decimal("1"), np.array(1.0)):
        with pytest.raises(InvalidConfigError):
            check_scalar(bad, "x")
    assert check_scalar(np.int8(3), "x") == 3.0 and check_scalar(np.float16(0.5), "x") == 0.5


def test_policy_params_take_numpy_numbers_and_refuse_the_rest():
    p = make_policy("cucb", n_resources=1, params={"exploration": np.float64(1.5)})
    assert p.params.to_dict() == {"exploration": 1.5} and type(p.params.exploration) is float
    assert type(p.config.params["exploration"]) is float
    for bad in (True, "1.5", 1.5 + 0j, float("inf"), 10**400, None):
        with pytest.raises(InvalidConfigError):
            make_policy("cucb", n_resources=1, params={"exploration": bad})


def test_librex_alloc_settings_refuse_bools_and_text():
    for kw in ({"alpha_prior": True}, {"beta_prior": "1"}, {"epsilon": "0.01"},
               {"eta": True}, {"discount": "0.9"}, {"time_limit": True},
               {"fairness_horizon": "10"}, {"min_share": True}, {"fairness_mode": True},
               {"fairness_mode": "alpha", "fairness_alpha": "1"}):
        with pytest.raises(InvalidConfigError):
            LibrexAlloc(n_agents=2, n_resource_types=1, **kw)


# ------------------------------------------------------------------------------ solve
def test_solve_checks_its_arguments_like_the_config():
    ref = solve(V, R, B, method="exact", time_limit=1)
    res = solve(V, R, B, method="exact", time_limit=np.int64(1), gap_tolerance=np.float32(0))
    assert np.array_equal(res.selected, ref.selected)
    assert np.array_equal(solve(V, R, B, divisible=np.bool_(True)).fractions,
                          solve(V, R, B, divisible=True).fractions)
    for kw in ({"time_limit": True}, {"time_limit": "1"}, {"time_limit": 0},
               {"time_limit": float("nan")}, {"gap_tolerance": True}, {"gap_tolerance": "0"},
               {"gap_tolerance": -1.0}, {"divisible": "no"}, {"divisible": 1},
               {"divisible": None}, {"method": ["auto"]}, {"method": None}):
        with pytest.raises(InvalidConfigError):
            solve(V, R, B, **kw)


# ---------------------------------------------------------------------- complex arrays
IDS = [0, 1, 2, 3, 4]
REQ = np.array([[1.0, 2.0], [2.0, 1.0], [1.5, 1.5], [3.0, 0.5], [0.5, 3.0]])
BUDGET = np.array([3.0, 3.0])


def _policy(family="bernoulli"):
    p = ConstrainedThompsonSampling(2, fairness="proportional", oracle="fast", seed=11,
                                    reward_family=family, discount=0.98)
    for _ in range(3):
        a = p.allocate_batch(IDS, REQ, BUDGET)
        got = a.allocated_agents()
        p.observe(a.round, got, rewards=np.full(len(got), 0.25))
    p.allocate_batch(IDS, REQ, BUDGET)  # round 4 stays pending
    return p


def _draws(p, rounds=3):
    out = []
    for _ in range(rounds):
        a = p.allocate_batch(IDS, REQ, BUDGET)
        out.append((a.values, a.selected))
        got = a.allocated_agents()
        if got:
            p.observe(a.round, got, rewards=np.full(len(got), 0.75))
    return out


def _assert_untouched(p, before, family="bernoulli"):
    assert_state_equal(before, p.get_state())
    for (v1, s1), (v2, s2) in zip(_draws(p), _draws(_policy(family))):
        assert np.array_equal(v1, v2) and np.array_equal(s1, s2)


def _complex(x):
    return np.asarray(x, dtype=float) + 0j


@pytest.mark.parametrize("imag", [0.0, 1e-3])
def test_complex_requests_budgets_and_rewards_are_refused(imag):
    p = _policy()
    before = p.get_state()
    pending = p.round  # an agent allocated in the pending round: only the value is wrong
    ids = [p.registry.agent_id(int(p.ledger.pending(pending).agents[0]))]
    cr, cb = _complex(REQ) + 1j * imag, _complex(BUDGET) + 1j * imag
    obj = np.array(REQ.tolist(), dtype=object)
    obj[0, 0] = complex(1.0, imag)
    calls = [
        lambda: p.allocate_batch(IDS, cr, BUDGET),
        lambda: p.allocate_batch(IDS, REQ, cb),
        lambda: p.allocate_batch(IDS, obj, BUDGET),
        lambda: p.allocate_batch(IDS, [[complex(1, imag), 2.0]] + REQ[1:].tolist(), BUDGET),
        lambda: p.allocate(RoundRequest.build(IDS, REQ, BUDGET, pace=cb)),
        lambda: p.allocate_batch(IDS, REQ, BUDGET, options=np.zeros(5) + 0j),
        lambda: p.observe(pending, ids, rewards=np.array([0.5 + 1j * imag])),
        lambda: p.observe(pending, ids, successes=np.array([1 + 1j * imag])),
        lambda: p.observe_one(pending, ids[0], complex(0.5, imag)),
        lambda: p.set_weights(ids, np.array([2.0 + 1j * imag])),
        lambda: p.set_min_share(ids, np.array([0.5 + 1j * imag])),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="complex|expected"):
            call()
    _assert_untouched(p, before)
    for call in (lambda: solve(V + 0j, R, B), lambda: solve(V, R + 0j, B),
                 lambda: solve(V, R, B + 1j)):
        with pytest.raises(InvalidInputError, match="complex"):
            call()
    with pytest.raises(InvalidInputError):
        RoundRequest.build(IDS, cr, BUDGET)


def test_complex_requests_are_refused_by_the_original_api():
    la = LibrexAlloc(n_agents=3, n_resource_types=2, seed=1, oracle="fast")
    twin = LibrexAlloc(n_agents=3, n_resource_types=2, seed=1, oracle="fast")
    before = la.get_state()
    for req, budget in (({0: [1 + 0j, 1.0]}, [2.0, 2.0]), ({0: [1.0, 1.0]}, [2 + 1j, 2.0]),
                        ({0: np.array([[1.0, 1.0], [2.0, 1j]])}, [2.0, 2.0])):
        with pytest.raises(InvalidInputError):
            la.allocate(req, budget)
    assert_state_equal(before, la.get_state())
    a = la.allocate({0: [1.0, 1.0], 1: [1.5, 0.5]}, [2.0, 2.0])
    b = twin.allocate({0: [1.0, 1.0], 1: [1.5, 0.5]}, [2.0, 2.0])
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(InvalidConfigError):
        policy = make_policy("bts", n_resources=1, seed=0)
        simulate(policy, SyntheticEnvironment(n_agents=3, n_resources=1), 2,
                 horizon_budget=np.array([5.0 + 0j]))


# ----------------------------------------------------------- Gaussian prior at its bounds
PRIOR_BOUNDS = [(mu, kappa, a, b) for mu in (-1e100, 0.0, 1e100) for kappa in (1e-100, 1e100)
                for a in (1e-100, 1e100) for b in (1e-100, 1e100)]


@pytest.mark.parametrize("mu,kappa,a,b", PRIOR_BOUNDS)
def test_gaussian_prior_at_its_bounds_samples_finite_values(mu, kappa, a, b):
    """Every corner of the accepted prior box: draws are finite and inside the rewards'
    range, and rounds run (before: "oracle values are not finite" every round)."""
    post = GaussianPosterior(mu_prior=mu, kappa_prior=kappa, a_prior=a, b_prior=b)
    post.resize(200)
    post.update(np.arange(0, 200, 2), np.linspace(-1e100, 1e100, 100))
    theta = post.sample(np.arange(200), np.random.default_rng(0))
    assert np.all(np.isfinite(theta)) and np.all(np.abs(theta) <= MAX_GAUSSIAN_REWARD)
    p = ConstrainedThompsonSampling(1, reward_family="gaussian", oracle="fast", seed=0,
                                    prior={"mu_prior": mu, "kappa_prior": kappa,
                                           "a_prior": a, "b_prior": b})
    for _ in range(4):
        alloc = p.allocate_batch(["x", "y", "z"], [[1.0], [1.0], [1.0]], [2.0])
        assert np.all(np.isfinite(alloc.values))
        got = alloc.allocated_agents()
        if got:
            p.observe(alloc.round, got, rewards=np.full(len(got), 0.5))


def test_gaussian_sampling_is_unchanged_inside_the_range():
    """The truncation only touches draws beyond ±MAX_GAUSSIAN_REWARD: an ordinary prior
    draws exactly m + sqrt(1/Gamma / kappa) · N(0, 1), as before."""
    post = make_posterior("gaussian", mu_prior=0.3, kappa_prior=2.0, a_prior=3.0, b_prior=0.5)
    post.resize(50)
    m_n, kappa_n, a_n, b_n = post.params(np.arange(50))
    rng = np.random.default_rng(4)
    precision = np.maximum(rng.gamma(a_n, 1.0 / b_n), np.finfo(np.float64).tiny)
    want = m_n + np.sqrt((1.0 / precision) / kappa_n) * rng.standard_normal(50)
    assert np.array_equal(post.sample(np.arange(50), np.random.default_rng(4)), want)


@pytest.mark.parametrize("alpha,beta", [(5e-324, 5e-324), (5e-324, 1e100), (1e100, 5e-324),
                                        (1e100, 1e100)])
def test_beta_prior_at_its_bounds_samples_in_unit_interval(alpha, beta):
    post = make_posterior("bernoulli", alpha_prior=alpha, beta_prior=beta)
    post.resize(1000)
    theta = post.sample(np.arange(1000), np.random.default_rng(0))
    assert np.all(np.isfinite(theta)) and np.all((theta >= 0) & (theta <= 1))
    if alpha == beta == 1e100:
        assert abs(theta.mean() - 0.5) < 1e-6
    with pytest.raises(InvalidConfigError):  # beyond the documented bound (1e308 drew 0)
        make_posterior("bernoulli", alpha_prior=1e101, beta_prior=beta)


# -------------------------------------------------------------------------- environments
@pytest.mark.parametrize("kw", [
    {"n_agents": True}, {"n_agents": 0}, {"n_agents": 2.0}, {"n_agents": "5"},
    {"n_agents": 10**12}, {"n_resources": np.True_}, {"n_resources": 10**6},
    {"options_per_agent": 2000}, {"n_agents": 10**6, "options_per_agent": 100},
    {"tightness": "0.3"}, {"tightness": True}, {"tightness": float("nan")},
    {"tightness": 1e308, "request_range": (1e300, 1e301)}, {"heterogeneity": 1e6},
    {"mean_range": ("0.1", 0.9)}, {"mean_range": (True, 0.9)}, {"mean_range": (0.1,)},
    {"mean_range": 0.5}, {"mean_range": (0.1, 0.9, 1.0)}, {"mean_range": (0.9, 0.1)},
    {"request_range": (1.0, complex(2, 0))}, {"request_range": (-1.0, 2.0)},
    {"noise_std": 1j}, {"beta_concentration": "10"}, {"drift_rate": True},
    {"churn_rate": "0.1"}, {"join_rate": "0.1"}, {"missing_prob": np.nan},
    {"seed": True}, {"seed": -1}, {"seed": 1.0}, {"seed": 2**64},
    {"delay": True}, {"delay": (0, 10**30)}, {"delay": (2, 1)}, {"delay": 1.5},
    {"drift": None}, {"reward_family": ["x"]}, {"mean_heterogeneity": "1"},
])
def test_synthetic_environment_checks_every_argument(kw):
    with pytest.raises(InvalidConfigError):
        SyntheticEnvironment(**kw)


def test_synthetic_environment_takes_numpy_ints_as_ints():
    a = SyntheticEnvironment(n_agents=np.int64(6), n_resources=np.int32(2),
                             options_per_agent=np.uint8(2), seed=np.int64(3),
                             tightness=np.float32(0.5), delay=(np.int64(0), 2))
    b = SyntheticEnvironment(n_agents=6, n_resources=2, options_per_agent=2, seed=3,
                             tightness=float(np.float32(0.5)), delay=(0, 2))
    assert type(a.n_agents) is int and a.config() == b.config()
    assert np.array_equal(a.budget, b.budget) and np.array_equal(a.means, b.means)


def test_orlib_environment_checks_its_arguments_before_reading():
    for kw in ({"path": 5}, {"path": ["x"]}, {"instance": True}, {"instance": "1"},
               {"seed": 1.5}):
        with pytest.raises(InvalidConfigError):
            OrlibEnvironment(**kw)


# ------------------------------------------------------- the original API's error types
def _librex():
    la = LibrexAlloc(n_agents=3, n_resource_types=1, seed=0, oracle="fast")
    la.allocate({0: [1.0], 1: [1.0], 2: [5.0]}, [3.0])
    return la


def _librex_future(la):
    out = []
    for _ in range(3):
        got = la.allocate({0: [1.0], 1: [1.0], 2: [1.5]}, [2.0])
        out.append([got[i].copy() for i in range(3)])
        for agent in range(3):
            if got[agent][0] > 0:
                la.update(agent, {"reward": 0.5})
    return out


@pytest.mark.parametrize("agent,outcome,error", [
    (None, {"reward": 0.5}, InvalidInputError),
    (float("nan"), {"reward": 0.5}, InvalidInputError),
    ([0], {"reward": 0.5}, InvalidInputError),
    ({"a": 1}, {"reward": 0.5}, InvalidInputError),
    (None, {}, InvalidInputError),
    (9, {"reward": 0.5}, UnknownAgentError),
    (0, {"reward": 0.5, "round": "1"}, InvalidInputError),
    (0, {"reward": 0.5, "round": True}, InvalidInputError),
    (0, {"reward": 0.5, "round": 1.0}, InvalidInputError),
    (0, {"reward": 0.5 + 0j}, InvalidInputError),
    (0, {"reward": "0.5"}, InvalidInputError),
    (0, {"success": "1"}, InvalidInputError),
    (0, {"success": 2}, InvalidInputError),
])
def test_update_raises_the_batch_apis_errors_and_changes_nothing(agent, outcome, error):
    la = _librex()
    before = la.get_state()
    with pytest.raises(error):
        la.update(agent, outcome)
    assert_state_equal(before, la.get_state())
    for x, y in zip(_librex_future(la), _librex_future(_librex())):
        assert all(np.array_equal(a, b) for a, b in zip(x, y))
    # the batch API raises the same type for the same id / round / value
    p = _librex().policy
    rnd = outcome.get("round", 1)
    kw = {"successes": [outcome["success"]]} if "success" in outcome else \
        {"rewards": [outcome.get("reward", 0.5)]}
    if isinstance(agent, (list, dict)):
        return  # a list of ids is the batch API's own shape
    with pytest.raises(error):
        p.observe(rnd, [agent], **kw)


def test_update_takes_success_flags_as_the_batch_api_does():
    la, twin = _librex(), _librex()
    assert la.update(0, {"success": 1.0}) is True
    twin.policy.observe(1, [0], successes=[1.0])
    assert_state_equal(la.get_state(), twin.get_state())


# ---------------------------------------------------------------------- BudgetTracker
def _tracker_state(t: BudgetTracker):
    return [h.copy() for h in t.history], [b.copy() for b in t.budgets]


def test_budget_tracker_keeps_one_k_and_finite_budgets():
    t = BudgetTracker()
    t.record_allocation([1.0, 2.0], [2.0, 4.0])
    before = _tracker_state(t)
    for args in (([1.0, 2.0, 3.0], [3.0, 3.0, 3.0]), ([1.0], [1.0]), ([1.0, 1.0], None),
                 ([1.0, 1.0], [np.nan, 1.0]), ([1.0, 1.0], [np.inf, 1.0]),
                 ([np.nan, 1.0], [1.0, 1.0]), ([1.0, 1.0], [1 + 0j, 1.0]),
                 ([1.0, 1.0], ["1", "1"]), ([[1.0, 1.0]], [1.0, 1.0])):
        with pytest.raises(InvalidInputError):
            t.record_allocation(*args)
        after = _tracker_state(t)
        assert all(np.array_equal(a, b) for a, b in zip(before[0], after[0]))
        assert len(after[0]) == 1 and len(after[1]) == 1
    for budget in ([np.nan, 1.0], [1.0], [1.0, 1.0, 1.0], [-1.0, 1.0]):
        with pytest.raises(InvalidInputError):
            t.get_utilization(budget)
    assert np.allclose(t.get_utilization(), [0.5, 0.5])


def test_budget_tracker_refuses_nan_budgets_before_any_round():
    t = BudgetTracker()
    for budget in ([np.nan], [np.inf, 1.0], ["1"], [[1.0]]):
        with pytest.raises(InvalidInputError):
            t.get_utilization(budget)
    assert list(t.get_utilization([2.0, 3.0])) == [0.0, 0.0]
    t.record_allocation([1.0])  # without budgets: every round without one
    with pytest.raises(InvalidInputError):
        t.record_allocation([1.0], [2.0])
    assert len(t.history) == 1 and not t.budgets
    assert t.get_utilization([4.0]) == pytest.approx([0.25])


def test_budget_tracker_through_the_resource_manager():
    from librex_alloc import ResourceManager

    rm = ResourceManager(LibrexAlloc(n_agents=2, n_resource_types=2, seed=0, oracle="fast"))
    rm.manage_resources({0: [1.0, 1.0], 1: [1.0, 2.0]}, [2.0, 3.0])
    with pytest.raises(InvalidInputError):
        rm.manage_resources({0: [1.0, 1.0]}, [np.nan, 3.0])
    assert len(rm.budget_tracker.history) == 1 and math.isfinite(rm.budget_tracker
                                                                 .get_utilization()[0])
