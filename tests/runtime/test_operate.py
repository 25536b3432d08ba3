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
        got = pd.read_parquet(p).drop(columns="oracle_s")
        pd.testing.assert_frame_equal(got, runner.run_cell(c).drop(columns="oracle_s"))


# ------------------------------------------------------------------ a detached job on a cluster
# A token-authenticated ``ray start --head`` in a subprocess, on free ports, with its own
# RAY_TMPDIR (as test_connect.py does); every command runs in a subprocess, as a user would.
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def cluster():
    """A Ray head (``ray start --head --block``, token authentication on, Prometheus metrics
    export on a free port); yields (address, driver env, metrics port)."""
    tmp = tempfile.mkdtemp(prefix="rop-", dir="/tmp")  # short: Ray's socket paths
    token = uuid.uuid4().hex
    port, mport = _free_port(), _free_port()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    log = open(Path(tmp) / "head.log", "w+")
    proc = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}",
                             "--num-cpus=1", "--include-dashboard=false",
                             f"--metrics-export-port={mport}", "--disable-usage-stats"],
                            env=_env(RAY_TMPDIR=tmp, RAY_AUTH_MODE="token",
                                     RAY_AUTH_TOKEN=token),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            log.seek(0)
            if "--block" in log.read() or proc.poll() is not None:
                break
            time.sleep(0.5)
        assert proc.poll() is None, "ray start --head failed"
        yield f"127.0.0.1:{port}", _env(RAY_TMPDIR=tmp, RAY_AUTH_TOKEN=token), mport
    finally:
        proc.send_signal(signal.SIGTERM)  # --block: stops the head's processes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _cmd(args, env, timeout=180) -> tuple[int, str, str]:
    cmd = [sys.executable, "-c", "import sys; from librex_alloc.cli import main; "
           "sys.exit(main())", *args] if args[0] == "run" else \
        [sys.executable, "-m", "coordinator.ops", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


def _status(where, env) -> dict:
    code, out, err = _cmd(["status", *where, "--json", "--interval", "1"], env)
    assert code == 0, err
    return json.loads(out)


def _pids(address, env, names) -> dict:
    code = ("import json, ray\n"
            f"ray.init(address={address!r}, namespace='librex-alloc', log_to_driver=False)\n"
            f"print(json.dumps({{n: ray.get(ray.get_actor(n).pid.remote()) for n in {names!r}}}))"
            "\nray.shutdown()\n")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(env, RAY_AUTH_MODE="token"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _scrape(port: int, job: str) -> dict:
    """Our metrics of ``job`` on Ray's Prometheus endpoint: {name or name/tag: value}
    (names without Ray's ``ray_`` prefix; the one tag besides job/Ray's own after a slash)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    pat = re.compile(r'^(?:ray_)?(librex_\w+)\{([^}]*)\}\s+(\S+)$')
    for line in text.splitlines():
        m = pat.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if labels.get("job") != job:
            continue
        name = m.group(1).removesuffix("_total")
        extra = [labels[k] for k in ("state", "counter", "measure", "resource", "phase")
                 if k in labels]
        out[name + (f"/{extra[0]}" if extra else "")] = float(m.group(3))
    return out


def _wait(pred, timeout=60.0, every=1.0):
    end = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > end:
            return got
        time.sleep(every)


@pytest.mark.slow
def test_detached_job_outlives_its_driver_restarts_and_stops_for_resume(cluster, tmp_path):
    address, env, mport = cluster
    out = tmp_path / "o"
    where = ["--name", "dj", "--address", address]
    # 4,000 agents: the environment pickles to ~160 kB, more than Ray passes by value (100 kB):
    # given to the shards as an object, their restart would fail once the driver is gone
    code, text, err = _cmd(["run", "--detached", "--until-stopped", "--agents", "4000",
                            "--shards", "2", "--deadline", "2", "--checkpoint-every", "20",
                            "--out", str(out), *where, "--no-progress"], env)
    assert code == 0, err
    assert "librex-alloc status --name dj" in text and "librex-alloc stop --name dj" in text
    assert "Traceback" not in err
    # the driver is gone; the job plays on
    s1 = _status(where, env)
    assert s1["rounds_per_s"] > 0 and s1["submitters_alive"] == 2 and not s1["stopped"]
    assert s1["fairness"] is not None and 0 <= s1["fairness"]["jain_reward"] <= 1
    # its metrics reach Ray's Prometheus endpoint, with the values status() reports
    seen = _wait(lambda: (m := _scrape(mport, "dj")).get("librex_round", 0) >= s1["round"]
                 and m, timeout=60)
    assert seen, "no librex_round metric for job dj on the metrics endpoint"
    s1b = _status(where, env)
    assert s1["round"] <= seen["librex_round"] <= s1b["round"]
    assert seen["librex_submitters/registered"] == 2
    assert seen["librex_counter/restarts"] == 0
    assert 0 < seen["librex_fairness/jain_reward"] <= 1
    assert seen["librex_rounds_played"] > 0 and seen["librex_round_seconds_count"] > 0
    assert {"submit", "solve", "round"} <= {k.split("/")[1] for k in seen
                                            if k.startswith("librex_phase_seconds/")}
    # a second job on its folder is refused (its owner file names the detached job)
    code, _, err = _cmd(["run", "--agents", "10", "--shards", "1", "--rounds", "2", "--out",
                         str(out), "--name", "other", "--address", address, "--no-progress"],
                        env)
    assert code == 2 and "detached" in err and "librex-alloc stop --name dj" in err, err
    # kill the coordinator's and a shard's processes: Ray restarts both, no driver needed
    pids = _pids(address, env, ["dj-coordinator", "dj-shard-0"])
    os.kill(pids["dj-coordinator"], signal.SIGKILL)
    os.kill(pids["dj-shard-0"], signal.SIGKILL)
    before = s1["round"]
    s2 = _wait(lambda: (s := _status(where, env))["counters"]["restarts"] >= 1 and
               s["round"] > before + 5 and s["submitters_alive"] == 2 and s, timeout=90)
    assert s2, "the coordinator did not restart and play on without the driver"
    assert _wait(lambda: _scrape(mport, "dj").get("librex_counter/restarts") == 1,
                 timeout=60), "the restarted coordinator's metrics did not arrive"
    new = _pids(address, env, ["dj-coordinator", "dj-shard-0"])
    assert new["dj-coordinator"] != pids["dj-coordinator"]
    assert new["dj-shard-0"] != pids["dj-shard-0"]
    # stop: final snapshot, rounds written, actors gone
    code, text, err = _cmd(["stop", *where], env)
    assert code == 0, err
    assert "final snapshot" in text and "--resume" in text, text
    stopped_at = int(text.split("at round ")[1].split(":")[0])
    rounds = pd.read_parquet(out / "rounds.parquet")
    assert rounds["round"].max() == stopped_at and rounds["round"].is_unique
    assert list(rounds["round"]) == list(range(1, stopped_at + 1))
    code, _, err = _cmd(["status", *where], env)
    assert code == 2 and "no job named 'dj'" in err and err.count("\n") == 1, err
    code, text, err = _cmd(["stop", *where], env)
    assert code == 0 and text.startswith("nothing to stop"), (text, err)
    # the checkpoint resumes, attached this time
    code, text, err = _cmd(["run", "--resume", "--rounds", "5", "--agents", "4000", "--shards",
                            "2", "--deadline", "2", "--checkpoint-every", "20", "--out",
                            str(out), *where, "--no-progress", "--no-plot"], env)
    assert code == 0, err
    rounds = pd.read_parquet(out / "rounds.parquet")
    assert rounds["round"].max() == stopped_at + 5 and rounds["round"].is_unique


def test_detached_without_a_cluster_is_one_line(capsys, no_job, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    _one_line_error(["run", "--detached", "--out", str(tmp_path / "o")], capsys,
                    "--detached", "ray start --head", "--address", "RAY_ADDRESS")
    _one_line_error(["run", "--detached", "--address", "h:1", "--duration", "3", "--out",
                     str(tmp_path / "o")], capsys, "--detached", "--duration")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_status_and_stop_of_no_job_and_no_cluster(cluster, tmp_path):
    address, env, _ = cluster
    code, _, err = _cmd(["status", "--name", "nosuch", "--address", address], env)
    assert code == 2 and err.count("\n") == 1 and "no job named 'nosuch'" in err, err
    code, out, err = _cmd(["stop", "--name", "nosuch", "--address", address], env)
    assert code == 0 and out.startswith("nothing to stop") and out.count("\n") == 1, (out, err)
    nowhere = f"127.0.0.1:{_free_port()}"
    code, _, err = _cmd(["status", "--address", nowhere, "--connect-timeout", "2"], _env())
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    # no --address: Ray's "auto" looks for a cluster on this machine (also by its processes,
    # so another Ray running here may be found: then no such job); either way one line
    code, _, err = _cmd(["status", "--connect-timeout", "2"],
                        _env(RAY_TMPDIR=str(tmp_path)))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "no Ray cluster" in err or "no job named" in err or "cannot connect" in err, err


@pytest.mark.slow
def test_two_nodes_run_and_grid(tmp_path):
    """On a 2-node ``ray.cluster_utils.Cluster``: a coordinated run (its shards started with
    Ray's ``"SPREAD"``) finishes, every shard on a node of the cluster; grid cells that run on
    the worker node come back to the driver. Both nodes usually host shards, but ``"SPREAD"``
    is best effort: in a clean-clone CI run (2026-12-05) all four landed on one node, and
    under two busy loops so did Ray's soft node affinity, so that is not asserted."""
    script = Path(__file__).with_name("ops_cluster_scenario.py")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(got["nodes"]) == 2
    assert len(got["shard_nodes"]) == 4 and set(got["shard_nodes"].values()) <= set(got["nodes"])
    assert got["rounds"] == list(range(1, got["until"] + 1)) and got["until"] == 30
    assert "final snapshot" in got["stop"]
    assert got["cells_node_is_worker"] and got["files"]
    assert got["written"] == got["paths"]  # written by the driver, not on the worker node


# ------------------------------------------------------------------ the commands as plug-ins
def _plugins_of_this_checkout():
    """The ``librex_alloc.commands`` entry points declared in this checkout's pyproject.toml
    (the installed metadata may be older)."""
    import tomllib
    from importlib.metadata import EntryPoint

    with open(ROOT / "pyproject.toml", "rb") as f:
        eps = tomllib.load(f)["project"]["entry-points"]["librex_alloc.commands"]
    return sorted((EntryPoint(name, value, "librex_alloc.commands")
                   for name, value in eps.items()), key=lambda ep: ep.name)


def test_status_and_stop_are_commands_and_fail_in_one_line(tmp_path):
    """Through ``librex-alloc`` (its plug-ins as this checkout declares them), in a fresh
    process (this one may hold the test session's Ray)."""
    assert {"run", "status", "stop"} <= {ep.name for ep in _plugins_of_this_checkout()}
    code = ("import sys\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "from test_operate import _plugins_of_this_checkout\n"
            "from librex_alloc import cli\n"
            "cli._plugins = _plugins_of_this_checkout\n"
            "sys.exit(cli.main(sys.argv[2:]))\n")
    here = str(Path(__file__).parent)
    nowhere = f"127.0.0.1:{_free_port()}"
    cases = [(["status", "--address", nowhere, "--connect-timeout", "1"], nowhere),
             (["stop", "--address", nowhere, "--connect-timeout", "1"], "nothing answers"),
             (["status", "--interval", "0"], "--interval"),
             (["stop", "--address", "local"], "--address local")]
    for argv, fragment in cases:
        proc = subprocess.run([sys.executable, "-c", code, here, *argv], env=_env(),
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith(f"librex-alloc {argv[0]}: error:") and fragment in line, line


@pytest.mark.slow
def test_executor_and_bench_start_their_own_ray_beside_a_running_cluster(cluster, tmp_path):
    """Plain ``ray.init(num_cpus=...)`` would find the running local cluster (its RAY_TMPDIR)
    and refuse ``num_cpus``; both start a new local Ray instead."""
    _, env, _ = cluster
    code = ("from coordinator.experiments import RayExecutor\n"
            "ex = RayExecutor(num_cpus=1)\n"
            "assert ex._started\n"
            "print(ex.submit(pow, 2, 5).result())\n"
            "ex.shutdown()\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("32"), proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-m", "coordinator.bench", "--sizes", "100",
                           "--shards", "1", "--per-agent", "", "--rounds", "3",
                           "--memory-rounds", "0"], env=env, capture_output=True, text=True,
                          timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| 100 |" in proc.stdout or "100" in proc.stdout


def test_stop_of_an_attached_job_lets_its_driver_finish(ray_session, tmp_path):
    """``stop`` on a job whose ``run`` driver is attached only stops the loop: the driver
    writes the final snapshot and returns as after Ctrl-C (here: a thread of this process)."""
    import argparse
    import threading

    from coordinator.job import run_job
    from coordinator.ops import stop_job

    ray = ray_session
    result = {}

    def drive():
        result["job"] = run_job(agents=60, shards=1, rounds=None, out=tmp_path / "o",
                                name="att", namespace="librex-runtime-tests", progress=False,
                                plot=False, round_deadline_s=2.0, stream=open(os.devnull, "w"))

    t = threading.Thread(target=drive)
    t.start()
    end = time.monotonic() + 120
    while True:
        try:
            coord = ray.get_actor("att-coordinator", namespace="librex-runtime-tests")
            if ray.get(coord.status.remote())["round"] >= 3:
                break
        except ValueError:
            pass
        assert time.monotonic() < end
        time.sleep(0.2)
    args = argparse.Namespace(name="att", namespace="librex-runtime-tests",
                              checkpoint_dir=None)
    line = stop_job(args)
    assert line.startswith("stopped job 'att'") and "its driver" in line, line
    t.join(120)
    assert not t.is_alive()
    res = result["job"]
    rounds = pd.read_parquet(res.parquet)["round"]
    assert res.summary["rounds"] == rounds.max() >= 3
    assert stop_job(args).startswith("nothing to stop")
