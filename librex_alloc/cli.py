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
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from librex_alloc import __version__
from librex_alloc.errors import LibrexError
from librex_alloc.fairness import MAX_ALPHA  # largest α the library accepts

FAIRNESS_PRESETS = ("none", "proportional", "maxmin")


# --------------------------------------------------------------------------- argparse types
def positive_int(text: str) -> int:
    """An integer ≥ 1 (argparse ``type=``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def nonneg_int(text: str) -> int:
    """An integer ≥ 0 (argparse ``type=``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def finite_nonneg_float(text: str) -> float:
    """A finite number ≥ 0 (argparse ``type=``)."""
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def finite_positive_float(text: str) -> float:
    """A finite number > 0, e.g. a time limit in seconds (argparse ``type=``)."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def positive_int_list(text: str) -> list[int]:
    """Comma-separated integers ≥ 1, e.g. ``10,100,1_000`` (argparse ``type=``)."""
    parts = [p.strip().replace("_", "") for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers >= 1 (e.g. 10,100), got {text!r}")
    return [positive_int(p) for p in parts]


def fairness(text: str) -> str | float:
    """A preset (``none``, ``proportional``, ``maxmin``) or a number 0 ≤ α ≤ 100."""
    name = text.strip().lower()
    if name in FAIRNESS_PRESETS:
        return name
    msg = f"expected {', '.join(FAIRNESS_PRESETS)} or a number 0 <= alpha <= {MAX_ALPHA:g}"
    try:
        alpha = float(name)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{msg}, got {text!r}") from None
    if not math.isfinite(alpha) or not 0.0 <= alpha <= MAX_ALPHA:
        raise argparse.ArgumentTypeError(f"{msg}, got {text!r}")
    return alpha


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: ...)`` to every option's help, except when the help text already
    states its default (options whose default is None)."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def prepare_out_dir(parser: argparse.ArgumentParser, path: str | os.PathLike,
                    option: str = "--out") -> Path:
    """Create the folder ``path`` (and its parents) and check that it is writable, before any
    work; a usage error (exit 2) if it cannot be created or written."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        parser.error(f"{option} {str(out)!r}: exists and is not a folder")
    except OSError as exc:
        parser.error(f"{option} {str(out)!r}: cannot create the folder ({exc.strerror or exc})")
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        parser.error(f"{option} {str(out)!r}: folder is not writable ({exc.strerror or exc})")
    return out


def _mode_label(mode: str | float) -> str:
    """Table label of a fairness setting: the preset name or ``alpha=<α>``."""
    return mode if isinstance(mode, str) else f"alpha={mode:g}"


# --------------------------------------------------------------------------- demo
def _demo(args, out: Path) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from librex_alloc.environments import SyntheticEnvironment
    from librex_alloc.fairness import FairnessConfig
    from librex_alloc.policies import ConstrainedThompsonSampling
    from librex_alloc.progress import Progress
    from librex_alloc.simulation import simulate, summarize

    env = SyntheticEnvironment(n_agents=args.agents, n_resources=args.resources,
                               tightness=args.tightness, seed=args.seed)
    print(f"librex-alloc demo: {args.agents} agents, {args.resources} resources, "
          f"{args.rounds} rounds, budget tightness {args.tightness}, oracle '{args.oracle}', "
          f"seed {args.seed} (in-process simulation)\n", flush=True)
    modes = [args.fairness] if args.fairness == "none" else ["none", args.fairness]
    frames, rows = {}, []
    bar = Progress(len(modes) * args.rounds, "demo", unit="rounds",
                   enabled=not args.no_progress)
    with bar:
        for j, mode in enumerate(modes):
            label = _mode_label(mode)
            policy = ConstrainedThompsonSampling(
                args.resources, fairness=FairnessConfig(mode=mode), oracle=args.oracle,
                seed=args.seed)
            offset = j * args.rounds
            t0 = time.perf_counter()
            df = simulate(policy, env, args.rounds, seed=args.seed, metrics_every=10,
                          progress=lambda done, offset=offset: bar.update(offset + done))
            wall = time.perf_counter() - t0
            frames[label] = df
            s = summarize(df)
            df.to_csv(out / f"rounds_{label.replace('=', '')}.csv", index=False)
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


def _demo_parser(sub) -> argparse.ArgumentParser:
    d = sub.add_parser("demo", help="run the demo simulation and write a plot",
                       description="In-process simulation: utilitarian vs a fairness rule on a "
                       "synthetic environment; prints a summary, writes CSVs and a plot.",
                       formatter_class=HelpFormatter)
    d.add_argument("--agents", type=positive_int, default=50, help="number of agents (>= 1)")
    d.add_argument("--resources", type=positive_int, default=3,
                   help="number of resource types (>= 1)")
    d.add_argument("--rounds", type=positive_int, default=2000,
                   help="rounds per policy (>= 1)")
    d.add_argument("--tightness", type=finite_nonneg_float, default=0.3,
                   help="budget as a fraction of the total request (finite, >= 0)")
    d.add_argument("--fairness", type=fairness, default="proportional",
                   help="none, proportional, maxmin, or a number 0 <= alpha <= 100; compared "
                   "with none (utilitarian)")
    d.add_argument("--oracle", default="fast", choices=("fast", "auto", "exact"),
                   help="the policy's allocation oracle")
    d.add_argument("--seed", type=nonneg_int, default=0, help="random seed (>= 0)")
    d.add_argument("--out", default="out/demo",
                   help="output folder for CSVs and demo.png (created if missing)")
    d.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    return d


PLUGIN_GROUP = "librex_alloc.commands"


def _plugins() -> list:
    """The installed command plug-ins (entry points of :data:`PLUGIN_GROUP`), by name."""
    from importlib.metadata import entry_points

    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)


def main(argv=None) -> int:
    """Entry point of ``librex-alloc``; returns the exit code (usage errors exit 2)."""
    parser = argparse.ArgumentParser(
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
        out = prepare_out_dir(demo, args.out)
        try:
            return _demo(args, out)
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
