"""Operating a job: the small runtime gaps of issue 16 (``--pending-window-s``, grid cells whose
rows come back to the driver), ``librex-alloc status`` / ``stop`` and ``run --detached``."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from librex_alloc import cli


def _cli(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(argv, capsys, *fragments) -> str:
    code, out, err = _cli(argv, capsys)
    assert code == 2, (argv, out, err)
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert re.match(r"librex-alloc( \w+)*: error: ", message), message
    for f in fragments:
        assert f in message, (f, message)
    return message


@pytest.fixture
def no_job(monkeypatch):
    import coordinator.job

    def boom(*args, **kwargs):
        raise AssertionError("the job started")

    monkeypatch.setattr(coordinator.job, "run_job", boom)
    monkeypatch.setattr(coordinator.job, "_connect", boom)


# ------------------------------------------------------------------ --pending-window-s
@pytest.mark.parametrize("text", ["-1", "nan", "inf", "soon", ""])
def test_pending_window_s_bad_values_are_one_line(text, capsys, no_job, tmp_path):
    _one_line_error(["run", "--pending-window-s", text, "--out", str(tmp_path / "o")], capsys,
                    "--pending-window-s")
    assert not (tmp_path / "o").exists()  # nothing was made


def test_pending_window_s_reaches_the_coordinator_config(monkeypatch, tmp_path, capsys):
    import coordinator.job as job

    seen = {}

    class Stop(Exception):
        pass

    def prepare(out, checkpoint_dir, resume, owner):
        raise Stop

    real = job.CoordinatorConfig

    def config(*args, **kwargs):
        cfg = real(*args, **kwargs)
        seen["config"] = cfg
        return cfg

    monkeypatch.setattr(job, "_prepare_folders", prepare)
    monkeypatch.setattr(job, "CoordinatorConfig", config)

    with pytest.raises(Stop):
        job.run_job(agents=10, shards=1, rounds=1, out=tmp_path / "o", pending_window_s=7.5)
    assert seen["config"].pending_window_s == 7.5
    # and the command line passes it on
    got = {}

    def fake(**kwargs):
        got.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "run_job", fake)
    code, _, _ = _cli(["run", "--pending-window-s", "0", "--out", str(tmp_path / "o")],
                      capsys)
    assert code == 130 and got["pending_window_s"] == 0.0


# ------------------------------------------------------------------ RayExecutor
def test_ray_executor_brings_cell_rows_back_to_the_driver(ray_session, tmp_path,
                                                          monkeypatch):
    """Cells run remotely but their files are written here, by the driver (so a cell that
    ran on another node is not left in that node's file system)."""
    from coordinator.experiments import RayExecutor
    from librex_alloc.evaluation import runner

    written = []
    real = runner._write

    def spy(df, path):
        written.append(Path(path))
        real(df, path)

    monkeypatch.setattr(runner, "_write", spy)
    cells = [runner.Cell("constrained-ts", "synthetic", s, 8, policy_kwargs={"oracle": "fast"},
                         env_kwargs={"n_agents": 4, "n_resources": 2}) for s in (0, 1)]
    paths = runner.run_grid(cells, tmp_path, executor=RayExecutor())
    assert sorted(written) == sorted(paths)  # every file written by this process
    for c, p in zip(cells, paths):
        got = pd.read_parquet(p).drop(columns="solve_time")
        pd.testing.assert_frame_equal(got, runner.run_cell(c).drop(columns="solve_time"))
