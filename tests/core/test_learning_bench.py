"""The learning-quality benchmark (``librex-alloc bench learning``) at a tiny size: its table,
its seeded reproducibility, and the side-by-side run against another checkout."""

import re
from pathlib import Path

from librex_alloc.cli import main as cli_main
from librex_alloc.evaluation import learning_bench

REPO = Path(__file__).resolve().parents[2]


def test_measure_is_seeded_and_sane():
    a = learning_bench.measure(seeds=2, demo_rounds=6, bandit_rounds=30)
    b = learning_bench.measure(seeds=2, demo_rounds=6, bandit_rounds=30)
    assert [r["measurement"] for r in a] == [r["measurement"] for r in b]
    assert [r["mean"] for r in a] == [r["mean"] for r in b]
    demo = [r for r in a if r["measurement"].startswith("demo")]
    bandit = [r for r in a if r["measurement"].startswith("bandit")]
    assert len(demo) == 2 and len(bandit) == 2
    for r in demo:
        assert 0.0 < r["mean"] <= 1.0 + 1e-9
    for r in bandit:  # 30 rounds, gaps of at most 0.8: regret in [0, 24]
        assert 0.0 <= r["mean"] <= 24.0


def test_compare_against_a_checkout_prints_both_columns(capsys):
    code = cli_main(["bench", "learning", "--seeds", "2", "--demo-rounds", "4",
                     "--bandit-rounds", "20", "--compare", str(REPO)])
    assert code == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith(("demo", "bandit"))]
    assert len(lines) == 4
    assert str(REPO)[-28:] in out  # the compared checkout's column
    for ln in lines:  # the same code in another process, same seeds: the same numbers
        pairs = re.findall(r"(-?\d+\.\d+) ± (\S+)", ln)
        assert len(pairs) == 2 and pairs[0] == pairs[1], ln
        assert ln.rstrip().endswith("overlap")
