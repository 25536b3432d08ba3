"""Learning-quality benchmark: does a faster oracle cost any learning?

Two seeded measurements, each a mean with its 95 % Student-t confidence interval over seeds:

- **demo instance**: the simulator's reward / oracle of constrained Thompson sampling on the
  instance of ``librex-alloc demo`` (a synthetic environment, 50 agents, 3 resources, budget
  tightness 0.3, environment seed 0), utilitarian (``fairness="none"``) and proportional; the
  seed of the policy and of the simulator varies over the seeds;
- **Bernoulli bandit**: the pseudo-regret ``Σ_t (μ* − μ_{a_t})`` of constrained TS and CUCB on
  the plain Bernoulli bandit (10 arms, one resource, a budget that fits exactly one arm).

``--compare PATH`` runs the same measurements, in a subprocess, against the ``librex_alloc``
package found under ``PATH`` (for instance a ``git worktree`` of an earlier commit) and prints
both side by side with a verdict: the two intervals overlap or not. This file uses only the
public API that earlier versions already had, so it can measure them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from librex_alloc import cli_args

BANDIT_MEANS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.4, 0.3, 0.2, 0.1)


def _ci(values) -> tuple[float, float]:
    """Mean and 95 % Student-t half-width (as ``runner.mean_ci``, which an earlier checkout
    measured with ``--compare`` may not have)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    h = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(h)


def _demo_ratio(fairness: str, oracle: str, rounds: int, seed: int) -> float:
    from librex_alloc import (
        ConstrainedThompsonSampling,
        FairnessConfig,
        SyntheticEnvironment,
        simulate,
        summarize,
    )

    env = SyntheticEnvironment(n_agents=50, n_resources=3, tightness=0.3, seed=0)
    policy = ConstrainedThompsonSampling(3, fairness=FairnessConfig(mode=fairness),
                                         oracle=oracle, seed=seed)
    df = simulate(policy, env, rounds, seed=seed, metrics_every=rounds)
    return float(summarize(df)["reward_vs_oracle"])


def bandit_regret(policy_name: str, rounds: int, seed: int, means=BANDIT_MEANS,
                  **kwargs) -> float:
    """Pseudo-regret of ``policy_name`` (made by name, the fast oracle) on the Bernoulli
    bandit with arm ``means``: one resource, every arm requests 1 unit, a budget of 1."""
    from librex_alloc import make_policy

    means = np.asarray(means, dtype=np.float64)
    n = len(means)
    p = make_policy(policy_name, n_resources=1, oracle="fast", seed=seed, **kwargs)
    rng = np.random.default_rng(10_000 + seed)
    ids, req, budget = list(range(n)), np.ones((n, 1)), np.ones(1)
    regret = 0.0
    for _ in range(rounds):
        a = p.allocate_batch(ids, req, budget)
        chosen = np.flatnonzero(a.selected)
        if len(chosen) == 0:
            regret += float(means.max())
            continue
        arm = int(chosen[0])
        regret += float(means.max() - means[arm])
        p.observe(a.round, [arm], rewards=[float(rng.random() < means[arm])])
    return regret


def measure(seeds: int, demo_rounds: int, bandit_rounds: int, oracle: str = "fast") -> list:
    """Rows of (measurement, mean, ci95, seeds, seconds)."""
    rows = []
    cases = [
        (f"demo reward/oracle, none, {demo_rounds} rounds",
         lambda s: _demo_ratio("none", oracle, demo_rounds, s)),
        (f"demo reward/oracle, proportional, {demo_rounds} rounds",
         lambda s: _demo_ratio("proportional", oracle, demo_rounds, s)),
        (f"bandit regret, constrained-ts, {bandit_rounds} rounds",
         lambda s: bandit_regret("constrained-ts", bandit_rounds, s)),
        (f"bandit regret, cucb, {bandit_rounds} rounds",
         lambda s: bandit_regret("cucb", bandit_rounds, s)),
    ]
    for name, fn in cases:
        t0 = time.perf_counter()
        values = [fn(s) for s in range(seeds)]
        m, h = _ci(values)
        rows.append({"measurement": name, "mean": m, "ci95": h, "seeds": seeds,
                     "seconds": time.perf_counter() - t0})
    return rows


def _run_elsewhere(path: str, args) -> list:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.abspath(path) + (os.pathsep + env["PYTHONPATH"]
                                                 if env.get("PYTHONPATH") else "")
    job = {"seeds": args.seeds, "demo_rounds": args.demo_rounds,
           "bandit_rounds": args.bandit_rounds, "oracle": args.oracle}
    cmd = [sys.executable, os.path.abspath(__file__), WORKER_FLAG, json.dumps(job)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"the run against {path} failed:\n{res.stderr[-2000:]}")
    reply = json.loads(res.stdout.strip().splitlines()[-1])
    where = os.path.realpath(reply["package"])
    if os.path.commonpath([where, os.path.realpath(path)]) != os.path.realpath(path):
        raise RuntimeError(f"the run against {path} imported librex_alloc from {where}")
    return reply["rows"]


#: First argument of the subprocess that measures another checkout (see :func:`_worker`).
WORKER_FLAG = "--measure-worker"


def _worker(job_json: str) -> int:
    """The measurement in the subprocess of ``--compare``: plain JSON in, JSON out, and only
    the public API that earlier checkouts already had (no import of this checkout's CLI)."""
    import librex_alloc

    job = json.loads(job_json)
    rows = measure(job["seeds"], job["demo_rounds"], job["bandit_rounds"], job["oracle"])
    print(json.dumps({"package": os.path.dirname(os.path.abspath(librex_alloc.__file__)),
                      "rows": rows}))
    return 0


def main(argv=None) -> int:
    from librex_alloc.cli_args import int_at_least, oracle_choices, positive_int

    p = cli_args.ArgumentParser(prog="librex-alloc bench learning", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int_at_least(2), default=10,
                   help="seeds per measurement (>= 2)")
    p.add_argument("--demo-rounds", type=positive_int, default=1000,
                   help="rounds per demo run")
    p.add_argument("--bandit-rounds", type=positive_int, default=2000,
                   help="rounds per bandit run")
    p.add_argument("--oracle", default="fast", choices=oracle_choices(),
                   help="the policies' oracle on the demo instance")
    p.add_argument("--compare", action="append", default=[], metavar="PATH",
                   help="a folder holding another librex_alloc package (repeatable)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON only")
    a = p.parse_args(argv)
    for path in a.compare:
        cli_args.check_checkout(p, path)
    if a.json:
        print(json.dumps(measure(a.seeds, a.demo_rounds, a.bandit_rounds, a.oracle)))
        return 0
    import librex_alloc

    runs = {"this checkout": measure(a.seeds, a.demo_rounds, a.bandit_rounds, a.oracle)}
    for path in a.compare:
        runs[path] = _run_elsewhere(path, a)
    print(f"librex-alloc bench learning: {a.seeds} seeds, oracle '{a.oracle}' "
          f"(this checkout: {os.path.dirname(librex_alloc.__file__)})\n")
    names = [r["measurement"] for r in runs["this checkout"]]
    head = f"{'measurement':<48}" + "".join(f"{k[-28:]:>30}" for k in runs)
    if len(runs) > 1:
        head += f"{'verdict':>12}"
    print(head)
    print("-" * len(head))
    for i, name in enumerate(names):
        cols = [runs[k][i] for k in runs]
        line = f"{name:<48}" + "".join(f"{c['mean']:>19.4f} ± {c['ci95']:<8.4f}" for c in cols)
        if len(cols) > 1:
            lo = max(c["mean"] - c["ci95"] for c in cols)
            hi = min(c["mean"] + c["ci95"] for c in cols)
            line += f"{'overlap' if lo <= hi else 'DIFFER':>12}"
        print(line)
    secs = {k: sum(r["seconds"] for r in v) for k, v in runs.items()}
    print("\nwall seconds: " + ", ".join(f"{k}: {v:.0f}" for k, v in secs.items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:2] == [WORKER_FLAG]:
        raise SystemExit(_worker(sys.argv[2]))
    raise SystemExit(main())
