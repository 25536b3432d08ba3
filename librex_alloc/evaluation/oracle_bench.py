"""Oracle benchmark: ``exact``, ``fast``, ``auto`` and the original design's SCIP model.

Every method solves the *same* random instances in the same run (see :func:`make_instance`).
Per (n, K, method) the table reports the median and 90th-percentile wall time of one oracle
call (validation and model building included), the mean and max relative gap to the LP bound
``(LP − objective) / LP``, where LP is the Lagrangian/LP bound returned by ``fast`` on the same
instance (a valid upper bound, so every gap is ≥ 0), and the fraction of instances whose answer
is *proved* optimal (status ``"optimal"``). Expensive cells are capped and say so in ``note``.

Run ``python -m librex_alloc.evaluation.oracle_bench --help`` (or ``librex-alloc bench
oracle``). The default run takes a few minutes on a 2-core machine; ``--quick`` (n ≤ 1000,
2 repeats, short time limits) is a smoke test.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from librex_alloc import cli_args
from librex_alloc.cli_args import (
    HelpFormatter,
    check_out_file,
    finite_positive_float,
    nonneg_int,
    positive_int,
    positive_int_list,
)
from librex_alloc.evaluation.reference import solve_scip_reference
from librex_alloc.oracles import solve
from librex_alloc.oracles.methods import CHEAPEST_FIRST
from librex_alloc.progress import Progress

#: the table's columns: the oracle methods, the dearest first, then the design's SCIP model
METHODS = (*reversed(CHEAPEST_FIRST), "scip-reference")
DEFAULT_NS = (10, 100, 1000, 10_000, 100_000)
DEFAULT_KS = (3, 10)
#: n from which ``exact`` gets ``exact_large_time_limit`` and ``exact_large_repeats``.
LARGE_N = 10_000
COLUMNS = ["n", "K", "method", "instances", "median_ms", "p90_ms", "mean_gap_pct",
           "max_gap_pct", "optimal_frac", "note"]


def make_instance(n: int, k: int, tau: float = 0.3, seed: int = 0, decimals: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random single-option instance: ``(values (n,), requests (n, k), budget (k,))``.

    values ~ U(0, 1); requests ~ U(1, 10) independently per agent and resource; the budget of
    each resource is ``tau ×`` the total request of that resource (tau = 0.3: about a third of
    the agents fit). ``decimals`` rounds values, requests and budget to that many decimals,
    which makes CP-SAT's integer scaling exact (so ``exact`` can prove optimality); None keeps
    full float64 data. The stream depends on ``(seed, n, k)`` only.
    """
    rng = np.random.default_rng([int(seed), int(n), int(k)])
    values = rng.uniform(0.0, 1.0, n)
    requests = rng.uniform(1.0, 10.0, (n, k))
    budget = tau * requests.sum(axis=0)
    if decimals is not None:
        values, requests, budget = (np.round(a, decimals) for a in (values, requests, budget))
    return values, requests, budget


def _fmt_limit(seconds: float) -> str:
    return f"{seconds:g} s"


def _cell(n, k, method, times, gaps, proved, notes) -> dict:
    row = {"n": n, "K": k, "method": method, "instances": len(times)}
    if times:
        t = np.asarray(times) * 1e3
        g = np.asarray(gaps) * 100.0
        row.update(median_ms=float(np.median(t)), p90_ms=float(np.percentile(t, 90)),
                   mean_gap_pct=float(np.mean(g)), max_gap_pct=float(np.max(g)),
                   optimal_frac=float(np.mean(proved)))
    else:
        row.update(median_ms=np.nan, p90_ms=np.nan, mean_gap_pct=np.nan, max_gap_pct=np.nan,
                   optimal_frac=np.nan)
    row["note"] = "; ".join(x for x in notes if x)
    return row


def _warm_up() -> None:
    """Load OR-Tools, SCIP and HiGHS once so the first timed call does not pay for it."""
    v, r, b = make_instance(700, 3, seed=12345)
    for method in CHEAPEST_FIRST:
        solve(v, r, b, method=method, time_limit=0.2 if method != "fast" else None)
    solve_scip_reference(*make_instance(30, 3, seed=12345), time_limit=1.0)


def oracle_benchmark(ns: Sequence[int] = DEFAULT_NS, ks: Sequence[int] = DEFAULT_KS,
                     repeats: int = 5, tau: float = 0.3, seed: int = 0,
                     exact_time_limit: float = 5.0, exact_large_time_limit: float = 1.0,
                     exact_large_repeats: int = 2, auto_time_limit: float | None = None,
                     scip_max_n: int = 1000, scip_time_limit: float = 10.0,
                     decimals: int | None = None, warm_up: bool = True,
                     progress: Callable[[int], object] | None = None) -> pd.DataFrame:
    """Benchmark the oracles; one row per (n, K, method), columns :data:`COLUMNS`.

    ``repeats`` instances per (n, K) (seeds ``seed + r``). ``exact`` runs with CP-SAT's
    deterministic ``exact_time_limit`` (``exact_large_time_limit`` and only the first
    ``exact_large_repeats`` instances when n ≥ :data:`LARGE_N`); ``auto`` with
    ``auto_time_limit`` (None: the library default); the SCIP reference only for
    n ≤ ``scip_max_n``, with the wall-clock ``scip_time_limit``. Gaps are relative to the LP
    bound returned by ``fast`` on the same instance, in percent. ``progress``, if given, is
    called with the number of (n, K, method, instance) cells done so far, out of
    :func:`count_cells` (a method skipped on an instance counts as done).
    """
    if warm_up:
        _warm_up()
    rows = []
    done = 0
    for n in ns:
        for k in ks:
            large = n >= LARGE_N
            ex_limit = exact_large_time_limit if large else exact_time_limit
            ex_reps = min(repeats, exact_large_repeats) if large else repeats
            acc = {m: {"t": [], "gap": [], "proved": []} for m in METHODS}
            ex_hit = auto_cpsat = auto_hit = 0
            scip_hit = scip_bad = lp_nc = 0
            for rep in range(repeats):
                v, r, b = make_instance(n, k, tau=tau, seed=seed + rep, decimals=decimals)
                results = {}
                t0 = time.perf_counter()
                results["fast"] = solve(v, r, b, method="fast")
                acc["fast"]["t"].append(time.perf_counter() - t0)
                lp = results["fast"].bound
                lp_nc += not results["fast"].info.get("lp_converged", True)
                t0 = time.perf_counter()
                results["auto"] = solve(v, r, b, method="auto", time_limit=auto_time_limit)
                acc["auto"]["t"].append(time.perf_counter() - t0)
                st = results["auto"].info.get("exact_status")
                if st is not None:
                    auto_cpsat += 1
                    auto_hit += st != "OPTIMAL"
                if rep < ex_reps:
                    t0 = time.perf_counter()
                    results["exact"] = solve(v, r, b, method="exact", time_limit=ex_limit)
                    acc["exact"]["t"].append(time.perf_counter() - t0)
                    st = results["exact"].info.get("exact_status")
                    ex_hit += st is not None and st != "OPTIMAL"
                if n <= scip_max_n:
                    res = solve_scip_reference(v, r, b, time_limit=scip_time_limit)
                    acc["scip-reference"]["t"].append(res.solve_time)
                    scip_hit += res.status != "optimal"
                    scip_bad += not res.info["float_feasible"]
                    results["scip-reference"] = res
                for m, res in results.items():
                    acc[m]["gap"].append((lp - res.objective) / abs(lp) if lp else 0.0)
                    acc[m]["proved"].append(res.status == "optimal")
                done += len(METHODS)
                if progress is not None:
                    progress(done)
            notes = {
                "fast": [f"LP not converged in {lp_nc}/{repeats}" if lp_nc else ""],
                "auto": [f"CP-SAT ran in {auto_cpsat}/{repeats}" if auto_cpsat else "",
                         f"its time limit hit in {auto_hit}/{auto_cpsat}" if auto_hit else ""],
                "exact": [
                    f"{ex_reps}/{repeats} instances (n ≥ {LARGE_N})" if ex_reps < repeats else "",
                    f"time limit {_fmt_limit(ex_limit)} hit in {ex_hit}/{ex_reps}"
                    if ex_hit else ""],
                "scip-reference": (
                    [f"not run: n > {scip_max_n}"] if n > scip_max_n else
                    [f"time limit {_fmt_limit(scip_time_limit)} hit in {scip_hit}/{repeats}"
                     if scip_hit else "",
                     f"float budget violated in {scip_bad}/{repeats}" if scip_bad else ""]),
            }
            for m in METHODS:
                rows.append(_cell(n, k, m, acc[m]["t"], acc[m]["gap"], acc[m]["proved"],
                                  notes[m]))
    return pd.DataFrame(rows, columns=COLUMNS)


def count_cells(ns: Sequence[int], ks: Sequence[int], repeats: int) -> int:
    """Number of (n, K, method, instance) cells of :func:`oracle_benchmark` (its progress
    total)."""
    return len(ns) * len(ks) * len(METHODS) * repeats


def format_table(df: pd.DataFrame) -> str:
    """A markdown table of :func:`oracle_benchmark`'s output (times in ms, gaps in %)."""
    def num(x, spec):
        return "—" if pd.isna(x) else format(x, spec)

    head = ["n", "K", "method", "inst", "median ms", "p90 ms", "mean gap %", "max gap %",
            "proved opt", "note"]
    body = []
    for row in df.itertuples(index=False):
        body.append([f"{row.n:,}", str(row.K), row.method, str(row.instances),
                     num(row.median_ms, ".1f" if row.median_ms < 1e4 else ".0f"),
                     num(row.p90_ms, ".1f" if row.p90_ms < 1e4 else ".0f"),
                     num(row.mean_gap_pct, ".4f"), num(row.max_gap_pct, ".4f"),
                     num(row.optimal_frac, ".2f"), row.note])
    width = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
             for i, h in enumerate(head)]
    right = {0, 1, 3, 4, 5, 6, 7, 8}

    def line(cells):
        out = [c.rjust(w) if i in right else c.ljust(w)
               for i, (c, w) in enumerate(zip(cells, width))]
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2))
                         for i, w in enumerate(width)) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m librex_alloc.evaluation.oracle_bench [--quick] [--ns ...]
    [--out PATH]``. Bad values are usage errors (exit 2)."""
    p = cli_args.ArgumentParser(prog="librex-alloc bench oracle", description=__doc__.split(
        "\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("--ns", type=positive_int_list, default=None,
                   help="comma-separated agent counts >= 1 (default: 10,100,1000,10000,100000)")
    p.add_argument("--ks", type=positive_int_list, default=None,
                   help="comma-separated resource counts K >= 1 (default: 3,10)")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help="instances per (n, K), >= 1 (default: 5; 2 with --quick)")
    p.add_argument("--tau", type=finite_positive_float, default=0.3,
                   help="budget / total request (> 0)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the first instance")
    p.add_argument("--exact-time-limit", type=finite_positive_float, default=None,
                   help="CP-SAT deterministic time limit for exact, n < 10000 (default: 5; "
                   "1 with --quick)")
    p.add_argument("--exact-large-time-limit", type=finite_positive_float, default=1.0,
                   help="the same for n >= 10000")
    p.add_argument("--exact-large-repeats", type=positive_int, default=2,
                   help="instances exact runs on when n >= 10000")
    p.add_argument("--scip-max-n", type=nonneg_int, default=1000,
                   help="largest n for the SCIP model")
    p.add_argument("--scip-time-limit", type=finite_positive_float, default=None,
                   help="SCIP wall-clock limit in seconds (default: 10; 2 with --quick)")
    p.add_argument("--decimals", type=nonneg_int, default=None,
                   help="round values, requests and budget to this many decimals "
                   "(exact CP-SAT scaling; default: full float64 data)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: n <= 1000, 2 repeats, time limits 1 s (exact) / 2 s (SCIP)")
    p.add_argument("--out", default=None,
                   help="also write the table as CSV to this path (default: no CSV)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    a = p.parse_args(argv)
    if a.out:
        check_out_file(p, a.out)
    ns = a.ns or list(DEFAULT_NS)
    if a.quick:
        ns = [n for n in ns if n <= 1000] or [min(ns)]
    quick = a.quick
    ks = a.ks or list(DEFAULT_KS)
    repeats = a.repeats or (2 if quick else 5)
    kwargs = dict(
        ns=ns, ks=ks, repeats=repeats, tau=a.tau, seed=a.seed,
        exact_time_limit=a.exact_time_limit or (1.0 if quick else 5.0),
        exact_large_time_limit=a.exact_large_time_limit,
        exact_large_repeats=a.exact_large_repeats, scip_max_n=a.scip_max_n,
        scip_time_limit=a.scip_time_limit or (2.0 if quick else 10.0), decimals=a.decimals)
    t0 = time.perf_counter()
    with Progress(count_cells(ns, ks, repeats), "oracle bench", unit="cells",
                  enabled=not a.no_progress) as bar:
        df = oracle_benchmark(**kwargs, progress=bar)
    print(format_table(df))
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
    if a.out:
        df.to_csv(a.out, index=False)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
