"""``librex-alloc run``: the main job on Ray (see :func:`coordinator.job.run_job`).

Importing this module does not import Ray (``run_command`` does), so the core's command line
can build its parser with :func:`add_run_parser` at no cost. Standalone:
``python -m coordinator.cli --agents 10000 --shards 4 --rounds 1000``.
"""

from __future__ import annotations

import argparse
import math
import sys

from librex_alloc import cli_args
from librex_alloc.cli_args import (
    HelpFormatter,
    add_policy_options,
    agents,
    check_dir_path,
    finite_positive_float,
    pending_window,
    positive_int,
    prepare_out_dir,
    resolve_policy_config,
    tightness,
)


def pending_window_s(text: str) -> float:
    """``--pending-window-s``: seconds in which late outcomes are also accepted (a finite
    number >= 0, as :class:`~coordinator.config.CoordinatorConfig` accepts it)."""
    try:
        value = float(text.strip())
    except (ValueError, AttributeError):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}"
                                         ) from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got "
                                         f"{text!r}")
    return value

#: PolicyConfig values of ``run`` when neither a flag nor ``--policy-config`` sets them.
RUN_DEFAULTS = {"n_resources": 3, "fairness": {"mode": "proportional"}, "oracle": "fast",
                "seed": 0, "max_pending_rounds": 50}
#: Exit code after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def configure_run_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``run`` options to ``p`` (types from :mod:`librex_alloc.cli_args`, shared with
    ``demo`` and the benchmarks)."""
    p.add_argument("--agents", type=agents, default=10_000, help="simulated agents")
    p.add_argument("--shards", type=positive_int, default=4,
                   help="agent shard actors (at most --agents)")
    p.add_argument("--rounds", type=positive_int, default=1000,
                   help="rounds to play (see --duration and --until-stopped)")
    p.add_argument("--duration", type=finite_positive_float, default=None,
                   help="run for this many seconds instead of --rounds (default: off)")
    p.add_argument("--until-stopped", action="store_true",
                   help="run until the coordinator is stopped or Ctrl-C")
    p.add_argument("--tightness", type=tightness, default=0.3,
                   help="budget as a fraction of the total request")
    add_policy_options(p, RUN_DEFAULTS)
    p.add_argument("--address", default=None,
                   help="Ray cluster address to join (default: RAY_ADDRESS, else a new local "
                   "Ray)")
    p.add_argument("--connect-timeout", type=finite_positive_float, default=30.0,
                   help="seconds to wait for the Ray cluster before giving up")
    p.add_argument("--out", default="out/run", help="output folder (rounds.parquet, run.png)")
    p.add_argument("--checkpoint-dir", default=None,
                   help="checkpoint folder (default: OUT/checkpoint; on a cluster a path "
                   "every node reaches)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run saved in --checkpoint-dir (its rounds.parquet gets "
                   "one more part)")
    p.add_argument("--accept-loss", action="store_true",
                   help="with --resume: resume even if journal records that may have been "
                   "committed are damaged or missing (what is intact is replayed, the rest "
                   "dropped and counted)")
    p.add_argument("--deadline", type=finite_positive_float, default=5.0,
                   help="seconds a round waits for submitters")
    p.add_argument("--checkpoint-every", type=positive_int, default=100,
                   help="rounds between full snapshots (a journal covers the rest)")
    p.add_argument("--pending-window", type=pending_window, default=None,
                   help="rounds in which late outcomes are accepted (default: "
                   f"{RUN_DEFAULTS['max_pending_rounds']})")
    p.add_argument("--pending-window-s", type=pending_window_s, default=None,
                   help="seconds in which late outcomes are also accepted, whatever the "
                   "rounds (default: three round deadlines, see --deadline)")
    p.add_argument("--name", default="librex-alloc", help="prefix of the actor names")
    p.add_argument("--namespace", default="librex-alloc",
                   help="Ray namespace of the job's actors (status/stop --namespace)")
    p.add_argument("--detached", action="store_true",
                   help="leave the job running on the cluster (--address or RAY_ADDRESS) and "
                   "exit; follow it with 'librex-alloc status', end it with 'librex-alloc "
                   "stop'")
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
    parser = add_run_parser(subparsers, formatter_class=HelpFormatter)
    return parser, run_command


def _usage(parser: argparse.ArgumentParser | None, message: str):
    if parser is not None:
        parser.error(message)
    raise SystemExit(message)


def check_run_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None):
    """Everything that can be checked before Ray starts; returns the resolved
    :class:`~librex_alloc.PolicyConfig`. A usage error (exit 2, one line) otherwise."""
    if args.until_stopped and args.duration is not None:
        _usage(parser, "--until-stopped and --duration exclude each other")
    if args.detached:
        import os

        address = args.address or os.environ.get("RAY_ADDRESS")
        if not address or address == "local":
            _usage(parser, "--detached needs a Ray cluster that outlives this command: start "
                   "one with 'ray start --head' and pass its --address (or set RAY_ADDRESS)")
        if args.duration is not None:
            _usage(parser, "--detached runs --rounds N or --until-stopped, not --duration")
    if args.shards > args.agents:
        _usage(parser, f"--shards {args.shards} is more than --agents {args.agents}: every "
               f"shard hosts at least one agent")
    config = resolve_policy_config(parser or cli_args.ArgumentParser(prog="run"), args,
                                   RUN_DEFAULTS)
    from librex_alloc.errors import LibrexError
    from librex_alloc.policies import ConstrainedThompsonSampling

    try:  # the coordinator's policy checks its own parameters: do it here, before Ray
        ConstrainedThompsonSampling.from_config(config)
    except LibrexError as exc:
        _usage(parser, f"policy configuration: {exc}")
    if parser is not None:
        if args.resume:  # a resume changes nothing before it is known to fit
            check_dir_path(parser, args.out, "--out")
        else:
            prepare_out_dir(parser, args.out)
        if args.checkpoint_dir is not None:
            check_dir_path(parser, args.checkpoint_dir, "--checkpoint-dir")
    return config


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run the job described by parsed ``run`` options; returns the exit code: 0, 2 for a
    usage error or a :class:`~librex_alloc.errors.LibrexError` from the job (one line), 130
    after Ctrl-C (once the final snapshot is written when the loop was running)."""
    from coordinator.job import run_job
    from librex_alloc.errors import LibrexError

    config = check_run_args(args, parser)
    rounds = None if (args.until_stopped or args.duration is not None) else args.rounds
    fair = config.fairness
    label = fair.mode if fair.mode != "alpha" else f"alpha={fair.alpha:g}"
    if fair.max_reward_loss is not None:
        label += f", max reward loss {fair.max_reward_loss:g}"
    try:
        result = run_job(
            agents=args.agents, shards=args.shards, rounds=rounds, duration_s=args.duration,
            fairness=label, resources=config.n_resources, tightness=args.tightness,
            oracle=config.oracle, seed=args.seed if args.seed is not None else 0,
            address=args.address, connect_timeout_s=args.connect_timeout, out=args.out,
            checkpoint_dir=args.checkpoint_dir, resume=args.resume,
            accept_loss=args.accept_loss,
            round_deadline_s=args.deadline, checkpoint_every=args.checkpoint_every,
            pending_window=config.max_pending_rounds, name=args.name,
            pending_window_s=args.pending_window_s, namespace=args.namespace,
            detached=args.detached,
            progress=not args.no_progress, plot=not args.no_plot, policy_config=config)
    except (LibrexError, FileExistsError) as exc:  # not a usage mistake: no usage text
        print(f"{parser.prog if parser else 'run'}: error: {exc}", file=sys.stderr,
              flush=True)
        return 2
    except KeyboardInterrupt:  # during start-up: nothing to save yet
        print(f"\n{parser.prog if parser else 'run'}: interrupted", file=sys.stderr,
              flush=True)
        return EXIT_INTERRUPTED
    if result.summary.get("detached"):
        return 0
    if result.summary.get("interrupted"):
        print(f"{parser.prog if parser else 'run'}: interrupted after "
              f"{result.summary['rounds']} rounds; final snapshot in {result.checkpoint_dir}",
              file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    return 0


def main(argv=None) -> int:
    parser = configure_run_parser(cli_args.ArgumentParser(
        prog="python -m coordinator.cli", formatter_class=HelpFormatter,
        description="The main job on Ray (same as 'librex-alloc run')."))
    try:
        return run_command(parser.parse_args(argv), parser)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
