"""Tests of librex_alloc.posteriors: learning, discounting, state round trips, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from librex_alloc.errors import InvalidConfigError, InvalidInputError, StateError
from librex_alloc.posteriors import BetaPosterior, GaussianPosterior, make_posterior

FAMILIES = [BetaPosterior, GaussianPosterior]


def assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert isinstance(b[key], np.ndarray)
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
            assert a[key].tobytes() == b[key].tobytes(), key
        else:
            assert type(a[key]) is type(b[key]) and a[key] == b[key], key


def trained(cls, n_slots=4, seed=0, **kwargs):
    """A posterior with some data in every slot."""
    post = cls(**kwargs)
    post.resize(n_slots)
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, n_slots, size=200)
    post.update(slots, rng.random(200), rng)
    return post


# ----------------------------------------------------------------------------- Beta
def test_beta_learns_bernoulli_means():
    rng = np.random.default_rng(1)
    p = np.array([0.1, 0.5, 0.9])
    post = BetaPosterior()
    post.resize(3)
    for _ in range(20):
        slots = np.repeat(np.arange(3), 200)
        post.update(slots, (rng.random(slots.size) < p[slots]).astype(float), rng)
    np.testing.assert_allclose(post.mean([0, 1, 2]), p, atol=0.03)
    np.testing.assert_allclose(post.count([0, 1, 2]), 4000.0)


def test_beta_bernoulli_trick_learns_expected_continuous_reward():
    # A constant reward 0.3 must give a mean near 0.3 (thresholding would give 0 or 1).
    rng = np.random.default_rng(2)
    post = BetaPosterior()
    post.resize(2)
    post.update(np.zeros(5000, dtype=int), np.full(5000, 0.3), rng)
    post.update(np.ones(5000, dtype=int), rng.uniform(0.6, 0.8, 5000), rng)
    np.testing.assert_allclose(post.mean([0, 1]), [0.3, 0.7], atol=0.025)


def test_beta_update_draws_exactly_one_uniform_vector():
    post = BetaPosterior()
    post.resize(3)
    rng = np.random.default_rng(3)
    ref = np.random.default_rng(3)
    post.update([0, 1, 2, 2], [0.0, 1.0, 1.0, 0.0], rng)  # 0/1 rewards still draw
    ref.random(4)
    assert rng.bit_generator.state == ref.bit_generator.state
    # 0/1 rewards are deterministic under the trick.
    np.testing.assert_array_equal(post.params([0, 1, 2])[0], [1.0, 2.0, 2.0])
    np.testing.assert_array_equal(post.params([0, 1, 2])[1], [2.0, 1.0, 2.0])


def test_beta_batch_update_with_repeated_slots_equals_sequential():
    rewards = np.random.default_rng(4).random(50)
    slots = np.random.default_rng(5).integers(0, 3, size=50)
    batch, seq = BetaPosterior(), BetaPosterior()
    batch.resize(3)
    seq.resize(3)
    batch.update(slots, rewards, np.random.default_rng(6))
    rng = np.random.default_rng(6)
    for s, r in zip(slots, rewards, strict=True):
        seq.update([s], [r], rng)
    assert_state_equal(batch.get_state(), seq.get_state())
    np.testing.assert_array_equal(batch.count([0, 1, 2]), np.bincount(slots, minlength=3))


def test_beta_update_success_repeated_slots():
    post = BetaPosterior(alpha_prior=2.0, beta_prior=3.0)
    post.resize(2)
    post.update_success([0, 0, 1, 0], [True, True, False, False])
    alpha, beta = post.params([0, 1])
    np.testing.assert_array_equal(alpha, [4.0, 2.0])
    np.testing.assert_array_equal(beta, [4.0, 4.0])
    np.testing.assert_allclose(post.mean([0, 1]), [0.5, 1.0 / 3.0])
    with pytest.raises(InvalidInputError):
        post.update_success([0], [0.5])


def test_beta_sample_follows_posterior():
    post = BetaPosterior()
    post.resize(2)
    post.update_success([0] * 30 + [1] * 10, [1] * 20 + [0] * 10 + [1] * 2 + [0] * 8)
    draws = post.sample(np.repeat([0, 1], 20000), np.random.default_rng(7)).reshape(2, -1)
    alpha, beta = post.params([0, 1])
    np.testing.assert_allclose(draws.mean(axis=1), alpha / (alpha + beta), atol=0.005)
    var = alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))
    np.testing.assert_allclose(draws.var(axis=1), var, rtol=0.05)
    assert np.all((draws > 0) & (draws < 1))


def test_beta_sample_uses_one_beta_call():
    post = trained(BetaPosterior, n_slots=5)
    slots = np.array([4, 0, 0, 2])
    alpha, beta = post.params(slots)
    got = post.sample(slots, np.random.default_rng(8))
    np.testing.assert_array_equal(got, np.random.default_rng(8).beta(alpha, beta))


# ----------------------------------------------------------------------------- Gaussian
def test_gaussian_hand_computed_posterior():
    post = GaussianPosterior(mu_prior=0.0, kappa_prior=1.0, a_prior=1.0, b_prior=1.0)
    post.resize(2)
    post.update([0, 0, 0], [1.0, 2.0, 3.0], None)
    m_n, kappa_n, a_n, b_n = post.params([0, 1])
    # n=3, s1=6, s2=14: kappa=4, m=1.5, a=2.5, b = 1 + 0.5*2 + 3*4/8 = 3.5; slot 1 at prior.
    np.testing.assert_allclose(m_n, [1.5, 0.0])
    np.testing.assert_allclose(kappa_n, [4.0, 1.0])
    np.testing.assert_allclose(a_n, [2.5, 1.0])
    np.testing.assert_allclose(b_n, [3.5, 1.0])
    np.testing.assert_allclose(post.mean([0, 1]), [1.5, 0.0])
    np.testing.assert_array_equal(post.count([0, 1]), [3.0, 0.0])


def test_gaussian_converges_on_gaussian_data():
    rng = np.random.default_rng(9)
    mu, sigma = np.array([2.0, -5.0]), np.array([0.5, 3.0])
    post = GaussianPosterior()
    post.resize(2)
    slots = np.repeat([0, 1], 5000)
    rng.shuffle(slots)
    post.update(slots, mu[slots] + sigma[slots] * rng.standard_normal(slots.size), rng)
    np.testing.assert_allclose(post.mean([0, 1]), mu, atol=0.1)
    _, _, a_n, b_n = post.params([0, 1])
    np.testing.assert_allclose(b_n / (a_n - 1.0), sigma**2, rtol=0.06)  # E[sigma^2 | data]
    draws = post.sample(np.repeat([0, 1], 2000), rng).reshape(2, -1)
    np.testing.assert_allclose(draws.mean(axis=1), mu, atol=0.15)
    assert np.all(draws.std(axis=1) < 2.0 * sigma / np.sqrt(5000))


def test_gaussian_sample_is_student_t_marginal():
    post = GaussianPosterior()
    post.resize(1)
    post.update([0, 0, 0], [1.0, 2.0, 3.0], None)
    draws = post.sample(np.zeros(200_000, dtype=int), np.random.default_rng(10))
    # t with 2a_n = 5 dof, location 1.5, variance b_n / (kappa_n (a_n - 1)) = 3.5 / 6.
    assert abs(draws.mean() - 1.5) < 0.01
    assert draws.var() == pytest.approx(3.5 / 6.0, rel=0.05)


def test_gaussian_update_is_order_independent():
    rng = np.random.default_rng(11)
    slots = rng.integers(0, 4, size=300)
    y = rng.normal(3.0, 2.0, size=300)
    a, b = GaussianPosterior(), GaussianPosterior()
    a.resize(4)
    b.resize(4)
    a.update(slots, y, rng)
    perm = rng.permutation(300)
    b.update(slots[perm[:100]], y[perm[:100]], rng)
    b.update(slots[perm[100:]], y[perm[100:]], rng)
    for x, z in zip(a.params(range(4)), b.params(range(4)), strict=True):
        np.testing.assert_allclose(x, z, rtol=1e-12)


def test_gaussian_update_success_treats_flags_as_rewards():
    a, b = GaussianPosterior(), GaussianPosterior()
    a.resize(2)
    b.resize(2)
    a.update_success([0, 1, 1], [True, False, True])
    b.update([0, 1, 1], [1.0, 0.0, 1.0], None)
    assert_state_equal(a.get_state(), b.get_state())


def test_gaussian_accepts_unbounded_rewards_and_rejects_nonfinite():
    post = GaussianPosterior()
    post.resize(1)
    post.update([0, 0], [-1e6, 1e6], None)
    assert post.mean([0])[0] == pytest.approx(0.0, abs=1e-6)
    for bad in ([np.nan], [np.inf], [1e200]):
        with pytest.raises(InvalidInputError):
            post.update([0], bad, None)


# ----------------------------------------------------------------------------- both
@pytest.mark.parametrize("cls", FAMILIES)
def test_discount_makes_old_data_fade(cls):
    post, plain = cls(discount=0.9), cls()
    for p in (post, plain):
        p.resize(1)
    for r in [1.0] * 200 + [0.0] * 60:
        for p in (post, plain):
            p.decay()
            p.update_success([0], [r])
    assert post.mean([0])[0] < 0.1 < 0.7 < plain.mean([0])[0]
    assert post.count([0])[0] <= 1.0 / (1.0 - 0.9) + 1e-9
    assert plain.count([0])[0] == 260.0
    state = post.get_state()
    post.decay()
    stat_name = "successes" if cls is BetaPosterior else "n"
    np.testing.assert_allclose(post.get_state()[stat_name], 0.9 * state[stat_name])


@pytest.mark.parametrize("cls", FAMILIES)
def test_decay_is_noop_without_discount(cls):
    post = trained(cls)
    before = post.get_state()
    post.decay()
    assert_state_equal(before, post.get_state())


@pytest.mark.parametrize("cls", FAMILIES)
def test_resize_grows_at_prior_and_never_shrinks(cls):
    post = cls()
    assert post.n_slots == 0
    post.resize(2)
    post.update_success([0, 1], [1, 1])
    post.resize(5)
    assert post.n_slots == 5
    np.testing.assert_array_equal(post.count(range(5)), [1, 1, 0, 0, 0])
    fresh = cls()
    fresh.resize(1)
    np.testing.assert_array_equal(post.mean([4]), fresh.mean([0]))
    post.resize(3)
    assert post.n_slots == 5
    for bad in (-1, 2.5, "3"):
        with pytest.raises(InvalidInputError):
            post.resize(bad)


@pytest.mark.parametrize("cls", FAMILIES)
def test_reset_returns_slots_to_prior(cls):
    post = trained(cls, n_slots=4)
    before = post.get_state()
    post.reset([1, 3])
    np.testing.assert_array_equal(post.count([1, 3]), [0.0, 0.0])
    fresh = cls()
    fresh.resize(1)
    np.testing.assert_array_equal(post.mean([1, 3]), np.repeat(fresh.mean([0]), 2))
    np.testing.assert_array_equal(post.count([0, 2]), before_count(cls, before, [0, 2]))


def before_count(cls, state, slots):
    if cls is BetaPosterior:
        return state["successes"][slots] + state["failures"][slots]
    return state["n"][slots]


@pytest.mark.parametrize("cls", FAMILIES)
def test_state_round_trip_gives_identical_future_samples(cls):
    post = trained(cls, n_slots=6, discount=0.95)
    post.decay()
    copy = cls()  # default config; set_state must restore the config too
    copy.set_state(post.get_state())
    assert_state_equal(post.get_state(), copy.get_state())
    assert copy.discount == 0.95
    slots = np.array([5, 0, 0, 3, 1])
    r1, r2 = np.random.default_rng(13), np.random.default_rng(13)
    np.testing.assert_array_equal(post.sample(slots, r1), copy.sample(slots, r2))
    rewards = np.random.default_rng(14).random(5)
    post.update(slots, rewards, r1)
    copy.update(slots, rewards, r2)
    np.testing.assert_array_equal(post.sample(slots, r1), copy.sample(slots, r2))
    assert_state_equal(post.get_state(), copy.get_state())


@pytest.mark.parametrize("cls", FAMILIES)
def test_get_state_returns_copies(cls):
    post = trained(cls)
    state = post.get_state()
    snapshot = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    for v in state.values():
        if isinstance(v, np.ndarray):
            v[:] = 7.0
    assert_state_equal(post.get_state(), snapshot)


@pytest.mark.parametrize("cls", FAMILIES)
def test_set_state_mismatch_raises_and_leaves_state(cls):
    post = trained(cls)
    before = post.get_state()
    good = trained(cls, n_slots=3, seed=1).get_state()
    stat = "successes" if cls is BetaPosterior else "n"
    other_family = "gaussian" if cls is BetaPosterior else "bernoulli"
    bad_states = [
        {k: v for k, v in good.items() if k != stat},
        {**good, "extra": 1.0},
        {**good, "family": other_family},
        {**good, stat: good[stat][:2]},
        {**good, stat: good[stat].reshape(1, -1)},
        {**good, stat: -good[stat]},
        {**good, stat: np.full(3, np.nan)},
        {**good, stat: [1.0, 2.0, 3.0]},
        {**good, "discount": 1.5},
        {**good, "discount": "x"},
        "not a dict",
    ]
    for bad in bad_states:
        with pytest.raises(StateError):
            post.set_state(bad)
        assert_state_equal(before, post.get_state())


@pytest.mark.parametrize("cls", FAMILIES)
def test_invalid_inputs_raise_and_leave_state(cls):
    post = trained(cls, n_slots=3)
    before = post.get_state()
    rng = np.random.default_rng(15)
    rng_before = rng.bit_generator.state
    bad_calls = [
        lambda: post.update([0, 1], [0.5, np.nan], rng),
        lambda: post.update([0, 1], [0.5, np.inf], rng),
        lambda: post.update([0, 1], [0.5], rng),
        lambda: post.update([0, 1], [[0.5, 0.5]], rng),
        lambda: post.update([0, 3], [0.5, 0.5], rng),
        lambda: post.update([0, -1], [0.5, 0.5], rng),
        lambda: post.update([0.5], [0.5], rng),
        lambda: post.update([[0]], [0.5], rng),
        lambda: post.update(["a"], [0.5], rng),
        lambda: post.update_success([0, 1], [1, 2]),
        lambda: post.update_success([0], [1, 1]),
        lambda: post.reset([5]),
        lambda: post.sample([0, 7], rng),
        lambda: post.mean([3]),
        lambda: post.count([-2]),
        lambda: post.sample([0], 42),
    ]
    if cls is BetaPosterior:
        bad_calls += [
            lambda: post.update([0], [1.5], rng),
            lambda: post.update([0], [-0.1], rng),
            lambda: post.update([0], [0.5], None),
        ]
    for call in bad_calls:
        with pytest.raises(InvalidInputError):
            call()
        assert_state_equal(before, post.get_state())
    assert rng.bit_generator.state == rng_before


def test_validate_rewards():
    beta, gauss = BetaPosterior(), GaussianPosterior()
    np.testing.assert_array_equal(beta.validate_rewards([0, 1, 0.25]), [0.0, 1.0, 0.25])
    assert beta.validate_rewards([1, 0]).dtype == np.float64
    np.testing.assert_array_equal(gauss.validate_rewards([-3.0, 1e9]), [-3.0, 1e9])
    for bad in ([1.5], [-0.1], [np.nan], [np.inf]):
        with pytest.raises(InvalidInputError):
            beta.validate_rewards(bad)
    for bad in ([np.nan], [-np.inf], "abc"):
        with pytest.raises(InvalidInputError):
            gauss.validate_rewards(bad)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (BetaPosterior, {"alpha_prior": 0.0}),
        (BetaPosterior, {"beta_prior": -1.0}),
        (BetaPosterior, {"discount": 0.0}),
        (BetaPosterior, {"discount": 1.01}),
        (BetaPosterior, {"alpha_prior": np.nan}),
        (BetaPosterior, {"beta_prior": "x"}),
        (GaussianPosterior, {"kappa_prior": 0.0}),
        (GaussianPosterior, {"a_prior": -1.0}),
        (GaussianPosterior, {"b_prior": 0.0}),
        (GaussianPosterior, {"mu_prior": np.inf}),
        (GaussianPosterior, {"discount": -0.5}),
    ],
)
def test_invalid_config(cls, kwargs):
    with pytest.raises(InvalidConfigError):
        cls(**kwargs)


def test_make_posterior():
    assert isinstance(make_posterior("bernoulli"), BetaPosterior)
    beta = make_posterior("beta", alpha_prior=2.0, discount=0.5)
    assert isinstance(beta, BetaPosterior) and beta.family == "bernoulli"
    assert beta.alpha_prior == 2.0 and beta.discount == 0.5
    gauss = make_posterior("gaussian", mu_prior=1.0)
    assert isinstance(gauss, GaussianPosterior) and gauss.mu_prior == 1.0
    for bad in ("poisson", "", None, "Gaussian"):
        with pytest.raises(InvalidConfigError):
            make_posterior(bad)
    with pytest.raises(InvalidConfigError):
        make_posterior("bernoulli", mu_prior=1.0)
    with pytest.raises(InvalidConfigError):
        make_posterior("gaussian", kappa_prior=-1.0)


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 4), st.floats(0.0, 1.0)), min_size=0, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_beta_update_counts_property(data, seed):
    post = BetaPosterior()
    post.resize(5)
    slots = np.array([s for s, _ in data], dtype=np.int64)
    rewards = np.array([r for _, r in data], dtype=np.float64)
    post.update(slots, rewards, np.random.default_rng(seed))
    np.testing.assert_allclose(post.count(range(5)), np.bincount(slots, minlength=5))
    state = post.get_state()
    assert np.all(state["successes"] >= 0) and np.all(state["failures"] >= 0)
    # Rewards of exactly 0 / 1 are never flipped.
    ones = np.bincount(slots[rewards == 1.0], minlength=5)
    zeros = np.bincount(slots[rewards == 0.0], minlength=5)
    assert np.all(state["successes"] >= ones) and np.all(state["failures"] >= zeros)
    mean = post.mean(range(5))
    assert np.all((mean > 0) & (mean < 1))


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.tuples(st.integers(0, 2), st.floats(-1e3, 1e3)), min_size=1, max_size=30))
def test_gaussian_matches_direct_formula_property(data):
    post = GaussianPosterior(mu_prior=0.5, kappa_prior=2.0, a_prior=1.5, b_prior=0.7)
    post.resize(3)
    slots = np.array([s for s, _ in data])
    y = np.array([v for _, v in data])
    post.update(slots, y, None)
    m_n, kappa_n, a_n, b_n = post.params(range(3))
    for s in range(3):
        ys = y[slots == s]
        n = ys.size
        kn = 2.0 + n
        assert kappa_n[s] == pytest.approx(kn)
        assert a_n[s] == pytest.approx(1.5 + n / 2)
        assert m_n[s] == pytest.approx((2.0 * 0.5 + ys.sum()) / kn, rel=1e-9, abs=1e-9)
        if n:
            expect_b = 0.7 + 0.5 * ((ys - ys.mean()) ** 2).sum()
            expect_b += 2.0 * n * (ys.mean() - 0.5) ** 2 / (2 * kn)
        else:
            expect_b = 0.7
        assert b_n[s] == pytest.approx(expect_b, rel=1e-6, abs=1e-6)
        assert b_n[s] >= 0.7
