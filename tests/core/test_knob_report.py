"""The knob's report in `bench paper`: promised vs kept, criterion 2 from the knob and from α,
where the knob's curve lies against α's (tables computed from per-cell summaries)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from librex_alloc.cli import main
from librex_alloc.evaluation import paper

FAM = "fam"


def _summary(points: dict[str, tuple[float, float]], seeds: int = 6, noise: float = 0.002
             ) -> pd.DataFrame:
    """Per-cell summaries: label → (reward kept, Gini cut) relative to "TS" (reward 100,
    Gini 0.5), with a little per-seed noise."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        rows.append({"label": f"{FAM}|TS", "seed": seed, "expected_reward": 100.0,
                     "gini_service": 0.5})
        for label, (kept, cut) in points.items():
            rows.append({"label": f"{FAM}|{label}", "seed": seed,
                         "expected_reward": 100.0 * (kept + noise * rng.standard_normal()),
                         "gini_service": 0.5 * (1 - cut + noise * rng.standard_normal())})
    return pd.DataFrame(rows)


POINTS = {"TS α=1, ε=0.05": (0.97, 0.20), "TS α=1, ε=0.1": (0.93, 0.36),
          "TS α=1, ε=0.2": (0.84, 0.50), "TS α=1, ε=0.3": (0.75, 0.60),
          "TS α=0.1": (0.96, 0.15), "TS α=0.25": (0.91, 0.25), "TS α=0.5": (0.82, 0.45),
          "TS α=1 (proportional)": (0.68, 0.70)}


@pytest.mark.parametrize("m,h,verdict", [(0.92, 0.01, "kept"), (0.905, 0.01,
                                         "kept (within the interval)"), (0.88, 0.01, "broken"),
                                         (0.90, float("nan"), "kept"),
                                         (float("nan"), 0.0, "n/a")])
def test_kept_verdict(m, h, verdict):
    assert paper.kept_verdict(m, h, 0.9) == verdict


def test_promised_table_pairs_by_seed_and_gives_verdicts():
    t = paper.promised_table(_summary(POINTS), [FAM], {FAM: 1000})
    assert list(t["ε"]) == list(paper.KNOB_EPS)
    row = t[t["ε"] == 0.1].iloc[0]
    assert row["promised"] == "≥ 0.90" and row["kept"].startswith("0.93")
    assert row["verdict"] == "kept" and row["seeds"] == 6 and row["T"] == 1000
    assert t[t["ε"] == 0.05].iloc[0]["verdict"] == "kept"
    assert t[t["ε"] == 0.2].iloc[0]["verdict"] == "kept"
    bad = dict(POINTS, **{"TS α=1, ε=0.2": (0.70, 0.5)})
    assert paper.promised_table(_summary(bad), [FAM], {FAM: 1000}).iloc[2]["verdict"] == \
        "broken"


def test_criterion2_takes_the_largest_gini_cut_that_keeps_90_percent_on_each_curve():
    t = paper.criterion2_table(_summary(POINTS), [FAM]).set_index("from")
    assert t.loc["knob", "best setting"] == "TS α=1, ε=0.1"  # 0.93 kept, −36 %
    assert t.loc["knob", "verdict (−30 %)"] == "met"
    assert t.loc["α", "best setting"] == "TS α=0.25"  # 0.91 kept, −25 %
    assert t.loc["α", "verdict (−30 %)"] == "not met"


def test_no_setting_qualifies_when_none_keeps_90_percent():
    low = {k: (0.85, c) for k, (_, c) in POINTS.items()}
    t = paper.criterion2_table(_summary(low), [FAM])
    assert set(t["best setting"]) == {"none qualifies"}


def test_the_knob_is_compared_with_alphas_curve_at_the_same_gini_cut():
    t = paper.knob_vs_alpha(_summary(POINTS, noise=0.0), [FAM]).set_index("knob")
    # at a 36 % cut, α's curve runs between α=0.25 (25 %, 0.91) and α=0.5 (45 %, 0.82)
    assert float(t.loc["TS α=1, ε=0.1", "α's curve kept there"]) == \
        pytest.approx(0.91 - 0.09 * 11 / 20, abs=1e-3)
    assert t.loc["TS α=1, ε=0.1", "knob − α"].startswith("+")
    # the missing α points are skipped, not read as zeros
    partial = {k: v for k, v in POINTS.items() if k != "TS α=0.5"}
    t2 = paper.knob_vs_alpha(_summary(partial, noise=0.0), [FAM]).set_index("knob")
    assert float(t2.loc["TS α=1, ε=0.1", "α's curve kept there"]) == \
        pytest.approx(0.91 - 0.23 * 11 / 45, abs=1e-3)


@pytest.mark.slow
def test_quick_knob_run_writes_its_report_and_resumes(tmp_path, monkeypatch):
    data = Path(__file__).parents[1] / "data"
    (tmp_path / "data" / "orlib_mknap").mkdir(parents=True)
    shutil.copy(data / "mknap1.txt", tmp_path / "data" / "orlib_mknap" / "mknap1.txt")
    shutil.copytree(data / "alibaba_gpu_v2023_excerpt", tmp_path / "data" / "alibaba_gpu_v2023")
    monkeypatch.setenv("LIBREX_DATA", str(tmp_path / "data"))
    out = tmp_path / "knob"
    argv = ["bench", "paper", "--quick", "--knob", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    text = (out / "KNOB.md").read_text()
    for heading in ("promised vs kept", "Criterion 2 from the knob and from α",
                    "Where the knob's curve lies against α's", "The knob's cost per round"):
        assert heading in text
    assert text.count("| ≥ 0.") == len(paper.KNOB_EPS) * (len(paper.families(paper.QUICK)) + 2)
    assert (out / "knob_frontier.png").stat().st_size > 10_000
    cells = sorted((out / "criteria" / "cells").iterdir())
    stamps = [p.stat().st_mtime_ns for p in cells]
    assert main(argv) == 0
    assert [p.stat().st_mtime_ns for p in cells] == stamps


def test_alphas_points_are_compared_with_the_knobs_curve():
    t = paper.knob_vs_alpha(_summary(POINTS, noise=0.0), [FAM], points="α").set_index("α")
    # at α=0.25's 25 % cut the knob's curve runs between ε=0.05 (20 %, 0.97) and ε=0.1
    assert float(t.loc["TS α=0.25", "knob's curve kept there"]) == \
        pytest.approx(0.97 - 0.04 * 5 / 16, abs=1e-3)
    assert t.loc["TS α=0.25", "knob − α"] == f"{0.97 - 0.04 * 5 / 16 - 0.91:+.3f}"
