"""Sweep spaces, their validation, the Pareto front and the summary (pure, no Ray); and the
chunked simulation a sweep trial runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from librex_alloc import ConstrainedThompsonSampling, PolicyConfig, SyntheticEnvironment
from librex_alloc.errors import InvalidConfigError
from librex_alloc.simulation import simulate
from librex_alloc.sweep_space import (
    Dist,
    SweepSpace,
    SweepSpaceError,
    is_utilitarian,
    pareto_front,
    parse_param,
    pick_settings,
    resolve_cell,
    settings_table,
    summary_markdown,
)


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, key, leaf", [
    ("fairness.alpha=0,0.25,0.5,1", "fairness.alpha", [0, 0.25, 0.5, 1]),
    ("seed=0:5", "seed", [0, 1, 2, 3, 4]),
    ("seed=0:10:5", "seed", [0, 5]),
    ("fairness.mode=none", "fairness.mode", "none"),
    ("fairness.max_reward_loss=null", "fairness.max_reward_loss", None),
    ("divisible=true", "divisible", True),
    ("discount=uniform(0.9,1)", "discount", {"uniform": [0.9, 1]}),
    ("gap_tolerance=loguniform(1e-4,0.1)", "gap_tolerance", {"loguniform": [1e-4, 0.1]}),
    ("oracle=choice(fast,auto)", "oracle", {"choice": ["fast", "auto"]}),
])
def test_parse_param(text, key, leaf):
    assert parse_param(text) == (key, leaf)


@pytest.mark.parametrize("text", ["alpha", "=1", "seed=", "seed=5:2", "seed=a:b",
                                  "seed=0:1:2:3"])
def test_parse_param_refuses(text):
    with pytest.raises(SweepSpaceError):
        parse_param(text)


def test_file_and_command_line_give_the_same_space(tmp_path):
    nested = {"fairness": {"alpha": [0, 0.5], "max_reward_loss": {"uniform": [0.05, 0.2]}},
              "prior": {"alpha_prior": [1, 2]}, "seed": [0, 1, 2], "env": {"agents": 20}}
    (tmp_path / "s.json").write_text(json.dumps(nested))
    (tmp_path / "s.toml").write_text(
        'seed = [0, 1, 2]\n[fairness]\nalpha = [0, 0.5]\nmax_reward_loss = {uniform = '
        '[0.05, 0.2]}\n[prior]\nalpha_prior = [1, 2]\n[env]\nagents = 20\n')
    cli = SweepSpace.from_params(["fairness.alpha=0,0.5", "fairness.max_reward_loss="
                                  "uniform(0.05,0.2)", "prior.alpha_prior=1,2", "seed=0:3",
                                  "env.agents=20"])
    for f in ("s.json", "s.toml"):
        assert SweepSpace.from_file(tmp_path / f).fingerprint() == cli.fingerprint()
    # the command line overrides the file, key by key
    merged = SweepSpace.from_file(tmp_path / "s.json").merged(SweepSpace.from_params(["seed=7"]))
    assert merged.dims["seed"] == 7 and merged.dims["prior.alpha_prior"] == [1, 2]


def test_the_policy_config_dict_itself_is_a_space():
    d = PolicyConfig(3, fairness="proportional", seed=4).to_dict()
    d.pop("params")  # policy-specific; not swept
    d["prior"] = {"alpha_prior": 2.0}
    (cell,) = SweepSpace.from_dict(d).cells()
    cfg, env, k = resolve_cell(cell)
    assert cfg.fairness.mode == "proportional" and cfg.seed == 4 and k == 3
    assert cfg.prior["alpha_prior"] == 2.0 and env["family"] == "synthetic"


@pytest.mark.parametrize("params, fragment", [
    (["fairness.alfa=1"], "unknown key 'fairness.alfa'"),
    (["alpha=1"], "unknown key 'alpha'"),
    (["fairness.alpha=0,-1"], "fairness_alpha"),
    (["fairness.alpha=0,101"], "fairness_alpha"),
    (["discount=0"], "discount"),
    (["oracle=fast,best"], "oracle"),
    (["prior.foo=1"], "foo"),
    (["prior.alpha_prior=-1"], "alpha_prior"),
    (["fairness.max_reward_loss=1.5"], "max_reward_loss"),
    (["gap_tolerance=2"], "gap_tolerance"),
    (["fairness.mode=fair"], "fairness_mode"),
    (["env.family=cloud"], "env.family"),
    (["env.agents=0"], "env.agents"),
    (["env.tightness=0"], "env.tightness"),
    (["seed=-1"], "seed"),
    (["fairness.alpha=uniform(0,1)"], "needs --search random"),
    (["fairness.alpha=uniform(1,0)"], "low < high"),
    (["gap_tolerance=loguniform(0,1)"], "low > 0"),
    (["fairness.mode=proportional", "fairness.alpha=0.5"], "fairness_alpha"),
    (["n_resources=2", "env.family=orlib"], "n_resources"),
])
def test_bad_spaces_are_one_line_errors(params, fragment):
    with pytest.raises(SweepSpaceError) as err:
        SweepSpace.from_params(params).cells()
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg


def test_bad_file_values(tmp_path):
    cases = {"a.json": '{"fairness": {"alpha": {"normal": [0, 1]}}}',
             "b.json": '{"fairness": {"alpha": [0, 0.5]',
             "c.toml": "[fairness\nalpha=1",
             "d.json": '{"seed": []}',
             "e.json": '[1, 2]'}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(SweepSpaceError) as err:
            SweepSpace.from_file(tmp_path / name).cells()
        assert "\n" not in str(err.value), name
    with pytest.raises(SweepSpaceError, match="No such file"):
        SweepSpace.from_file(tmp_path / "missing.json")


def test_random_bounds_are_checked_before_sampling():
    space = SweepSpace.from_params(["fairness.max_reward_loss=uniform(0,2)"])
    with pytest.raises(SweepSpaceError, match="max_reward_loss"):
        space.validate()
    SweepSpace.from_params(["fairness.max_reward_loss=uniform(0,1)"]).validate()


def test_grid_is_the_cross_product_and_alpha_sets_the_mode():
    space = SweepSpace.from_params(["fairness.alpha=0,0.5,1", "seed=0:4", "env.agents=10"])
    cells = space.cells()
    assert len(cells) == 12 == space.n_grid()
    assert {(c["fairness.alpha"], c["seed"]) for c in cells} == \
        {(a, s) for a in (0, 0.5, 1) for s in range(4)}
    cfg, _, _ = resolve_cell(cells[-1])
    assert cfg.fairness.mode == "alpha" and cfg.fairness.alpha == 1.0
    assert space.varying == ["fairness.alpha", "seed"]


@given(st.integers(0, 2**32 - 1), st.integers(1, 5))
def test_random_search_is_reproducible_and_within_bounds(seed, samples):
    space = SweepSpace.from_params(["fairness.alpha=uniform(0,2)", "discount="
                                    "loguniform(0.5,1)", "seed=0,1", "oracle=choice(fast,auto)"])
    a = space.cells("random", samples, seed)
    assert a == space.cells("random", samples, seed)
    assert len(a) == 2 * samples
    for c in a:
        assert 0 <= c["fairness.alpha"] <= 2 and 0.5 <= c["discount"] <= 1
        assert c["oracle"] in ("fast", "auto")


def test_too_many_cells():
    with pytest.raises(SweepSpaceError, match="expands to"):
        SweepSpace.from_params(["seed=0:1000", "fairness.alpha=0:200"]).cells()


def test_is_utilitarian():
    assert is_utilitarian(PolicyConfig(2))
    assert is_utilitarian(PolicyConfig(2, fairness={"mode": "alpha", "alpha": 0.0}))
    assert not is_utilitarian(PolicyConfig(2, fairness="proportional"))
    assert not is_utilitarian(PolicyConfig(2, fairness={"mode": "none", "min_share": 0.1}))


def test_dist_edges():
    assert Dist("randint", (0, 5)).edges() == [0, 4]


# --------------------------------------------------------------------------- front, summary
def _brute_front(r, g):
    out = []
    for i in range(len(r)):
        if not (np.isfinite(r[i]) and np.isfinite(g[i])):
            out.append(False)
            continue
        dominated = any(np.isfinite(r[j]) and np.isfinite(g[j]) and r[j] >= r[i] and
                        g[j] <= g[i] and (r[j] > r[i] or g[j] < g[i]) for j in range(len(r)))
        out.append(not dominated)
    return np.array(out, dtype=bool)


@given(st.lists(st.tuples(st.sampled_from([0.1, 0.5, 0.7, 0.9, np.nan]),
                          st.sampled_from([0.0, 0.2, 0.3, 0.6, np.nan])), max_size=12))
def test_pareto_front_matches_the_definition(points):
    r = np.array([p[0] for p in points], dtype=float)
    g = np.array([p[1] for p in points], dtype=float)
    assert np.array_equal(pareto_front(r, g), _brute_front(r, g))


def _trials():
    rows = []
    for alpha, rew, gini in ((0.0, 0.95, 0.6), (0.25, 0.9, 0.4), (0.5, 0.8, 0.3),
                             (1.0, 0.65, 0.28), (2.0, 0.6, 0.35)):
        for seed in (0, 1):
            rows.append({"fairness.alpha": alpha, "seed": seed, "status": "done",
                         "reward_vs_oracle": rew + 0.01 * seed, "gini_reward": gini,
                         "reward_kept": rew / 0.95})
    rows.append({"fairness.alpha": 3.0, "seed": 0, "status": "error",
                 "reward_vs_oracle": 0.99, "gini_reward": 0.0, "reward_kept": 1.0})
    return pd.DataFrame(rows)


def test_settings_table_picks_and_summary():
    table = settings_table(_trials(), ["fairness.alpha", "seed"])
    assert list(table["fairness.alpha"]) == [0.0, 0.25, 0.5, 1.0, 2.0]  # failed trial left out
    assert list(table["n"]) == [2] * 5
    assert table["reward_vs_oracle"].iloc[0] == pytest.approx(0.955)
    assert list(table["front"]) == [True, True, True, True, False]  # α=2 dominated by α=1
    picks = pick_settings(table, reward_floor=0.7)
    assert table.loc[picks["most_reward"], "fairness.alpha"] == 0.0
    # ≥ 90 % of 0.955 = 0.8595: α ∈ {0, 0.25}; the fairer is 0.25
    assert table.loc[picks["fairest_at_90"], "fairness.alpha"] == 0.25
    assert table.loc[picks["fairest_above_floor"], "fairness.alpha"] == 0.5
    assert pick_settings(table, reward_floor=2.0)["fairest_above_floor"] is None
    md = summary_markdown(table, picks, ["fairness.alpha", "seed"], reward_floor=0.7,
                          n_trials=11, n_failed=1)
    assert "**most reward**: `fairness.alpha=0`" in md
    assert "`fairness.alpha=0.25`" in md.split("90 %")[1].splitlines()[0]
    assert "reward_vs_oracle ≥ 0.7**: `fairness.alpha=0.5`" in md
    assert "1 trials failed" in md
    assert md.count("\n|") == 2 + 5


# --------------------------------------------------------------------------- chunked simulate
def _pair(seed=3):
    env = SyntheticEnvironment(n_agents=12, n_resources=2, tightness=0.3, seed=seed)
    pol = ConstrainedThompsonSampling.from_config(
        PolicyConfig(2, fairness="proportional", oracle="fast", seed=seed))
    return pol, env


def _chunks(sizes):
    pol, env = _pair()
    frames, done = [], 0
    for n in sizes:
        frames.append(simulate(pol, env, n, seed=3, first_round=done + 1, oracle_method="fast"))
        done += n
    return pd.concat(frames, ignore_index=True).drop(columns="oracle_s"), pol


def test_simulate_in_chunks_continues_the_rounds_and_is_reproducible():
    df, pol = _chunks([10, 10, 5])
    assert list(df["round"]) == list(range(1, 26))
    again, pol2 = _chunks([10, 10, 5])
    pd.testing.assert_frame_equal(df, again)
    assert pol.round == pol2.round == 25
    # the first chunk is exactly an ordinary run of its length
    p, e = _pair()
    pd.testing.assert_frame_equal(df.iloc[:10].reset_index(drop=True),
                                  simulate(p, e, 10, seed=3, oracle_method="fast")
                                  .drop(columns="oracle_s"))


def test_simulate_first_round_bad_values():
    pol, env = _pair()
    before = pol.get_state()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidConfigError, match="first_round"):
            simulate(pol, env, 5, first_round=bad)
    with pytest.raises(InvalidConfigError, match="first_round"):
        simulate(pol, env, 5, first_round=3, budget_mode="horizon")
    from conftest import assert_state_equal

    assert_state_equal(before, pol.get_state())
