"""`librex-alloc bench paper --quick`: a smoke test of the evaluation's report structure (the
numbers of a quick run are not meaningful; RESULTS.md holds the full run's)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from librex_alloc.cli import main


@pytest.mark.slow
def test_quick_evaluation_writes_the_report_and_resumes(tmp_path, capsys, monkeypatch):
    # the committed excerpts stand in for ../shared/data (absent on a clean CI machine)
    data = Path(__file__).parents[1] / "data"
    (tmp_path / "data" / "orlib_mknap").mkdir(parents=True)
    shutil.copy(data / "mknap1.txt", tmp_path / "data" / "orlib_mknap" / "mknap1.txt")
    shutil.copytree(data / "alibaba_gpu_v2023_excerpt", tmp_path / "data" / "alibaba_gpu_v2023")
    monkeypatch.setenv("LIBREX_DATA", str(tmp_path / "data"))
    out = tmp_path / "paper"
    assert main(["bench", "paper", "--quick", "--out", str(out), "--no-progress"]) == 0
    text = (out / "RESULTS.md").read_text()
    for heading in ("## 1. The five success criteria", "## 2. Regret and reward / oracle",
                    "## 3. Reward–fairness frontier", "## 4. Horizon budget",
                    "## 5. Peer cross-check"):
        assert heading in text
    for n in range(1, 6):  # every criterion has a verdict in every family
        rows = [ln for ln in text.splitlines() if re.match(rf"\| [\w-]+ \| {n}\. ", ln)]
        assert len(rows) >= 3 and all(ln.rstrip(" |").endswith(("met", "not met"))
                                      for ln in rows), n
    for png in ("regret_log_grid.png", "pareto_frontier.png", "horizon_budget.png"):
        assert (out / png).stat().st_size > 10_000
    assert "design: maxmin" in text and "budget mode" in text
    cells = sorted((out / "criteria" / "cells").iterdir())
    stamps = [p.stat().st_mtime_ns for p in cells]
    assert main(["bench", "paper", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert [p.stat().st_mtime_ns for p in cells] == stamps  # finished cells are reused
