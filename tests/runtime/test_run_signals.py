"""``librex-alloc run`` and Ctrl-C, for real: the command runs as a subprocess with its own
local Ray, and SIGINT goes to its whole process group at a known point, as a terminal's
Ctrl-C does. It must end with exit code 130, one line and no traceback; in the loop, after
the final snapshot (slow: a local Ray each, ~20 s)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-c", "import sys; from librex_alloc.cli import main; "
           "sys.exit(main())", "run", "--agents", "200", "--shards", "1", "--out", str(out),
           "--no-plot", "--name", f"sig-{os.getpid()}-{out.name}", *extra]
    # a shell's background job (CI may start the suite as one) runs with SIGINT ignored, and a
    # child inherits that: give the command the terminal's default, as a user's shell does
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(proc: subprocess.Popen, predicate, timeout: float = 180.0) -> str:
    """stderr read line by line until ``predicate(line)``; returns what was read."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    seen, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=1.0):
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            seen += line
            if predicate(line):
                return seen
    proc.kill()
    raise AssertionError(f"never reached the point to interrupt; stderr:\n{seen}")


def _interrupt(proc: subprocess.Popen) -> tuple[int, str, str]:
    os.killpg(proc.pid, signal.SIGINT)  # a terminal sends Ctrl-C to the process group
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc.returncode, out, err


def test_ctrl_c_in_the_loop_exits_130_after_the_final_snapshot(tmp_path):
    out = tmp_path / "loop"
    proc = _start(out, "--duration", "60")  # progress: one line per 10 % (6 s)
    before = _wait_for(proc, lambda line: line.startswith("run ") and "%" in line)
    code, stdout, err = _interrupt(proc)
    err = before + err
    assert code == 130, err
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("librex-alloc run:")]
    assert len(ours) == 1 and "interrupted" in ours[0] and "final snapshot" in ours[0], err
    assert "(interrupted)" in stdout
    rounds = pq.read_table(out / "rounds.parquet").column("round").to_pylist()
    assert rounds and rounds == list(range(1, len(rounds) + 1))
    assert any(p.name.startswith("snapshot-") for p in (out / "checkpoint").iterdir())


def test_ctrl_c_during_start_up_exits_130_with_one_line(tmp_path):
    proc = _start(tmp_path / "startup", "--rounds", "100000")
    before = _wait_for(proc, lambda line: "Started a local Ray" in line)  # actors next
    code, stdout, err = _interrupt(proc)
    err = before + err
    assert code == 130, err
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if "librex-alloc" in line]
    assert ours == ["librex-alloc run: interrupted"], err
