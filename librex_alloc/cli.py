"""Command line: ``librex-alloc demo`` and ``librex-alloc bench oracle``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from librex_alloc.environments import SyntheticEnvironment
    from librex_alloc.fairness import FairnessConfig
    from librex_alloc.policies import ConstrainedThompsonSampling
    from librex_alloc.simulation import simulate, summarize

    env = SyntheticEnvironment(n_agents=args.agents, n_resources=args.resources,
                               tightness=args.tightness, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"librex-alloc demo: {args.agents} agents, {args.resources} resources, "
          f"{args.rounds} rounds, budget tightness {args.tightness}, oracle '{args.oracle}', "
          f"seed {args.seed} (in-process simulation)\n")
    modes = [args.fairness] if args.fairness == "none" else ["none", args.fairness]
    frames, rows = {}, []
    for mode in modes:
        policy = ConstrainedThompsonSampling(
            args.resources, fairness=FairnessConfig(mode=mode), oracle=args.oracle,
            seed=args.seed)
        t0 = time.perf_counter()
        df = simulate(policy, env, args.rounds, seed=args.seed, metrics_every=10)
        wall = time.perf_counter() - t0
        frames[mode] = df
        s = summarize(df)
        df.to_csv(out / f"rounds_{mode}.csv", index=False)
        _, served = policy.utilities("service")
        s["served_min"], s["served_max"] = served.min() / args.rounds, served.max() / args.rounds
        rows.append((mode, s, wall))
    header = (f"{'fairness':<14}{'reward':>10}{'oracle':>10}{'vs oracle':>11}{'Gini(rew)':>11}"
              f"{'Jain(rew)':>11}{'Jain(serv)':>12}{'served min-max':>16}{'utilization':>18}"
              f"{'solve ms':>10}"
              f"{'wall s':>8}")
    print(header)
    print("-" * len(header))
    for mode, s, wall in rows:
        util = "/".join(f"{u:.2f}" for u in s["utilization"])
        print(f"{mode:<14}{s['expected_reward']:>10.1f}{s['oracle_reward']:>10.1f}"
              f"{s['reward_vs_oracle']:>10.1%} {s['gini_reward']:>10.3f}{s['jain_reward']:>11.3f}"
              f"{s['jain_service']:>12.3f}"
              f"{s['served_min']:>9.1%}-{s['served_max']:<6.1%}{util:>18}"
              f"{s['median_solve_ms']:>10.2f}{wall:>8.1f}")
    proved = min(s["oracle_proved"] for _, s, _ in rows)
    print("\nreward: expected reward of the chosen allocations; oracle: the utilitarian oracle "
          f"with the true means\n(method 'auto', proved optimal in {proved:.0%} of rounds), so "
          "'vs oracle' under a fairness rule includes the price of fairness.\nGini/Jain on each "
          "agent's cumulative realized reward (rew) and rounds served (serv);\nserved min-max: the "
          "least and most served agent's share of rounds.")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for mode, df in frames.items():
        axes[0].plot(df["round"], df["cum_regret"], label=mode)
        g = df[["round", "jain_reward"]].dropna()
        axes[1].plot(g["round"], g["jain_reward"], label=mode)
    axes[0].set(title="cumulative regret vs utilitarian oracle", xlabel="round")
    axes[1].set(title="Jain index of cumulative reward", xlabel="round", ylim=(0, 1.02))
    width = 0.8 / len(frames)
    for j, (mode, df) in enumerate(frames.items()):
        util_cols = [c for c in df.columns if c.startswith("utilization_")]
        axes[2].bar(np.arange(len(util_cols)) + j * width, df[util_cols].mean().to_numpy(),
                    width=width, label=mode)
    axes[2].set(title="mean budget utilization per resource", xlabel="resource",
                ylim=(0, 1.05), xticks=np.arange(args.resources) + 0.4 - width / 2,
                xticklabels=[str(j) for j in range(args.resources)])
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png = out / "demo.png"
    fig.savefig(png, dpi=110)
    print(f"\nplot: {png}\nper-round metrics: {out}/rounds_*.csv")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="librex-alloc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the demo simulation and write a plot")
    d.add_argument("--agents", type=int, default=50)
    d.add_argument("--resources", type=int, default=3)
    d.add_argument("--rounds", type=int, default=2000)
    d.add_argument("--tightness", type=float, default=0.3)
    d.add_argument("--fairness", default="proportional")
    d.add_argument("--oracle", default="fast", choices=("fast", "auto", "exact"))
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="out/demo")
    b = sub.add_parser("bench", help="benchmarks")
    b.add_argument("which", choices=("oracle",))
    b.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    from librex_alloc import bench

    return int(bench.main(args.rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
