"""The experiment runner on Ray tasks gives the same cells as in-process runs."""

from __future__ import annotations

import pandas as pd

from coordinator.experiments import RayExecutor
from librex_alloc.evaluation.runner import Cell, cell_path, run_cell, run_grid


def test_ray_executor_runs_the_grid_like_a_process(ray_session, tmp_path):
    cells = [Cell("constrained-ts", "synthetic", s, 12, policy_kwargs={"oracle": "fast"},
                  env_kwargs={"n_agents": 5, "n_resources": 2}) for s in (0, 1, 2)]
    ex = RayExecutor()
    assert not ex._started  # joined the session's Ray, did not start its own
    run_grid(cells, tmp_path, executor=ex)
    for c in cells:
        got = pd.read_parquet(cell_path(tmp_path, c)).drop(columns="oracle_s")
        want = run_cell(c).drop(columns="oracle_s")
        pd.testing.assert_frame_equal(got, want)


def test_the_core_finds_the_ray_executor_and_the_run_command_as_plugins(ray_session):
    from librex_alloc import cli
    from librex_alloc.evaluation.paper import plugin_executor

    assert isinstance(plugin_executor("ray"), RayExecutor)
    assert "run" in [ep.name for ep in cli._plugins()]
    try:
        plugin_executor("no-such-executor")
    except LookupError as exc:
        assert "no-such-executor" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown executor must raise")
