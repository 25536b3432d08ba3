"""Command line of librex-alloc: ``librex-alloc demo``, ``librex-alloc bench WHICH`` and the
commands of installed plug-ins (``librex-alloc run``: the Ray runtime of ``coordinator``).

Plug-ins are entry points of the group ``librex_alloc.commands``: each names a function
``register(subparsers) -> (parser, handler)`` where ``handler(args, parser)`` returns the exit
code. The core names no plug-in, so it never imports Ray; a plug-in that fails to import is
left out of the command list (its error is shown when it is asked for by name).

Bad option values are usage errors (exit code 2, a one-line message on stderr, no traceback);
long runs report progress on stderr (``--no-progress`` turns it off).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from librex_alloc import __version__, cli_args
from librex_alloc.cli_args import (  # noqa: F401  (re-exported: the types used to live here)
    FAIRNESS_PRESETS,
    HelpFormatter,
    add_policy_options,
    agents,
    fairness,
    fairness_label,
    finite_nonneg_float,
    finite_positive_float,
    max_reward_loss,
    nonneg_int,
    oracle_choices,
    policy_config_file,
    positive_int,
    positive_int_list,
    prepare_out_dir,
    resolve_policy_config,
    resources,
    seed,
    tightness,
)
from librex_alloc.errors import LibrexError


def _mode_label(config) -> str:
    """Table label of a fairness configuration: the preset or ``alpha=<α>``, plus the
    reward-loss bound when one is set."""
    f = config.fairness
    label = fairness_label(f.mode if f.mode != "alpha" else f.alpha)
    if f.max_reward_loss is not None:
        label += f",loss={f.max_reward_loss:g}"
    return label


# --------------------------------------------------------------------------- demo
def _demo(args, out: Path, config) -> int:
    """The demo with the resolved :class:`PolicyConfig` ``config`` (its fairness is compared
    with the utilitarian rule on the same configuration)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from librex_alloc.environments import SyntheticEnvironment
    from librex_alloc.fairness import FairnessConfig
    from librex_alloc.policies import ConstrainedThompsonSampling
    from librex_alloc.progress import Progress
    from librex_alloc.round_step import write_rounds
    from librex_alloc.simulation import simulate, summarize

    k = config.n_resources
    env_seed = args.seed if args.seed is not None else DEMO_DEFAULTS["seed"]
    env = SyntheticEnvironment(n_agents=args.agents, n_resources=k,
                               tightness=args.tightness, seed=env_seed)
    print(f"librex-alloc demo: {args.agents} agents, {k} resources, "
          f"{args.rounds} rounds, budget tightness {args.tightness}, oracle '{config.oracle}', "
          f"seed {config.seed} (in-process simulation)\n", flush=True)
    utilitarian = config.replace(fairness=FairnessConfig())
    configs = [config] if config == utilitarian else [utilitarian, config]
    frames, rows = {}, []
    bar = Progress(len(configs) * args.rounds, "demo", unit="rounds",
                   enabled=not args.no_progress)
    with bar:
        for j, cfg in enumerate(configs):
            label = _mode_label(cfg)
            policy = ConstrainedThompsonSampling.from_config(cfg)
            offset = j * args.rounds
            t0 = time.perf_counter()
            df = simulate(policy, env, args.rounds, seed=env_seed, metrics_every=10,
                          progress=lambda done, offset=offset: bar.update(offset + done))
            wall = time.perf_counter() - t0
            frames[label] = df
            s = summarize(df)
            write_rounds(df, out / f"rounds_{label.replace('=', '').replace(',', '_')}.parquet",
                         config={"command": "demo", "policy": cfg.to_dict(),
                                 "environment": {"synthetic": {
                                     "n_agents": args.agents, "n_resources": k,
                                     "tightness": args.tightness, "seed": env_seed}},
                                 "rounds": args.rounds, "seed": env_seed, "metrics_every": 10})
            _, served = policy.utilities("service")
            s["served_min"] = served.min() / args.rounds
            s["served_max"] = served.max() / args.rounds
            rows.append((label, s, wall))
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
                ylim=(0, 1.05), xticks=np.arange(k) + 0.4 - width / 2,
                xticklabels=[str(j) for j in range(k)])
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png = out / "demo.png"
    fig.savefig(png, dpi=110)
    print(f"\nplot: {png}\nper-round metrics: {out}/rounds_*.parquet")
    return 0


#: PolicyConfig values of ``demo`` when neither a flag nor ``--policy-config`` sets them.
DEMO_DEFAULTS = {"n_resources": 3, "fairness": {"mode": "proportional"}, "oracle": "fast",
                 "seed": 0}


def _demo_parser(sub) -> argparse.ArgumentParser:
    d = sub.add_parser("demo", help="run the demo simulation and write a plot",
                       description="In-process simulation: utilitarian vs a fairness rule on a "
                       "synthetic environment; prints a summary, writes CSVs and a plot.",
                       formatter_class=HelpFormatter)
    d.add_argument("--agents", type=agents, default=50, help="number of agents (>= 1)")
    d.add_argument("--rounds", type=positive_int, default=2000,
                   help="rounds per policy (>= 1)")
    d.add_argument("--tightness", type=tightness, default=0.3,
                   help="budget as a fraction of the total request (finite, >= 0)")
    add_policy_options(d, DEMO_DEFAULTS)
    d.add_argument("--out", default="out/demo",
                   help="output folder for CSVs and demo.png (created if missing)")
    d.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    return d


PLUGIN_GROUP = "librex_alloc.commands"


def _plugins() -> list:
    """The installed command plug-ins (entry points of :data:`PLUGIN_GROUP`), by name."""
    from importlib.metadata import entry_points

    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)


#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Exit code when the reader of stdout went away (128 + SIGPIPE, as ``yes | head`` reports).
EXIT_BROKEN_PIPE = 141


def main(argv=None) -> int:
    """Entry point of ``librex-alloc``; returns the exit code: 0, 2 for a usage error (one
    line on stderr), 130 after Ctrl-C (one line, no traceback), 141 when stdout's reader went
    away (``librex-alloc bench learning --json | head``: quiet)."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler
        return code
    except BrokenPipeError:
        # Python's recipe: point stdout at devnull so the interpreter's own flush at exit
        # cannot raise again (https://docs.python.org/3/library/signal.html#note-on-sigpipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("\nlibrex-alloc: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def _main(argv=None) -> int:
    parser = cli_args.ArgumentParser(
        prog="librex-alloc", formatter_class=HelpFormatter,
        description="Constrained Thompson sampling for multi-agent resource allocation: "
        "'demo' runs an in-process simulation, 'bench oracle' the oracle benchmark.")
    parser.add_argument("--version", action="version", version=f"librex-alloc {__version__}")
    plugins = _plugins()
    names = ",".join(["demo", "bench", *(ep.name for ep in plugins)])
    sub = parser.add_subparsers(dest="command", required=True, metavar=f"{{{names}}}")
    demo = _demo_parser(sub)
    handlers = {}
    for ep in plugins:
        try:
            register = ep.load()
        except Exception as exc:  # a broken plug-in must not break the core's commands
            broken = sub.add_parser(ep.name, help=f"(unavailable: {exc})")
            handlers[ep.name] = (broken, exc)
            continue
        handlers[ep.name] = register(sub)
    b = sub.add_parser("bench", help="benchmarks: 'bench oracle --help' lists the options",
                       description="Benchmarks: 'oracle' (the per-round oracles), 'round' (a "
                       "whole round through the original and the batch API), 'paper' (the "
                       "original design's claims measured: RESULTS.md), 'learning' "
                       "(reward/oracle and bandit regret over seeds, optionally beside another "
                       "checkout). 'librex-alloc bench WHICH --help' lists a benchmark's options.",
                       formatter_class=HelpFormatter)
    b.add_argument("which", choices=("oracle", "round", "paper", "learning"),
                   help="which benchmark")
    b.add_argument("rest", nargs=argparse.REMAINDER,
                   help="options of the benchmark (see 'bench WHICH --help')")
    args = parser.parse_args(argv)
    if args.command in handlers:
        p, handler = handlers[args.command]
        if isinstance(handler, Exception):
            p.error(f"the {args.command!r} command could not be loaded: {handler}")
        return int(handler(args, p) or 0)
    if args.command == "demo":
        config = resolve_policy_config(demo, args, DEMO_DEFAULTS)
        try:  # the policy checks its own parameters (config.params) before any work
            from librex_alloc.policies import ConstrainedThompsonSampling

            ConstrainedThompsonSampling.from_config(config)
        except LibrexError as exc:
            demo.error(f"policy configuration: {exc}")
        out = prepare_out_dir(demo, args.out)
        try:
            return _demo(args, out, config)
        except LibrexError as exc:  # a value the type checks above let through
            demo.error(str(exc))
    if args.which == "paper":
        from librex_alloc.evaluation import paper

        return int(paper.main(args.rest) or 0)
    if args.which == "learning":
        from librex_alloc.evaluation import learning_bench

        return int(learning_bench.main(args.rest) or 0)
    if args.which == "round":
        from librex_alloc.evaluation import round_bench

        return int(round_bench.main(args.rest) or 0)
    from librex_alloc.evaluation import oracle_bench

    return int(oracle_bench.main(args.rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
