"""A job owns its output: a second job on a held folder or coordinator name fails at once with
one line naming the running job (exit 2) and touches nothing of the first; --resume needs a
saved run of the same configuration; a resume adds a part to rounds.parquet."""

from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow.parquet as pq
import pytest

from coordinator.actor import admin_credential
from coordinator.cli import main
from coordinator.errors import JobError
from coordinator.job import LOCK_FILE, OWNER_FILE, run_job

SMALL = dict(agents=200, shards=1, progress=False, plot=False, stream=io.StringIO())
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tree(folder) -> dict:
    """Every file's bytes under ``folder`` (the empty lock files a job leaves are left out:
    a lock file is never deleted, or two processes could lock two different files)."""
    out = {}
    for root, dirs, names in os.walk(folder):
        for n in dirs + [m for m in names if m != LOCK_FILE]:
            p = os.path.join(root, n)
            data = b"" if os.path.isdir(p) else open(p, "rb").read()
            out[os.path.relpath(p, folder)] = data
    return out


# ----------------------------------------------------------------------------- no Ray needed
def test_a_folder_held_by_another_process_is_refused_naming_it(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "journal-00000000.log").write_bytes(b"precious")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from coordinator.job import FolderLock
            lock = FolderLock(Path({str(out)!r}), {{"job": "first", "pid": 4242,
                              "host": "h1", "started": "t0", "out": {str(out)!r}}})
            lock.acquire()
            print("held", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _tree(out)
        with pytest.raises(JobError) as err:
            run_job(out=out, rounds=5, **SMALL)
        msg = str(err.value)
        assert "\n" not in msg and "'first'" in msg and "pid 4242" in msg and "h1" in msg
        assert _tree(out) == before  # not one byte changed, nothing created
        # the command line: one line on stderr, exit 2 (the resume is refused the same way)
        for extra in ([], ["--resume"]):
            assert main(["--out", str(out), "--rounds", "5", "--no-progress", *extra]) == 2
            err_lines = capsys.readouterr().err.strip().splitlines()
            assert len(err_lines) == 1 and "'first'" in err_lines[0], err_lines
        assert _tree(out) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_stale_owner_file_is_no_obstacle(tmp_path):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    stale = {"job": "dead", "pid": 999999, "host": "gone", "started": "t0", "out": str(out)}
    (out / OWNER_FILE).write_text(json.dumps(stale))
    (out / LOCK_FILE).touch()
    with pytest.raises(JobError, match="nothing to resume"):  # past the lock: not "in use"
        run_job(out=out, rounds=5, resume=True, **SMALL)


def test_resume_needs_a_saved_run(tmp_path, capsys):
    missing = tmp_path / "missing"
    with pytest.raises(JobError, match="does not exist"):
        run_job(out=missing, rounds=5, resume=True, **SMALL)
    assert not missing.exists()  # nothing created
    assert main(["--out", str(missing), "--resume", "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err and not missing.exists()
    empty = tmp_path / "empty"
    (empty / "checkpoint").mkdir(parents=True)
    with pytest.raises(JobError, match="holds no saved run"):
        run_job(out=empty, rounds=5, resume=True, **SMALL)
    assert sorted(os.listdir(empty)) == ["checkpoint"]  # lock and owner files gone again
    assert main(["--out", str(empty), "--resume", "--no-progress"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(JobError, match="--resume"):
        run_job(out=empty, rounds=5, accept_loss=True, **SMALL)


def _saved_run(ckpt, fairness="none", snapshot=True):
    """A checkpoint written by an in-process coordinator of a run_job-like configuration."""
    from coordinator import Coordinator, CoordinatorConfig
    from librex_alloc import PolicyConfig, SyntheticEnvironment

    env = SyntheticEnvironment(n_agents=200, n_resources=3, tightness=0.3, seed=0)
    cfg = CoordinatorConfig(PolicyConfig(3, fairness=fairness, oracle="fast", seed=0,
                                         max_pending_rounds=50), env.budget,
                            str(ckpt.resolve()), fairness_every=10)
    coord = Coordinator(cfg)
    if snapshot:
        coord.snapshot()
        coord.close()
    else:
        coord.abandon()  # a crash before the first snapshot: the journal alone
    return cfg


def test_resume_with_another_configuration_is_one_line_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    _saved_run(out / "checkpoint", fairness="none")
    before = _tree(out)
    with pytest.raises(JobError) as err:
        run_job(out=out, rounds=5, resume=True, fairness="proportional", **SMALL)
    assert "another configuration" in str(err.value) and "policy.fairness" in str(err.value)
    assert _tree(out) == before
    assert main(["--out", str(out), "--resume", "--fairness", "proportional",
                 "--agents", "200", "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "another configuration" in line


def test_resume_from_an_unreadable_or_damaged_checkpoint_is_refused(tmp_path):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "snapshot-00000003.parquet").write_bytes(b"not parquet")
    with pytest.raises(JobError, match="cannot be read"):
        run_job(out=out, rounds=5, resume=True, agents=200, shards=1, progress=False)
    # a journal-only checkpoint (no snapshot yet) records its configuration too
    other = tmp_path / "other"
    from coordinator.core import Coordinator

    cfg = _saved_run(other / "checkpoint", fairness="none", snapshot=False)
    assert os.listdir(other / "checkpoint") != []
    with pytest.raises(JobError, match="another configuration"):
        run_job(out=other, rounds=5, resume=True, fairness="proportional", **SMALL)
    # a damaged record in the middle of the journal: refused, pointing at --accept-loss
    Coordinator(cfg).abandon()  # one more record after the first
    journal = sorted(glob.glob(str(other / "checkpoint" / "journal-*.log")))[0]
    data = bytearray(open(journal, "rb").read())
    data[20] ^= 0x01  # inside the first record: the records after it are at stake
    open(journal, "wb").write(bytes(data))
    with pytest.raises(JobError, match="accept-loss") as err:
        run_job(out=other, rounds=5, resume=True, fairness="none", **SMALL)
    assert journal in str(err.value) and "byte 0" in str(err.value)


# ----------------------------------------------------------------------------- on Ray
@pytest.mark.slow
def test_a_second_job_touches_nothing_of_the_running_one(ray_session, tmp_path):
    ray = ray_session
    out = tmp_path / "first"
    result = {}

    def first():
        result["job"] = run_job(out=out, rounds=None, name="owner-first",
                                checkpoint_every=100_000, **dict(SMALL, stream=io.StringIO()))

    thread = threading.Thread(target=first, daemon=True)
    thread.start()
    end = time.monotonic() + 120
    coord = None
    while time.monotonic() < end:
        try:
            coord = ray.get_actor("owner-first-coordinator", namespace="librex-alloc")
            if ray.get(coord.status.remote())["round"] >= 5:
                break
        except ValueError:
            pass
        time.sleep(0.2)
    assert coord is not None
    before = _tree(out)
    # the same output folder, the same checkpoint folder, the same coordinator name
    for kw in (dict(out=out), dict(out=tmp_path / "second", checkpoint_dir=out / "checkpoint"),
               dict(out=tmp_path / "third", name="owner-first")):
        kw.setdefault("name", "owner-second")
        t0 = time.monotonic()
        with pytest.raises(JobError) as err:
            run_job(rounds=5, **kw, **SMALL)
        assert "'owner-first'" in str(err.value) and "\n" not in str(err.value)
        assert time.monotonic() - t0 < 30  # at once, not after a lock timeout
    after = _tree(out)
    assert any(".inprogress" in k for k in before)  # the part being written is checked too
    for name, data in before.items():  # the journal and the parquet part only grew
        assert after[name][:len(data)] == data, name
    ray.get(coord.stop.remote(admin=admin_credential(out / "checkpoint")))
    thread.join(timeout=120)
    job = result["job"]
    rounds = pq.read_table(job.parquet).column("round").to_pylist()
    assert rounds == list(range(1, len(rounds) + 1)) and len(rounds) >= 5
    assert job.summary["counters"]["restarts"] == 0
    assert job.summary["counters"]["outcomes_applied"] == sum(
        pq.read_table(job.parquet).column("n_allocated").to_pylist())
    assert not os.path.exists(out / OWNER_FILE)  # released


@pytest.mark.slow
def test_resume_appends_a_part_and_summarizes_the_whole_run(ray_session, tmp_path):
    out = tmp_path / "run"
    first = run_job(out=out, rounds=12, name="owner-resume", checkpoint_every=5, **SMALL)
    (part1,) = glob.glob(str(out / "rounds.parquet" / "part-*.parquet"))
    saved = open(part1, "rb").read()
    res = run_job(out=out, rounds=4, resume=True, name="owner-resume", checkpoint_every=5,
                  **SMALL)
    assert open(part1, "rb").read() == saved  # never rewritten
    assert len(glob.glob(str(out / "rounds.parquet" / "part-*.parquet"))) == 2
    import pandas as pd

    assert pq.read_table(res.parquet).column("round").to_pylist() == list(range(1, 17))
    assert pd.read_parquet(res.parquet)["round"].tolist() == list(range(1, 17))
    assert res.summary["rounds"] == 16 and res.summary["rounds_this_part"] == 4
    assert res.summary["reward"] > first.summary["reward"]
    assert "16 in 2 parts" in res.table and "resumed after round 12" in res.table
