"""The experiment runner: cells, resumability, parallel execution, summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from librex_alloc import InvalidConfigError
from librex_alloc.evaluation.runner import (
    Cell,
    cell_path,
    load_cells,
    mean_ci,
    run_cell,
    run_grid,
    summarize_cells,
)

ENV = {"n_agents": 6, "n_resources": 2}
POLICY = {"oracle": "fast", "fairness": "proportional"}


def _cells(seeds=(0, 1)):
    return [Cell("constrained-ts", "synthetic", s, 15, policy_kwargs=POLICY, env_kwargs=ENV,
                 label="ts") for s in seeds]


def test_a_cell_is_a_seeded_simulation():
    a, b = run_cell(_cells()[0]), run_cell(_cells()[0])
    pd.testing.assert_frame_equal(a.drop(columns="oracle_s"), b.drop(columns="oracle_s"))
    assert set(a[["policy", "env", "seed", "label"]].iloc[0]) == {"constrained-ts",
                                                                  "synthetic", 0, "ts"}
    assert len(a) == 15


def test_grid_runs_in_parallel_and_resumes(tmp_path):
    cells = _cells((0, 1, 2))
    seen = []
    paths = run_grid(cells[:2], tmp_path, workers=2, progress=seen.append)
    assert all(p.exists() for p in paths) and seen[-1] == 2
    stamp = paths[0].stat().st_mtime_ns
    seen.clear()
    paths = run_grid(cells, tmp_path, workers=1, progress=seen.append)
    assert seen[0] == 2 and seen[-1] == 3  # two skipped, one run
    assert paths[0].stat().st_mtime_ns == stamp  # not recomputed
    rounds = load_cells(paths)
    assert len(rounds) == 45
    summary = summarize_cells(rounds)
    assert list(summary["seed"]) == [0, 1, 2]
    serial = run_cell(cells[2])
    np.testing.assert_array_equal(pd.read_parquet(cell_path(tmp_path, cells[2]))["reward"],
                                  serial["reward"])


def test_cells_are_validated_and_keyed_stably():
    assert _cells()[0].key == _cells()[0].key
    assert _cells()[0].key != _cells()[1].key
    with pytest.raises(InvalidConfigError):
        Cell("no-such-policy", "synthetic", 0, 5)
    with pytest.raises(InvalidConfigError):
        Cell("constrained-ts", "no-such-env", 0, 5)
    with pytest.raises(InvalidConfigError):
        Cell("constrained-ts", "synthetic", -1, 5)
    with pytest.raises(InvalidConfigError):
        Cell("constrained-ts", "synthetic", 0, 5, env_kwargs={"x": object()})


def test_mean_ci_known_answer():
    m, h = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5
    assert h == pytest.approx(3.182446305 * np.std([1, 2, 3, 4], ddof=1) / 2)  # t(0.975, 3)
    assert np.isnan(mean_ci([1.0])[1])
