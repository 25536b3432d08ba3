"""The offline study of the oracles (librex_alloc.evaluation.offline): cached vectors, the
quality table and the bound table, through its command line."""

import numpy as np
import pytest

from librex_alloc.evaluation import offline
from librex_alloc.evaluation.round_bench import mixed_instance
from librex_alloc.oracles import solve


def test_bounds_are_upper_bounds_and_never_above_the_lp():
    """On a problem too large to enumerate, every bound of the study is at least exact's
    proven optimum, and the tightened ones are at most the LP's."""
    req, budget, _ = mixed_instance(60, seed=3)
    rng = np.random.default_rng(5)
    values = rng.beta(2, 2, 60) / np.maximum(rng.uniform(0, 1, 60), 0.02)
    ex = solve(values, req, budget, method="exact", time_limit=20)
    assert ex.status == "optimal"
    s = offline.bound_study(values, req, budget, grid=2048)
    for key in ("lp", "covers", "lagrange1"):
        assert s[key] >= ex.objective * (1 - 1e-9), key
        assert s[f"{key}_s"] > 0
    assert s["covers"] <= s["lp"] and s["lagrange1"] <= s["lp"]


def test_knapsack_dp_is_the_brute_force_optimum():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 1, 8)
        w = rng.integers(0, 30, 8)
        cap = int(rng.integers(1, 80))
        best = max(p[m].sum() for m in (((np.arange(256)[:, None] >> np.arange(8)) & 1)
                                        .astype(bool)) if w[m].sum() <= cap)
        assert offline._knapsack(p, w, cap) == pytest.approx(best)


def test_collect_quality_and_bounds_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "v.npz"
    assert offline.main(["collect", "--out", str(out), "--instances", "mixed", "--modes",
                         "proportional", "--n", "40", "--rounds", "4", "--per-row", "2"]) == 0
    data = dict(np.load(out))
    assert list(data["mode"]) == ["proportional"] * 2 and data["values"].shape == (2, 40)
    assert data["optimal"].all()
    # the cached optimum is exact's; auto never exceeds it
    q = offline.quality(data)
    assert q["vectors"].iloc[-1] == 2 and (q["worst"] <= 1 + 1e-9).all()
    b = offline.bounds(data, grid=1024)
    for key in ("lp", "auto", "covers", "lagrange1"):
        assert (b[f"{key}_pct"] >= -1e-7).all(), key
    capsys.readouterr()
    assert offline.main(["quality", str(out)]) == 0
    assert "below_99.9" in capsys.readouterr().out
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a file of arrays")
    assert offline.main(["bounds", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read" in err[0]
    other = tmp_path / "other.npz"
    np.savez(other, values=np.zeros((1, 3)))
    assert offline.main(["quality", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]
