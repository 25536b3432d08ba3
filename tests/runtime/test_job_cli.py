"""The main job through its command line, on the session's Ray (slow: ~10 s)."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from coordinator.cli import configure_run_parser, main

pytestmark = pytest.mark.slow


def test_run_command_writes_parquet_plot_and_summary(ray_session, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--agents", "300", "--shards", "2", "--rounds", "40", "--out", str(out),
                 "--no-progress", "--checkpoint-every", "15", "--name", "cli-test"]) == 0
    text = capsys.readouterr().out
    assert "40 in" in text and "rounds/s" in text and "applied (each once)" in text
    table = pq.read_table(out / "rounds.parquet")
    assert table.column("round").to_pylist() == list(range(1, 41))
    applied = table.column("outcomes_applied").to_pylist()[-1]
    assert applied == sum(table.column("n_allocated").to_pylist())  # every outcome, once
    assert (out / "run.png").stat().st_size > 10_000
    assert any(p.name.startswith("snapshot-") for p in (out / "checkpoint").iterdir())
    # resuming the saved run continues its round numbers (rounds.parquet gets a second part)
    from coordinator.job import run_job

    res = run_job(agents=300, shards=2, rounds=5, out=out, resume=True, progress=False,
                  plot=False, name="cli-test", checkpoint_every=15, stream=io.StringIO())
    assert pq.read_table(res.parquet).column("round").to_pylist() == list(range(1, 46))
    assert res.summary["counters"]["restarts"] == 1


def test_run_options_are_validated():
    import argparse

    parser = configure_run_parser(argparse.ArgumentParser())
    for bad in (["--agents", "0"], ["--fairness", "fair"], ["--deadline", "-1"],
                ["--tightness", "nan"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    assert parser.parse_args(["--fairness", "0.5"]).fairness == 0.5


def test_benchmark_cases_run_and_tabulate(ray_session, tmp_path):
    import numpy as np

    from coordinator.bench import bench_per_agent, bench_shards, table

    shards = bench_shards(300, 2, 6, 3, str(tmp_path))
    per_agent = bench_per_agent([2], 3, str(tmp_path))
    assert shards["rounds_per_s"] > 0 and shards["missing"] == 0
    assert not np.isnan(shards["snapshot_ms"])  # a snapshot happened in the measured rounds
    text = table([shards, *per_agent])
    assert "| 300 | 2 shards |" in text and "| 2 | 2 actors (one per agent) |" in text
