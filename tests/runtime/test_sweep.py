"""``librex-alloc sweep`` on Ray Tune: a real small sweep, resume after an interruption, bad
input (exit 2, one line, nothing started), a trial's checkpoint restore, and a 2-node cluster
that loses a node during the sweep (slow; its own Ray in a subprocess)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from coordinator.sweep import (
    TrialSettings,
    main,
    run_inprocess_trial,
    run_sweep,
)
from librex_alloc.sweep_space import SweepSpace

ROOT = Path(__file__).resolve().parents[2]


def _tree(path: Path) -> dict:
    """Every file under ``path`` with its content hash (a snapshot to compare)."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- no Ray
def test_a_trial_restored_from_its_checkpoint_ends_as_an_uninterrupted_one(tmp_path):
    cell = {"fairness.alpha": 1.0, "seed": 2, "env.agents": 15}
    settings = TrialSettings(rounds=30, report_every=10, runner="inprocess")
    saved = []

    def keep(metrics, state_dir):
        dest = tmp_path / f"ckpt{len(saved)}"
        import shutil

        shutil.copytree(state_dir, dest)
        saved.append((metrics, dest))

    whole = run_inprocess_trial(cell, settings, keep)
    assert [m["rounds_done"] for m, _ in saved] == [10, 20, 30]
    # restart from the first checkpoint (as Tune does after a lost node): same end
    resumed = run_inprocess_trial(cell, settings, lambda m, d: None, saved[0][1])
    assert resumed["restored_from"] == 10
    for key in ("expected_reward", "reward", "oracle_reward", "cum_regret", "gini_reward",
                "jain_service", "reward_kept", "utilization"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-12), key
    assert 0 < whole["reward_kept"] < 1 and 0 < whole["reward_vs_oracle"] <= 1


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return exc.value.code, err


@pytest.mark.parametrize("param", ["fairness.alfa=1", "fairness.alpha=0,-1", "prior.foo=2",
                                   "seed=3:1", "env.family=cloud", "fairness.alpha=uniform(0,1)"])
def test_bad_space_is_a_usage_error_and_nothing_is_created(tmp_path, capsys, param):
    code, err = _run(["--param", param, "--storage", str(tmp_path / "store"),
                      "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("python -m coordinator.sweep: "
                                                              "error: ")
    assert not (tmp_path / "store").exists() and not (tmp_path / "out").exists()


def test_storage_that_is_not_writable(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = _run(["--param", "seed=0", "--storage", str(tmp_path / "file")], capsys)
    assert code == 2 and "--storage" in err[-1] and "not a folder" in err[-1]
    for bad in (tmp_path / "file" / "sub", Path("/proc/librex-sweep-test")):
        code, err = _run(["--param", "seed=0", "--storage", str(bad)], capsys)
        assert code == 2 and "--storage" in err[-1] and "not writable" in err[-1], err
        assert len(err) == 1


def test_optuna_missing_is_one_line(tmp_path, capsys):
    try:
        import optuna  # noqa: F401
        pytest.skip("optuna is installed here")
    except ImportError:
        pass
    code, err = _run(["--param", "fairness.alpha=uniform(0,1)", "--search", "optuna",
                      "--storage", str(tmp_path / "s")], capsys)
    assert code == 2 and "needs Optuna" in err[-1] and len(err) == 1


def test_resume_of_nothing_is_a_usage_error(tmp_path, capsys):
    code, err = _run(["--resume", "--storage", str(tmp_path / "s")], capsys)
    assert code == 2 and "holds no librex-alloc sweep" in err[-1]


def test_command_line_usage_error_has_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "coordinator.sweep", "--param", "discount=0",
                          "--storage", str(tmp_path / "s")], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "discount" in out.stderr and not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- on Ray
def test_small_sweep_then_resume_after_an_interruption(ray_session, tmp_path, capsys):
    marker = tmp_path / "failed-once"
    reports = tmp_path / "reports"
    reports.mkdir()

    def fail_once(m):
        # one trial dies after its second report, once
        (reports / f"{m['trial_id']}-{m['rounds_done']}-{os.getpid()}").touch()
        if m["cell"]["fairness.alpha"] == 1 and m["cell"]["seed"] == 1 and \
                m["rounds_done"] == 20 and not marker.exists():
            marker.touch()
            raise RuntimeError("injected failure")

    space = SweepSpace.from_params(["fairness.alpha=0,1", "seed=0:2", "env.agents=12"])
    settings = TrialSettings(rounds=30, report_every=10, runner="inprocess")
    store, out = tmp_path / "store", tmp_path / "out"
    first = run_sweep(space, storage=str(store), out=out, settings=settings, max_failures=0,
                      verbose=0, on_report=fail_once)
    t = first.trials
    assert len(t) == 4 and marker.exists()
    assert sorted(t["status"]) == ["done", "done", "done", "error"]
    assert {"fairness.alpha", "seed", "reward_vs_oracle", "gini_reward", "reward_kept",
            "jain_service", "utilization", "node_id"} <= set(t.columns)
    done_before = set(t.loc[t["status"] == "done", "trial_id"])
    snapshot = {p.name for p in reports.iterdir()}

    # a new sweep under the same name: refused, nothing overwritten
    before = _tree(store)
    with pytest.raises(SystemExit):
        main(["--param", "seed=0", "--storage", str(store), "--out", str(out)])
    # a resume with another space: refused, nothing changed
    with pytest.raises(SystemExit):
        main(["--resume", "--param", "fairness.alpha=0,0.5", "--param", "seed=0:2",
              "--param", "env.agents=12", "--storage", str(store), "--out", str(out)])
    err = capsys.readouterr().err
    assert "holds an earlier sweep" in err and "has another space" in err
    assert _tree(store) == before

    again = run_sweep(None, storage=str(store), out=out, resume=True, verbose=0,
                      on_report=fail_once)
    t2 = again.trials
    assert (t2["status"] == "done").all() and len(t2) == 4
    new = {p.name for p in reports.iterdir()} - snapshot
    assert new and all(n.split("-")[0] not in done_before for n in new)  # not re-run
    resumed = t2[~t2["trial_id"].isin(done_before)].iloc[0]
    # it failed after its report (and checkpoint) at round 20 and continued from there
    assert resumed["restored_from"] == 20 and resumed["rounds_done"] == 30
    assert [n.split("-")[1] for n in new] == ["30"]

    # outputs: Parquet with parameter-named columns, the plot, the summary
    pq = pd.read_parquet(out / "trials.parquet")
    assert len(pq) == 4 and set(pq["fairness.alpha"]) == {0, 1}
    assert (pq.loc[pq["fairness.alpha"] == 0, "reward_kept"] == 1.0).all()
    assert (out / "pareto.png").stat().st_size > 10_000
    md = (out / "summary.md").read_text()
    assert "**most reward**: `fairness.alpha=0`" in md
    assert list(again.settings["fairness.alpha"]) == [0, 1]


@pytest.mark.slow
def test_two_node_cluster_loses_a_node_during_the_sweep(tmp_path):
    script = Path(__file__).with_name("sweep_cluster_scenario.py")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["nodes_used"] == 2  # trials ran on both nodes
    assert r["statuses"] == ["done"] * r["trials"]  # no trial lost
    assert r["moved"], r  # a trial of the removed node finished elsewhere...
    assert all(m["restored_from"] > 0 for m in r["moved"])  # ...from its checkpoint
    assert r["removed_node_files"] > 0 and r["removed_node_files_missing"] == 0


@pytest.mark.slow
def test_coordinator_trial_reports_checkpoints_and_restores(ray_session, tmp_path):
    """A coordinator trial (run_job with a coordinator and a shard actor, the cell's whole
    PolicyConfig as its policy_config) chunk by chunk; a restart from its first checkpoint
    ends where the uninterrupted trial ended."""
    import shutil

    from coordinator.sweep import run_coordinator_trial

    extra = {"prior.alpha_prior": 2.0, "discount": 0.99}
    cell = {"fairness.alpha": 1.0, "seed": 1, "env.agents": 200, **extra}
    settings = TrialSettings(rounds=20, report_every=10, runner="coordinator")
    saved = []

    def keep(metrics, state_dir):
        dest = tmp_path / f"ckpt{len(saved)}"
        shutil.copytree(state_dir, dest)
        saved.append((metrics, dest))

    whole = run_coordinator_trial(cell, settings, keep, name="t-whole")
    assert [m["rounds_done"] for m, _ in saved] == [10, 20]
    assert sorted(p.name for p in saved[0][1].iterdir()) == ["main", "totals.json", "twin"]
    from librex_alloc import load_state

    (snap,) = (saved[0][1] / "main").glob("snapshot-*.parquet")
    policy = load_state(snap)["policy"]["config"]  # the cell's whole configuration arrived
    assert policy["fairness"]["alpha"] == 1.0 and policy["seed"] == 1
    assert policy["prior"] == {"alpha_prior": 2.0} and policy["discount"] == 0.99
    assert 0 < whole["reward_kept"] < 1 and 0 < whole["reward_vs_oracle"] < 1
    assert 0 < whole["gini_reward"] < 1 and 0 < whole["utilization"] <= 1
    resumed = run_coordinator_trial(cell, settings, lambda m, d: None, saved[0][1],
                                    name="t-whole")
    assert resumed["restored_from"] == 10 and resumed["rounds_done"] == 20
    for key in ("expected_reward", "oracle_reward", "reference_expected_reward"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-9), key


def test_sweep_is_a_librex_alloc_command(tmp_path, capsys):
    """The plug-in hook (entry point ``librex_alloc.commands: sweep``) builds the parser."""
    import argparse

    from coordinator.sweep import register

    top = argparse.ArgumentParser(prog="librex-alloc")
    parser, handler = register(top.add_subparsers(dest="command"))
    args = top.parse_args(["sweep", "--param", "fairness.alfa=1", "--storage",
                           str(tmp_path / "s")])
    with pytest.raises(SystemExit) as exc:
        handler(args, parser)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err == [
        "librex-alloc sweep: error: " + err[0].split("error: ", 1)[1]]
    assert "unknown key 'fairness.alfa'" in err[0]


def test_sweep_bench_plain_loop_and_bad_input(capsys):
    from coordinator.sweep_bench import main as bench

    assert bench(["--modes", "multiprocessing", "--alphas", "0,1", "--priors", "1",
                  "--rounds", "5", "--report-every", "5", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 cells" in out and "\nmultiprocessing         2" in out
    for argv in (["--modes", "tune"], ["--alphas", "0,-1"], ["--rounds", "0"]):
        with pytest.raises(SystemExit) as exc:
            bench(argv)
        assert exc.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_ctrl_c_exits_130_and_resume_finishes(tmp_path):
    """SIGINT to a running ``sweep`` (after its first checkpoints): exit 130, no traceback;
    ``--resume`` then finishes every trial, continuing from the checkpoints."""
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    store, out = tmp_path / "store", tmp_path / "out"
    cmd = [sys.executable, "-m", "coordinator.sweep", "--storage", str(store), "--out",
           str(out), "--quiet"]
    proc = subprocess.Popen(cmd + ["--param", "fairness.alpha=0,1", "--param",
                                   "env.agents=12", "--rounds", "3000", "--report-every",
                                   "50"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # the second checkpoint on storage: Tune's driver has taken in the first by then (a
        # checkpoint persisted by the trial but not yet registered by the driver when Ctrl-C
        # lands is, by Tune's design, not resumed from: that trial reruns its first chunk)
        while not list(store.glob("sweep/*/checkpoint_000001")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "continue with --resume" in err
    again = subprocess.run(cmd + ["--resume"], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    t = pd.read_parquet(out / "trials.parquet")
    assert (t["status"] == "done").all() and (t["rounds_done"] == 3000).all()
    assert (t["restored_from"] > 0).any()


def test_resume_with_other_trial_settings_or_no_space(tmp_path, capsys):
    """Checked from the experiment's stored description, before Ray starts."""
    from coordinator.sweep import _meta, _write_meta, prepare_storage
    from librex_alloc.sweep_space import SweepSpaceError

    space = SweepSpace.from_params(["fairness.alpha=0,1"])
    _, fs, exp = prepare_storage(str(tmp_path / "s"), "sweep")
    _write_meta(fs, exp, _meta(space, "grid", 1, 0, TrialSettings(rounds=30), "x"))
    before = _tree(tmp_path / "s")
    code, err = _run(["--resume", "--rounds", "40", "--storage", str(tmp_path / "s")], capsys)
    assert code == 2 and "other trial settings" in err[-1] and len(err) == 1
    code, err = _run(["--storage", str(tmp_path / "t")], capsys)
    assert code == 2 and "an empty space" in err[-1] and not (tmp_path / "t").exists()
    with pytest.raises(SweepSpaceError, match="search"):
        run_sweep(space, storage=str(tmp_path / "u"), search="bayes")
    assert _tree(tmp_path / "s") == before


def test_optuna_gets_the_space_as_tune_domains():
    from ray import tune

    from coordinator.sweep import _param_space

    space = SweepSpace.from_params(["fairness.alpha=uniform(0,2)", "discount=loguniform(0.5,1)",
                                    "seed=0,1", "oracle=fast"])
    ps = _param_space(space, None, "optuna")
    assert isinstance(ps["fairness.alpha"], tune.search.sample.Float)
    assert (ps["fairness.alpha"].lower, ps["fairness.alpha"].upper) == (0, 2)
    assert isinstance(ps["discount"].sampler, tune.search.sample.LogUniform)
    assert ps["seed"].categories == [0, 1] and ps["oracle"] == "fast"


def test_placement_group_per_trial():
    from coordinator.sweep import _resources

    auto = TrialSettings(shards=2, coordinator_above=1000)
    assert _resources({"cell": {"env.agents": 5000}}, auto).bundles == [{"CPU": 1.0}] * 3
    assert _resources({"cell": {"env.agents": 50}}, auto).bundles == [{"CPU": 1.0}]
    flat = {"env.agents": 5000, "fairness.alpha": 0.5}  # an Optuna trial's config
    assert len(_resources(flat, auto).bundles) == 3
