"""How ``librex-alloc run`` reaches Ray (``coordinator/job.py`` ``_connect``), against a real
``ray start --head`` in a subprocess (token authentication on, its own RAY_TMPDIR so no other
Ray on the machine sees it; stopped in a finally) and against an address where nothing
listens (slow: a Ray head, ~60 s in all)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN = ["--agents", "100", "--shards", "1", "--rounds", "5", "--no-progress", "--no-plot"]


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


def _run(args, env, timeout=180) -> tuple[int, str, str, float]:
    cmd = [sys.executable, "-c", "import sys; from librex_alloc.cli import main; "
           "sys.exit(main())", "run", *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0


def _our_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("librex-alloc run:")]


@pytest.fixture(scope="module")
def head():
    """A token-authenticated Ray head (``ray start --head --block``) on a free port; yields
    (address, env of a driver that holds the token but has not set RAY_AUTH_MODE)."""
    tmp = tempfile.mkdtemp(prefix="rh-", dir="/tmp")  # short: Ray's socket paths
    token = uuid.uuid4().hex
    port = _free_port()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    head_env = _env(RAY_TMPDIR=tmp, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    log = open(Path(tmp) / "head.log", "w+")
    proc = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}",
                             "--num-cpus=1", "--include-dashboard=false",
                             "--disable-usage-stats"], env=head_env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            log.seek(0)
            if "--block" in log.read() or proc.poll() is not None:
                break
            time.sleep(0.5)
        assert proc.poll() is None, "ray start --head failed"
        yield f"127.0.0.1:{port}", _env(RAY_TMPDIR=tmp, RAY_AUTH_TOKEN=token)
    finally:
        proc.send_signal(signal.SIGTERM)  # --block: stops the head's processes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_address_joins_a_token_authenticated_cluster(head, tmp_path):
    address, env = head
    code, out, err, _ = _run([*RUN, "--address", address, "--out", str(tmp_path / "o")], env)
    assert code == 0, err
    assert f"on Ray cluster at {address}" in out
    assert "Traceback" not in err


def test_no_address_starts_a_new_local_ray_beside_a_running_cluster(head, tmp_path):
    _, env = head  # RAY_TMPDIR names the running head's folder: plain ray.init() attaches
    code, out, err, _ = _run([*RUN, "--out", str(tmp_path / "o")], env)
    assert code == 0, err
    assert "on local Ray" in out and "Traceback" not in err


def test_a_wrong_token_is_one_line_naming_the_settings(head, tmp_path):
    address, env = head
    env = dict(env, RAY_AUTH_TOKEN=uuid.uuid4().hex)
    code, out, err, took = _run([*RUN, "--address", address, "--connect-timeout", "30",
                                 "--out", str(tmp_path / "o")], env)
    assert code == 2, err
    assert "Traceback" not in err
    (line,) = _our_lines(err)
    for fragment in ("--address", "RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                     "refused the authentication token"):
        assert fragment in line, line
    assert took < 30 + 20  # the timeout plus the interpreter's and Ray's imports


def test_an_address_where_nothing_listens_gives_up_within_the_timeout(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    code, out, err, took = _run([*RUN, "--address", address, "--connect-timeout", "3",
                                 "--out", str(tmp_path / "o")], _env(), timeout=120)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err  # one line, nothing else
    (line,) = _our_lines(err)
    for fragment in (address, "nothing answers", "3 s", "--address", "RAY_ADDRESS",
                     "RAY_AUTH_MODE=token"):
        assert fragment in line, line
    assert took < 3 + 20
    assert not (tmp_path / "o" / "rounds.parquet").exists()


def test_ray_address_variable_is_used_like_the_option(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    code, _, err, _ = _run([*RUN, "--connect-timeout", "2", "--out", str(tmp_path / "o")],
                           _env(RAY_ADDRESS=address), timeout=120)
    assert code == 2 and address in _our_lines(err)[0], err


def test_live_workers_example_gives_up_with_one_line(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "live_workers.py"),
                           "--address", address, "--connect-timeout", "2"], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert address in proc.stderr and "RAY_AUTH_MODE" in proc.stderr


def test_an_address_that_is_not_ray_gives_up_with_one_line(tmp_path):
    """Something listens (the TCP probe passes) but never speaks Ray: the connection runs in a
    helper thread that is abandoned at the deadline; Ray's retry logs stay off stderr."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)  # the kernel accepts; nobody answers
        address = f"127.0.0.1:{server.getsockname()[1]}"
        code, _, err, took = _run([*RUN, "--address", address, "--connect-timeout", "4",
                                   "--out", str(tmp_path / "o")], _env(), timeout=120)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "no answer" in err and "gave up after 4 s" in err
    assert took < 4 + 25


def test_ctrl_c_while_waiting_for_the_cluster_exits_130_at_once(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(120)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        cmd = [sys.executable, "-c", "import sys; from librex_alloc.cli import main; "
               "sys.exit(main())", "run", *RUN, "--address", address, "--connect-timeout", "90",
               "--out", str(tmp_path / "o")]
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            server.accept()[0].close()  # the run's probe: it is now waiting for Ray
            time.sleep(1.0)
            t0 = time.monotonic()
            os.killpg(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.strip() == "librex-alloc run: interrupted" and "Traceback" not in err
    assert time.monotonic() - t0 < 20  # not the 90 s timeout
