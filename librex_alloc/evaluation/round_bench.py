"""Round benchmark: the time of one whole round and the oracles' objectives, side by side.

For each instance (n agents, K resources) and each oracle method, ``rounds`` rounds are played
through two interfaces on twin policies (same instance and seeds, so the same decisions), in
lockstep: each round both calls run back to back, alternately first, so drift of the
machine's speed hits both alike:

- ``original``: the design's per-agent API, ``LibrexAlloc.allocate({id: request}, budget)``
  then one ``LibrexAlloc.update(id, {"reward": r})`` per allocated agent;
- ``batch``: ``allocate_batch(ids, requests, budget)`` then one ``observe(round, ids,
  rewards=...)``.

Per cell the table reports the time per round (median, mean and 95th percentile: ``auto``
runs CP-SAT in some rounds only) and its median split into ``allocate`` (the call,
oracle included), ``oracle`` (the oracle's own solve time) and ``updates`` (all outcome
reports of the round), ``per update`` (µs per reported agent) and ``allocate vs batch``
(the median over rounds of the paired difference of the two calls, in % of the batch call's
median: the original API's own cost), ``cpsat_rounds`` (timed rounds in which the oracle ran
CP-SAT) and ``gap_pct`` (the median certified gap ``(bound − objective) / bound`` of the
oracle's answers, in %). Separately, on the
policy's own value vectors of those rounds, every method (and the original design's SCIP
model where feasible) solves the same problem; ``objective`` is its mean objective relative
to the best answer of any method on the same values.

Instances: ``synthetic`` (values from Thompson sampling, requests U(1, 10) per resource,
budget τ = 0.25 of the total request) and, when the trace is available, ``alibaba`` (tenants
built from the Alibaba GPU trace's pods, in the trace's real mixed units; see
:func:`alibaba_instance`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from librex_alloc import cli_args
from librex_alloc.api import LibrexAlloc
from librex_alloc.oracles import solve

METHODS = ("fast", "auto", "exact")
APIS = ("original", "batch")
DEFAULT_NS = (10, 100, 1000, 10_000)
#: the design's SCIP model runs only up to this n (it takes seconds beyond)
SCIP_MAX_N = 1000
#: exact runs only up to this n in the timed rounds (it hits its time limit beyond)
EXACT_MAX_N = 1000


def synthetic_instance(n: int, k: int = 3, tau: float = 0.25, seed: int = 0):
    """(requests (n, k), budget (k,), means (n,)): requests U(1, 10), means U(0.1, 0.9)."""
    rng = np.random.default_rng(seed)
    req = rng.uniform(1.0, 10.0, (n, k))
    return req, tau * req.sum(axis=0), rng.uniform(0.1, 0.9, n)


def alibaba_instance(n: int, tau: float = 0.25, seed: int = 0, path=None):
    """(requests (n, 4), budget (4,), means (n,)) from the Alibaba GPU trace, or None when the
    trace is not available. Resources in the trace's units: cpu_milli, memory_mib, num_gpu and
    gpu_milli (times num_gpu); tenants are pods (``AlibabaGpuEnvironment``); the budget is τ
    times the total request; means are the success rates of the pods' QoS classes."""
    try:
        from librex_alloc.environments import AlibabaGpuEnvironment
    except ImportError:
        return None
    try:
        env = AlibabaGpuEnvironment(n_agents=n, tightness=tau, seed=seed, path=path)
    except (FileNotFoundError, OSError, TypeError):
        return None
    rnd = env.requests(1)
    req = rnd.request.requests
    return req, rnd.request.budget, env.expected(rnd.agent_index, rnd.request.options)


INSTANCES: dict[str, Callable] = {"synthetic": synthetic_instance, "alibaba": alibaba_instance}


def _rounds(n, k, req, budget, mu, method, rounds, seed, keep_values):
    """Play ``rounds`` rounds through both APIs in lockstep on twin policies (same seeds, so
    the same decisions), alternating which goes first; returns per API the per-round timings
    and (batch only, if ``keep_values``) the value vectors seen."""
    twins = {}
    for api in APIS:
        alloc = LibrexAlloc(n_agents=0, n_resource_types=k, fairness_mode="none",
                            oracle=method, seed=seed)
        twins[api] = (alloc, np.random.default_rng(seed + 1))
    ids = list(range(n))
    reqs = {i: req[i] for i in ids}
    rows = {api: [] for api in APIS}
    values = []
    for t in range(rounds + 3):
        for api in (APIS if t % 2 == 0 else APIS[::-1]):
            alloc, rng = twins[api]
            policy = alloc.policy
            t0 = time.perf_counter()
            if api == "original":
                alloc.allocate(reqs, budget)
                a = alloc.last_allocation
            else:
                a = policy.allocate_batch(ids, req, budget)
            t1 = time.perf_counter()
            got = np.flatnonzero(a.selected)
            rewards = (rng.random(len(got)) < mu[got]).astype(float)
            t2 = time.perf_counter()
            if api == "original":
                for i, r in zip(got.tolist(), rewards.tolist()):
                    alloc.update(i, {"reward": r})
            elif len(got):
                policy.observe(a.round, got.tolist(), rewards=rewards)
            t3 = time.perf_counter()
            if t >= 3:  # warm-up rounds are not timed
                rows[api].append((t1 - t0, a.oracle.solve_time, t3 - t2, len(got),
                                  "exact_status" in a.oracle.info, a.oracle.gap))
                if keep_values and api == "batch":
                    values.append(a.values.copy())
    return rows, values


def round_benchmark(ns: Sequence[int] = DEFAULT_NS, k: int = 3, rounds: int = 20,
                    instances: Sequence[str] = ("synthetic", "alibaba"), seed: int = 0,
                    progress: Callable[[int], object] | None = None) -> pd.DataFrame:
    """The benchmark table (one row per instance, n, method and API; see the module doc)."""
    from librex_alloc.evaluation.reference import solve_scip_reference

    out, done = [], 0
    for name in instances:
        for n in ns:
            inst = INSTANCES[name](n, seed=seed) if name != "synthetic" else \
                synthetic_instance(n, k, seed=seed)
            if inst is None:
                continue
            req, budget, mu = inst
            kk = req.shape[1]
            values_seen: list[np.ndarray] = []
            for method in METHODS:
                if method == "exact" and n > EXACT_MAX_N:
                    continue
                both, vals = _rounds(n, kk, req, budget, mu, method, rounds, seed,
                                     method == "fast")
                values_seen.extend(vals)
                batch_alloc = np.asarray(both["batch"])[:, 0]
                for api in APIS:
                    a = np.asarray(both[api])
                    n_upd = max(a[:, 3].sum(), 1)
                    # paired per round (same decisions): the API's own cost over the batch call
                    over = 100.0 * np.median(a[:, 0] - batch_alloc) / np.median(batch_alloc) \
                        if api == "original" else float("nan")
                    out.append({"instance": name, "n": n, "K": kk, "method": method,
                                "api": api, "allocate_vs_batch_pct": over,
                                "round_ms": 1e3 * np.median(a[:, 0] + a[:, 2]),
                                "round_mean_ms": 1e3 * np.mean(a[:, 0] + a[:, 2]),
                                "round_p95_ms": 1e3 * np.percentile(a[:, 0] + a[:, 2], 95),
                                "allocate_ms": 1e3 * np.median(a[:, 0]),
                                "oracle_ms": 1e3 * np.median(a[:, 1]),
                                "updates_ms": 1e3 * np.median(a[:, 2]),
                                "per_update_us": 1e6 * a[:, 2].sum() / n_upd,
                                "cpsat_rounds": int(a[:, 4].sum()),
                                "gap_pct": 100.0 * float(np.median(a[:, 5]))})
                    done += 1
                    if progress is not None:
                        progress(done)
            # every method on the same value vectors: objective relative to the best
            objs = {m: [] for m in (*METHODS, "scip-reference")}
            for v in values_seen:
                res = {m: solve(v, req, budget, method=m).objective for m in METHODS}
                if n <= SCIP_MAX_N:
                    ref = solve_scip_reference(v, req, budget, time_limit=10.0)
                    if ref.info.get("float_feasible"):
                        res["scip-reference"] = ref.objective
                best = max(res.values())
                for m, o in res.items():
                    objs[m].append(o / best if best > 0 else 1.0)
            for row in out:
                if row["instance"] == name and row["n"] == n:
                    row["objective_vs_best"] = float(np.mean(objs[row["method"]]))
            if objs["scip-reference"]:
                out.append({"instance": name, "n": n, "K": kk, "method": "scip-reference",
                            "api": "oracle only",
                            "objective_vs_best": float(np.mean(objs["scip-reference"]))})
    return pd.DataFrame(out)


def to_markdown(df: pd.DataFrame) -> str:
    cols = ["instance", "n", "K", "method", "api", "round_ms", "round_mean_ms", "round_p95_ms",
            "allocate_ms", "allocate_vs_batch_pct", "oracle_ms",
            "updates_ms", "per_update_us", "cpsat_rounds", "gap_pct", "objective_vs_best"]
    df = df.reindex(columns=cols)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                cells.append("" if np.isnan(v) else f"{v:.4f}" if c == "objective_vs_best"
                             else f"{v:.0f}" if c == "cpsat_rounds" else f"{v:.2f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from librex_alloc.cli_args import (
        HelpFormatter,
        check_out_file,
        name_list,
        positive_int,
        positive_int_list,
    )
    from librex_alloc.progress import Progress

    p = cli_args.ArgumentParser(prog="librex-alloc bench round", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--ns", type=positive_int_list, default=list(DEFAULT_NS),
                   help="numbers of agents, comma-separated")
    p.add_argument("--rounds", type=positive_int, default=20, help="timed rounds per cell")
    p.add_argument("--k", type=positive_int, default=3,
                   help="resources of the synthetic instance (the trace has its own 4)")
    p.add_argument("--instances", type=name_list(sorted(INSTANCES)),
                   default="synthetic,alibaba", help="comma-separated: synthetic, alibaba")
    p.add_argument("--out", default=None, help="also write the table as CSV here")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    a = p.parse_args(argv)
    names = a.instances
    if a.out:  # before the run, not after it
        check_out_file(p, a.out)
    cells = len(names) * sum(2 * (2 + (n <= EXACT_MAX_N)) for n in a.ns)
    with Progress(cells, "bench round", unit="cells", enabled=not a.no_progress) as bar:
        df = round_benchmark(a.ns, k=a.k, rounds=a.rounds, instances=names, progress=bar)
    print(to_markdown(df))
    if a.out:
        df.to_csv(a.out, index=False)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
