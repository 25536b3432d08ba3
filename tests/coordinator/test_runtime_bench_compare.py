"""``python -m coordinator.bench --compare PATH``: two checkouts' own benchmarks, alternating,
tabulated side by side."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coordinator import bench

ROOT = Path(__file__).resolve().parents[2]


def _result(agents, shards, rps, solve):
    return {"agents": agents, "design": f"{shards} shard{'s' if shards > 1 else ''}",
            "rounds": 10, "rounds_per_s": rps, "tail_rounds_per_s": rps, "round_ms": 1e3 / rps,
            "submit": 0.01, "solve": solve, "commit": 0.5, "push": 2.25, "report": 1.0,
            "metrics": 0.2, "snapshot_ms": np.nan, "checkpoint_every": 100, "setup_s": 1.0}


def test_parse_table_reads_back_what_table_prints():
    text = bench.table([_result(10_000, 1, 73.9, 7.1), _result(1_000, 4, 51.25, 3.2)])
    rows = bench.parse_table("Machine: ...\n\n" + text + "\n\nCoordinator memory ...\n"
                             "| round | RSS MiB | elapsed s |\n|---|---|---|\n| 1,000 | 80 | 3 |")
    assert set(rows) == {(10_000, "1 shard"), (1_000, "4 shards")}
    assert rows[(10_000, "1 shard")] == {"rounds/s": 73.9, "round ms": 13.5, "solve": 7.1,
                                         "push": 2.2}
    assert rows[(1_000, "4 shards")]["rounds/s"] == 51.2  # as printed: one decimal


def test_compare_needs_a_checkout_with_the_benchmark(tmp_path, capsys):
    (tmp_path / "librex_alloc").mkdir()
    (tmp_path / "librex_alloc" / "__init__.py").write_text("")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--compare", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--compare" in err[0] and "coordinator" in err[0]
    with pytest.raises(SystemExit):
        bench.main(["--compare", str(tmp_path / "missing")])
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--compare", str(ROOT), "--repeat", "0"])
    assert "--repeat" in capsys.readouterr().err


def test_a_child_that_imports_from_elsewhere_is_refused(tmp_path):
    """A folder whose packages are shadowed (here: an empty copy that imports this checkout's
    modules through an installed path) must not be measured in its place."""
    for pkg in ("librex_alloc", "coordinator"):
        (tmp_path / pkg).mkdir()
    (tmp_path / "coordinator" / "bench.py").write_text("")
    # no __init__.py: `import coordinator` finds a namespace package (no __file__) or the
    # installed one; either way the child refuses to run
    with pytest.raises(RuntimeError, match="not imported from"):
        bench._run_checkout(str(tmp_path), ["--sizes", "10"])


@pytest.mark.slow
def test_compare_this_checkout_with_itself():
    proc = subprocess.run([sys.executable, "-m", "coordinator.bench", "--sizes", "60",
                           "--shards", "1", "--rounds", "4", "--compare", str(ROOT),
                           "--repeat", "2"], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("| 60 | 1 shard |")]
    assert [ln.split("|")[3].strip() for ln in lines] == ["rounds/s", "round ms", "solve",
                                                          "push"]
    for ln in lines:
        ratio = float(ln.rstrip(" |").rsplit("|", 1)[1])
        assert ratio > 0
    assert proc.stderr.count("done") == 4  # 2 runs of each, alternating
