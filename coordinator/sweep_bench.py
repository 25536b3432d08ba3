"""The sweep benchmark: trials per minute of a 12-trial α × prior grid, three ways.

``python -m coordinator.sweep_bench`` runs the same cells (fairness α ∈ {0, 0.5, 1, 2} × Beta
prior ``alpha_prior`` ∈ {0.5, 1, 2} on a synthetic instance, seed 0) as

- ``tune-inprocess``: :func:`coordinator.sweep.run_sweep` with in-process trials (Ray Tune:
  placement groups, ``tune.report`` and a ``tune.Checkpoint`` every ``--report-every`` rounds);
- ``tune-coordinator``: the same with coordinator trials (``run_job``: a coordinator actor and
  a shard actor per run, started again for every chunk);
- ``multiprocessing``: a plain ``multiprocessing.Pool`` over the cells running the same trial
  function (same simulation, same state files per chunk; no Tune, no Ray),

and prints one row per way: wall time, trials per minute, and the time beyond the plain loop
(Tune's overhead). The local Ray is started once before the Tune rows (its start-up time is
printed apart). Every trial also runs its utilitarian twin for ``reward_kept``, as a sweep does.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time

from coordinator.sweep import TrialSettings, _int, _one_line_error, run_inprocess_trial, run_sweep
from librex_alloc import cli_args
from librex_alloc.sweep_space import SweepSpace

MODES = ("tune-inprocess", "tune-coordinator", "multiprocessing")
ALPHAS = "0,0.5,1,2"
PRIORS = "0.5,1,2"


def _space(agents: int, alphas: str, priors: str) -> SweepSpace:
    return SweepSpace.from_params([f"fairness.alpha={alphas}", f"prior.alpha_prior={priors}",
                                   "oracle=fast", "seed=0", f"env.agents={agents}"])


def _mp_trial(args):
    cell, settings = args
    t0 = time.perf_counter()
    run_inprocess_trial(cell, TrialSettings(**settings), lambda m, d: None)
    return time.perf_counter() - t0


def run_bench(modes=MODES, *, agents: int = 50, rounds: int = 200, report_every: int = 100,
              alphas: str = ALPHAS, priors: str = PRIORS, workers: int | None = None,
              stream=sys.stdout) -> list[dict]:
    """Run the chosen ways; returns one dict per way (and prints the table to ``stream``)."""
    space = _space(agents, alphas, priors)
    cells = space.cells()
    workers = workers or os.cpu_count() or 1
    rows, ray_start = [], None
    tmp = tempfile.mkdtemp(prefix="librex-sweep-bench-")
    try:
        if "multiprocessing" in modes:
            settings = TrialSettings(rounds=rounds, report_every=report_every,
                                     runner="inprocess")
            t0 = time.perf_counter()
            with mp.get_context("spawn").Pool(workers) as pool:
                per = pool.map(_mp_trial, [(c, settings.__dict__) for c in cells])
            wall = time.perf_counter() - t0
            rows.append({"mode": "multiprocessing", "trials": len(cells), "wall_s": wall,
                         "trial_s_median": sorted(per)[len(per) // 2],
                         "note": f"Pool({workers}), spawn"})
        tune_modes = [m for m in modes if m.startswith("tune-")]
        if tune_modes:
            import ray

            t0 = time.perf_counter()
            ray.init(address="local", num_cpus=workers, include_dashboard=False,
                     log_to_driver=False)
            ray_start = time.perf_counter() - t0
            try:
                for mode in tune_modes:
                    runner = mode.split("-")[1]
                    settings = TrialSettings(rounds=rounds, report_every=report_every,
                                             runner=runner)
                    t0 = time.perf_counter()
                    res = run_sweep(space, storage=os.path.join(tmp, "store"), name=mode,
                                    out=os.path.join(tmp, mode), settings=settings,
                                    verbose=0, plot=False)
                    wall = time.perf_counter() - t0
                    done = int((res.trials["status"] == "done").sum())
                    rows.append({"mode": mode, "trials": done, "wall_s": wall,
                                 "trial_s_median": float(res.trials["wall_s"].median()),
                                 "note": "1 CPU per trial" if runner == "inprocess" else
                                 "coordinator + 1 shard: 2 CPUs per trial"})
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = next((r["wall_s"] for r in rows if r["mode"] == "multiprocessing"), None)
    for r in rows:
        r["trials_per_min"] = 60.0 * r["trials"] / r["wall_s"]
        r["over_plain_s"] = r["wall_s"] - base if base is not None else float("nan")
    print(f"librex-alloc sweep bench: {len(cells)} cells (fairness.alpha {alphas} x "
          f"prior.alpha_prior {priors}), {agents} agents, {rounds} rounds per trial, a report "
          f"and checkpoint every {report_every}; {os.cpu_count()} CPUs, {platform.platform()}"
          + (f"; local Ray start-up {ray_start:.1f} s (not in the rows)" if ray_start else ""),
          file=stream)
    header = (f"{'mode':<18}{'trials':>7}{'wall s':>9}{'trials/min':>12}{'median trial s':>16}"
              f"{'beyond plain loop s':>21}  note")
    print(header, file=stream)
    print("-" * len(header), file=stream)
    for r in rows:
        print(f"{r['mode']:<18}{r['trials']:>7}{r['wall_s']:>9.1f}{r['trials_per_min']:>12.1f}"
              f"{r['trial_s_median']:>16.2f}{r['over_plain_s']:>21.1f}  {r['note']}",
              file=stream)
    print("median trial s: the trial's own simulation time (Tune rows: wall_s the trial "
          "reports; coordinator trials include actor start-up per chunk)", file=stream)
    return rows


def main(argv=None) -> int:
    p = cli_args.ArgumentParser(prog="python -m coordinator.sweep_bench",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _one_line_error(p)
    p.add_argument("--modes", default=",".join(MODES),
                   help=f"comma-separated subset of {', '.join(MODES)}")
    p.add_argument("--agents", type=_int(1), default=50, help="agents per trial")
    p.add_argument("--rounds", type=_int(1), default=200, help="rounds per trial")
    p.add_argument("--report-every", type=_int(1), default=100, help="rounds per chunk")
    p.add_argument("--alphas", default=ALPHAS, help="the α grid")
    p.add_argument("--priors", default=PRIORS, help="the alpha_prior grid")
    p.add_argument("--workers", type=_int(1), default=None,
                   help="processes / Ray CPUs (default: all CPUs)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        p.error(f"--modes: expected a subset of {', '.join(MODES)}, got {args.modes!r}")
    from librex_alloc.sweep_space import SweepSpaceError

    try:
        _space(args.agents, args.alphas, args.priors).cells()
    except SweepSpaceError as exc:
        p.error(str(exc))
    try:
        rows = run_bench(modes, agents=args.agents, rounds=args.rounds,
                         report_every=args.report_every, alphas=args.alphas,
                         priors=args.priors, workers=args.workers)
    except KeyboardInterrupt:
        print(f"{p.prog}: interrupted", file=sys.stderr)
        return 130
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
