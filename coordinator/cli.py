"""``librex-alloc run``: the main job on Ray (see :func:`coordinator.job.run_job`).

Importing this module does not import Ray (``run_command`` does), so the core's command line
can build its parser with :func:`add_run_parser` at no cost. Standalone:
``python -m coordinator.cli --agents 10000 --shards 4 --rounds 1000``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys


def _int(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _float(low: float, open_low: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (open_low and value == low):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>' if open_low else '>='}"
                                             f" {low:g}, got {text!r}")
        return value

    return parse


def _fairness(text: str) -> str | float:
    name = text.strip().lower()
    if name in ("none", "proportional", "maxmin"):
        return name
    try:
        alpha = float(name)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected none, proportional, maxmin or a number alpha >= 0, got {text!r}") from None
    if not math.isfinite(alpha) or alpha < 0:
        raise argparse.ArgumentTypeError(f"alpha must be a finite number >= 0, got {text!r}")
    return alpha


def configure_run_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``run`` options to ``p``."""
    p.add_argument("--agents", type=_int(1), default=10_000, help="simulated agents")
    p.add_argument("--shards", type=_int(1), default=4, help="agent shard actors")
    p.add_argument("--rounds", type=_int(1), default=1000,
                   help="rounds to play (see --duration and --until-stopped)")
    p.add_argument("--duration", type=_float(0.0, open_low=True), default=None,
                   help="run for this many seconds instead of --rounds")
    p.add_argument("--until-stopped", action="store_true",
                   help="run until the coordinator is stopped or Ctrl-C")
    p.add_argument("--fairness", type=_fairness, default="proportional",
                   help="none, proportional, maxmin, or a number alpha >= 0")
    p.add_argument("--resources", type=_int(1), default=3, help="resource types K")
    p.add_argument("--tightness", type=_float(0.0, open_low=True), default=0.3,
                   help="budget as a fraction of the total request")
    p.add_argument("--oracle", choices=("fast", "auto", "exact"), default="fast",
                   help="the policy's allocation oracle")
    p.add_argument("--seed", type=_int(0), default=0, help="random seed")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--out", default="out/run", help="output folder (rounds.parquet, run.png)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="checkpoint folder (default OUT/checkpoint; on a cluster a path every "
                   "node reaches)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved in --checkpoint-dir (its rounds.parquet gets "
                   "one more part)")
    p.add_argument("--accept-loss", action="store_true",
                   help="with --resume: resume even if journal records that may have been "
                   "committed are damaged or missing (what is intact is replayed, the rest "
                   "dropped and counted)")
    p.add_argument("--deadline", type=_float(0.0, open_low=True), default=5.0,
                   help="seconds a round waits for submitters")
    p.add_argument("--checkpoint-every", type=_int(1), default=100,
                   help="rounds between full snapshots (a journal covers the rest)")
    p.add_argument("--pending-window", type=_int(1), default=50,
                   help="rounds in which late outcomes are accepted")
    p.add_argument("--name", default="librex-alloc", help="prefix of the actor names")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--no-plot", action="store_true", help="do not write run.png")
    return p


def add_run_parser(subparsers, **kwargs) -> argparse.ArgumentParser:
    """Register ``run`` on an argparse ``subparsers`` object; returns its parser."""
    kwargs.setdefault("help", "run the coordinator and agent shards on Ray")
    kwargs.setdefault("description", "The main job: a coordinator actor and agent shard "
                      "actors on a local Ray (or --address / RAY_ADDRESS); prints a summary, "
                      "writes rounds.parquet and run.png.")
    return configure_run_parser(subparsers.add_parser("run", **kwargs))


def register(subparsers):
    """Plug-in hook of ``librex-alloc`` (entry point ``librex_alloc.commands: run``)."""
    parser = add_run_parser(subparsers, formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    def handler(args, p):
        if not args.resume:  # a resume changes nothing before it is known to fit
            os.makedirs(args.out, exist_ok=True)
        return run_command(args, p)

    return parser, handler


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run the job described by parsed ``run`` options; returns the exit code."""
    from coordinator.job import run_job
    from librex_alloc import LibrexError

    if args.until_stopped and args.duration is not None:
        msg = "--until-stopped and --duration exclude each other"
        if parser is not None:
            parser.error(msg)
        raise SystemExit(msg)
    rounds = None if (args.until_stopped or args.duration is not None) else args.rounds
    try:
        run_job(agents=args.agents, shards=min(args.shards, args.agents), rounds=rounds,
                duration_s=args.duration, fairness=args.fairness, resources=args.resources,
                tightness=args.tightness, oracle=args.oracle, seed=args.seed,
                address=args.address, out=args.out, checkpoint_dir=args.checkpoint_dir,
                resume=args.resume, accept_loss=args.accept_loss,
                round_deadline_s=args.deadline,
                checkpoint_every=args.checkpoint_every, pending_window=args.pending_window,
                name=args.name, progress=not args.no_progress, plot=not args.no_plot)
    except FileExistsError as exc:
        if parser is not None:
            parser.error(str(exc))
        raise
    except LibrexError as exc:  # a held folder or name, a resume that cannot be done
        prog = parser.prog if parser is not None else "librex-alloc run"
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    parser = configure_run_parser(argparse.ArgumentParser(
        prog="python -m coordinator.cli", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="The main job on Ray (same as 'librex-alloc run')."))
    args = parser.parse_args(argv)
    if not args.resume:  # a resume changes nothing before it is known to fit
        os.makedirs(args.out, exist_ok=True)
    return run_command(args, parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
