"""Peer cross-check: our TS and UCB1 against an established bandit library (MABWiser).

On the plain Bernoulli bandit — one resource, every agent requests 1 unit, a budget of 1 unit,
so exactly one agent (arm) is chosen per round — constrained Thompson sampling is Thompson
sampling with Beta(1, 1) priors and CUCB is UCB1. Both are run through the library's batch
interface (``allocate_batch`` / ``observe``) and compared with MABWiser's
``LearningPolicy.ThompsonSampling()`` and ``LearningPolicy.UCB1(alpha=1)`` on the same arms
and the same seeds. The pseudo-regret ``Σ_t (μ* − μ_{a_t})`` is reported with its mean and 95 %
confidence interval over seeds; the verdict is whether the intervals overlap.

MABWiser is a benchmark-only dependency (``pip install librex-alloc[bench]``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from librex_alloc.evaluation.learning_bench import BANDIT_MEANS, bandit_regret
from librex_alloc.evaluation.runner import mean_ci

#: arm means of the default instance (10 arms, a gap of 0.1 at the top)
DEFAULT_MEANS = BANDIT_MEANS


def have_mabwiser() -> bool:
    try:
        import mabwiser  # noqa: F401
    except ImportError:
        return False
    return True


def _theirs(kind: str, means: np.ndarray, rounds: int, seed: int) -> float:
    from mabwiser.mab import MAB, LearningPolicy

    n = len(means)
    lp = LearningPolicy.ThompsonSampling() if kind == "ts" else LearningPolicy.UCB1(alpha=1.0)
    rng = np.random.default_rng(10_000 + seed)
    arms = list(range(n))
    mab = MAB(arms, lp, seed=seed)
    regret, t = 0.0, 0
    if kind == "ucb1":  # UCB1 starts by playing every arm once (Auer et al. 2002)
        first = [float(rng.random() < m) for m in means]
        mab.fit(arms, first)
        regret, t = float((means.max() - means).sum()), n
    else:
        mab.fit([], [])
    while t < rounds:
        arm = int(mab.predict())
        regret += float(means.max() - means[arm])
        mab.partial_fit([arm], [float(rng.random() < means[arm])])
        t += 1
    return regret


def peer_check(means=DEFAULT_MEANS, rounds: int = 2000, seeds: int = 20) -> pd.DataFrame:
    """One row per (algorithm, implementation): regret mean, CI half-width, seeds."""
    means = np.asarray(means, dtype=np.float64)
    runs = {
        ("Thompson sampling", "librex-alloc constrained-ts"):
            lambda s: bandit_regret("constrained-ts", rounds, s, means),
        ("Thompson sampling", "MABWiser ThompsonSampling"):
            lambda s: _theirs("ts", means, rounds, s),
        ("UCB1", "librex-alloc cucb"): lambda s: bandit_regret("cucb", rounds, s, means),
        ("UCB1", "MABWiser UCB1(alpha=1)"): lambda s: _theirs("ucb1", means, rounds, s),
    }
    rows = []
    for (algo, impl), fn in runs.items():
        if impl.startswith("MABWiser") and not have_mabwiser():
            continue
        values = [fn(s) for s in range(seeds)]
        m, h = mean_ci(values)
        rows.append({"algorithm": algo, "implementation": impl, "regret": m, "ci95": h,
                     "seeds": seeds, "rounds": rounds})
    return pd.DataFrame(rows)


def verdicts(table: pd.DataFrame) -> dict[str, str]:
    """Per algorithm: "agree" if the two confidence intervals overlap, else "differ"."""
    out = {}
    for algo, rows in table.groupby("algorithm"):
        if len(rows) < 2:
            out[algo] = "not compared (MABWiser not installed)"
            continue
        lo = rows["regret"] - rows["ci95"]
        hi = rows["regret"] + rows["ci95"]
        out[algo] = "agree" if lo.max() <= hi.min() else "differ"
    return out
