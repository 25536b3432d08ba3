"""Smoke tests of the oracle benchmark and the SCIP reference model."""

from __future__ import annotations

import numpy as np
import pytest

from librex_alloc.evaluation.oracle_bench import (
    COLUMNS,
    METHODS,
    count_cells,
    format_table,
    main,
    make_instance,
    oracle_benchmark,
)
from librex_alloc.evaluation.reference import solve_scip_reference
from librex_alloc.oracles import solve


def test_make_instance_is_deterministic_and_documented():
    v, r, b = make_instance(50, 3, tau=0.3, seed=7)
    v2, r2, b2 = make_instance(50, 3, tau=0.3, seed=7)
    assert np.array_equal(v, v2) and np.array_equal(r, r2) and np.array_equal(b, b2)
    assert v.shape == (50,) and r.shape == (50, 3) and b.shape == (3,)
    assert np.all((v >= 0) & (v <= 1)) and np.all((r >= 1) & (r <= 10))
    np.testing.assert_allclose(b, 0.3 * r.sum(axis=0))
    v3, r3, b3 = make_instance(50, 3, seed=7, decimals=2)
    np.testing.assert_array_equal(v3, np.round(v3, 2))
    np.testing.assert_array_equal(r3, np.round(r3, 2))
    np.testing.assert_array_equal(b3, np.round(b3, 2))


PROGRESS: list[int] = []


@pytest.fixture(scope="module")
def table():
    PROGRESS.clear()
    return oracle_benchmark(ns=(10, 60, 1500), ks=(2, 3), repeats=1, exact_time_limit=0.5,
                            scip_max_n=100, scip_time_limit=5.0, warm_up=False,
                            progress=PROGRESS.append)


def test_progress_reaches_the_cell_count(table):
    total = count_cells((10, 60, 1500), (2, 3), 1)
    assert total == 3 * 2 * len(METHODS)
    assert PROGRESS == sorted(PROGRESS) and PROGRESS[-1] == total
    assert len(PROGRESS) == 3 * 2  # one call per (n, K, instance), every method counted


def test_table_shape(table):
    assert list(table.columns) == COLUMNS
    assert len(table) == 3 * 2 * len(METHODS)
    cells = set(zip(table["n"], table["K"], table["method"]))
    assert cells == {(n, k, m) for n in (10, 60, 1500) for k in (2, 3) for m in METHODS}
    skipped = table[(table["method"] == "scip-reference") & (table["n"] == 1500)]
    assert (skipped["instances"] == 0).all()
    assert skipped["note"].str.contains("not run: n > 100").all()
    ran = table.dropna(subset=["median_ms"])
    assert (ran["instances"] == 1).all() and (ran["median_ms"] > 0).all()
    assert (ran["p90_ms"] >= ran["median_ms"]).all()
    text = format_table(table)
    assert len(text.splitlines()) == len(table) + 2 and "scip-reference" in text


def test_gaps_are_nonnegative(table):
    ran = table.dropna(subset=["mean_gap_pct"])
    assert (ran["mean_gap_pct"] >= -1e-7).all()  # percent: 1e-9 relative
    assert (ran["max_gap_pct"] >= ran["mean_gap_pct"] - 1e-12).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,k", [(12, 2), (40, 3)])
def test_scip_reference_agrees_with_exact(n, k, seed):
    # short decimals make CP-SAT's integer scaling exact, so both can prove optimality
    v, r, b = make_instance(n, k, seed=seed, decimals=2)
    ref = solve_scip_reference(v, r, b, time_limit=20.0)
    ex = solve(v, r, b, method="exact", time_limit=10.0)
    assert ref.status == "optimal" and ex.status == "optimal"
    assert ref.info["float_feasible"]
    assert ref.objective == pytest.approx(ex.objective, rel=1e-9, abs=1e-9)
    assert ref.bound == pytest.approx(ref.objective, rel=1e-6)
    assert ref.method == "scip-reference" and ref.solve_time > 0


def test_scip_reference_time_limit_reports_status():
    v, r, b = make_instance(400, 10, seed=3)
    ref = solve_scip_reference(v, r, b, time_limit=0.05)
    assert ref.status in ("optimal", "feasible", "not_solved")
    assert ref.solve_time < 5.0
    if ref.status != "not_solved":
        assert ref.objective <= ref.bound + 1e-6 * abs(ref.bound)


def test_main_writes_csv(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert main(["--quick", "--ns", "10,2000", "--ks", "2", "--repeats", "1", "--out",
                 str(out)]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "oracle bench 100%" in captured.err  # progress on stderr (log style: not a TTY)
    assert "| method" in text.replace("  ", " ") or "method" in text
    import pandas as pd

    df = pd.read_csv(out)
    assert set(df["n"]) == {10}  # --quick drops n > 1000
    assert len(df) == len(METHODS)


def test_round_benchmark_runs_both_apis_on_the_same_instances(capsys):
    from librex_alloc.cli import main

    assert main(["bench", "round", "--ns", "8", "--rounds", "2", "--instances", "synthetic",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    for what in ("| synthetic | 8 | 3 | fast | original |", "| synthetic | 8 | 3 | fast | batch |",
                 "| synthetic | 8 | 3 | exact | batch |", "scip-reference",
                 "| cpsat_rounds | gap_pct |"):
        assert what in text
    assert main(["bench", "round", "--ns", "8", "--rounds", "2", "--instances", "synthetic",
                 "--k", "5", "--no-progress"]) == 0
    assert "| synthetic | 8 | 5 | fast | batch |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        main(["bench", "round", "--instances", "nowhere"])
    assert err.value.code == 2


def test_round_benchmark_twins_make_the_same_decisions():
    """The two APIs run in lockstep on twin policies: the same rows are granted each round
    (so the paired allocate-time difference is the API's own cost)."""
    from librex_alloc.evaluation.round_bench import _rounds, synthetic_instance

    req, budget, mu = synthetic_instance(40, 3, seed=2)
    both, values = _rounds(40, 3, req, budget, mu, "fast", 6, 2, True)
    counts = {api: [r[3] for r in rows] for api, rows in both.items()}
    gaps = {api: [r[5] for r in rows] for api, rows in both.items()}
    assert len(counts["original"]) == 6 and len(values) == 6
    assert counts["original"] == counts["batch"] and gaps["original"] == gaps["batch"]
    assert sum(counts["batch"]) > 0
    assert not any(r[4] for rows in both.values() for r in rows)  # fast never runs CP-SAT
