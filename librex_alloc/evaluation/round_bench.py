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
from librex_alloc.oracles.methods import CHEAPEST_FIRST

METHODS = CHEAPEST_FIRST
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


def mixed_instance(n: int, tau: float = 0.25, seed: int = 0):
    """(requests (n, 5), budget (5,), means (n,)): a cluster in mixed units, as a user describes
    one: whole cores (1–32), whole GPUs (0–8), RDMA bandwidth in % of a link (whole percent),
    memory in GiB (0.1 GiB steps, 2–8 GiB per core) and disk in GiB (0.1 GiB steps, log-normal);
    budget τ times the total request; means U(0.1, 0.9). Synthetic: no trace is read."""
    rng = np.random.default_rng(seed)
    cores = rng.choice([1, 2, 4, 8, 16, 32], n, p=[.2, .25, .25, .15, .1, .05]).astype(float)
    gpus = rng.choice([0, 1, 2, 4, 8], n, p=[.4, .3, .15, .1, .05]).astype(float)
    rdma = np.where(gpus > 0, rng.choice([10, 25, 50, 100], n),
                    rng.choice([0, 5, 10], n)).astype(float)
    mem = np.round(cores * rng.uniform(2, 8, n), 1)
    disk = np.round(rng.lognormal(4, 1, n), 1)
    req = np.column_stack([cores, gpus, rdma, mem, disk])
    return req, tau * req.sum(axis=0), rng.uniform(0.1, 0.9, n)


def bitbrains_instance(n: int, tau: float = 0.25, seed: int = 0, path=None):
    """(requests (n, 4), budget (4,), means (n,)) from the Bitbrains trace (``vary="budget"``
    requests: each agent's mean usage over a day, in the trace's units), or None when the trace
    is not available; the budget is τ times the total request."""
    try:
        from librex_alloc.environments.traces import BitbrainsEnvironment
        env = BitbrainsEnvironment(n_agents=n, vary="budget", tightness=tau, seed=seed,
                                   path=path)
    except (ImportError, FileNotFoundError, OSError, TypeError):
        return None
    req = env.request_table
    return req, tau * req.sum(axis=0), env.means


def heterogeneous_instance(n: int, k: int = 5, tau: float = 0.25, seed: int = 0):
    """(requests (n, k), budget (k,), means (n,)): the synthetic environment's heterogeneous
    family (per-agent size factor exp(N(0, 1)), requests U(1, 10) per resource)."""
    from librex_alloc.environments import SyntheticEnvironment

    env = SyntheticEnvironment(n_agents=n, n_resources=k, tightness=tau, heterogeneity=1.0,
                               seed=seed)
    req = env.request_table[:, 0, :] if env.request_table.ndim == 3 else env.request_table
    return req, tau * req.sum(axis=0), env.means.reshape(n, -1)[:, 0]


INSTANCES: dict[str, Callable] = {"synthetic": synthetic_instance, "alibaba": alibaba_instance,
                                  "mixed": mixed_instance, "bitbrains": bitbrains_instance,
                                  "heterogeneous": heterogeneous_instance}


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


# ----------------------------------------------------------------------------- fairness modes

#: ``--fairness`` names: the fairness configuration of each (FairnessConfig keyword arguments);
#: a number is α. ``loss`` is proportional fairness under the reward-loss knob (ε = 0.1),
#: ``minshare`` the utilitarian rule with a minimum share of 0.2 for every agent.
FAIRNESS_MODES = {
    "none": {"mode": "none"},
    "proportional": {"mode": "proportional"},
    "maxmin": {"mode": "maxmin"},
    "loss": {"mode": "proportional", "max_reward_loss": 0.1},
    "minshare": {"mode": "none", "min_share": 0.2},
}
FAIRNESS_INSTANCES = ("mixed", "alibaba", "bitbrains", "heterogeneous")
FAIRNESS_METHODS = tuple(m for m in CHEAPEST_FIRST if m != "exact")
#: ``exact``'s generous per-round limit (CP-SAT deterministic seconds) in the fairness table
EXACT_LIMIT = 20.0


def fairness_config(name: str) -> dict:
    """FairnessConfig keyword arguments of a ``--fairness`` name (or a number α ≥ 0)."""
    from librex_alloc.errors import InvalidConfigError
    from librex_alloc.fairness import FairnessConfig

    if name in FAIRNESS_MODES:
        return dict(FAIRNESS_MODES[name])
    try:
        alpha = float(name)
    except ValueError:
        raise InvalidConfigError(f"unknown fairness mode {name!r}; expected one of "
                                 f"{sorted(FAIRNESS_MODES)} or a number α >= 0") from None
    FairnessConfig(mode=alpha)  # validates α
    return {"mode": alpha}


def _fair_rounds(req, budget, mu, fairness: dict, method: str, rounds: int, seed: int,
                 deadline: float | None):
    """``rounds`` timed rounds (after 3 warm-up rounds) of constrained TS with learning, batch
    API; per round (round s, oracle s, certified gap, CP-SAT ran, cut short, solve time −
    deadline, objective, round CPU s of this process, bound), and the oracle values of every timed
    round (for ``loss``: of the fair call; its utilitarian reference call is timed in the round
    but not listed)."""
    from librex_alloc.fairness import FairnessConfig
    from librex_alloc.policies import ConstrainedThompsonSampling

    k = req.shape[1]
    policy = ConstrainedThompsonSampling(k, fairness=FairnessConfig(**fairness), oracle=method,
                                         seed=seed, round_deadline=deadline)
    rng = np.random.default_rng(seed + 1)
    ids = list(range(len(req)))
    rows, values = [], []
    for t in range(rounds + 3):
        c0, t0 = time.process_time(), time.perf_counter()
        a = policy.allocate_batch(ids, req, budget)
        got = np.flatnonzero(a.selected)
        rewards = (rng.random(len(got)) < mu[got]).astype(float)
        if len(got):
            policy.observe(a.round, got.tolist(), rewards=rewards)
        t1, c1 = time.perf_counter(), time.process_time()
        if t >= 3:
            o = a.oracle
            rows.append((t1 - t0, o.solve_time, o.gap, "exact_status" in o.info,
                         bool(o.info.get("cut_short")),
                         o.solve_time - deadline if deadline else np.nan, o.objective, c1 - c0,
                         o.bound))
            values.append(a.values.copy())
    return np.asarray(rows, dtype=np.float64), values


def fairness_benchmark(modes: Sequence[str] = ("none", "proportional", "maxmin", "loss"),
                       n: int = 150, rounds: int = 300,
                       instances: Sequence[str] = FAIRNESS_INSTANCES, seed: int = 0,
                       deadline: float | None = None, exact_rounds: int = 20,
                       progress: Callable[[int], object] | None = None) -> pd.DataFrame:
    """Per instance, fairness mode and method: ``rounds`` rounds with learning, timed (ms per
    round: median, p95, p99, worst; the oracle's own median), the certified gap of the answers
    (median and largest, %), the rounds that ran CP-SAT and the rounds a ``deadline`` cut short
    (with their median gap and the largest overrun of the deadline). ``cpu_*``: the round's
    CPU time in this process (median, p99): on a machine shared with other jobs, the wall
    clock also counts the time the process waited for a core. ``exact`` (CP-SAT, a
    generous :data:`EXACT_LIMIT`) solves ``exact_rounds`` of ``auto``'s value vectors, evenly
    spaced; on those, ``obj_mean`` / ``obj_min`` are each method's objective over exact's
    (auto's own answers in those rounds, fast's on the same values) and exact's own time is its
    row's time. Objectives above 1 mean exact stopped at its limit below the optimum.
    ``bound_gap_pct``: on the same rounds, the median of ``(bound − exact's objective) /
    bound`` (%), the part of the certified gap that is the bound's own looseness (the rest,
    ``gap_pct`` minus it, is the answer's distance from the optimum)."""
    out, done = [], 0
    for name in instances:
        inst = INSTANCES[name](n, seed=seed)
        if inst is None:
            continue
        req, budget, mu = inst
        for mode in modes:
            fairness = fairness_config(mode)
            runs = {}
            for method in FAIRNESS_METHODS:
                runs[method] = _fair_rounds(req, budget, mu, fairness, method, rounds, seed,
                                            deadline)
            vals = runs["auto"][1]
            pick = np.unique(np.linspace(0, len(vals) - 1, min(exact_rounds, len(vals)))
                             .astype(int)) if exact_rounds else np.zeros(0, dtype=int)
            ratio = {m: [] for m in FAIRNESS_METHODS}
            loose = {m: [] for m in FAIRNESS_METHODS}
            ex_rows = []
            for i in pick:
                v = vals[i]
                c0 = time.process_time()
                ex = solve(v, req, budget, method="exact", time_limit=EXACT_LIMIT)
                ex_rows.append((ex.solve_time, ex.solve_time, ex.gap, 1.0, 0.0, np.nan,
                                ex.objective, time.process_time() - c0, ex.bound))
                best = max(ex.objective, 1e-300)
                # auto: the answer of the timed round itself (deadline included); fast is
                # deterministic, so solving the same values again gives its answer
                ratio["auto"].append(runs["auto"][0][i, 6] / best)
                fa = solve(v, req, budget, method="fast")
                ratio["fast"].append(fa.objective / best)
                for m, bound in (("auto", runs["auto"][0][i, 8]), ("fast", fa.bound)):
                    loose[m].append((bound - ex.objective) / max(bound, 1e-300))
            table = {m: runs[m][0] for m in FAIRNESS_METHODS}
            if len(ex_rows):
                table["exact"] = np.asarray(ex_rows)
            for m, a in table.items():
                ms = 1e3 * a[:, 0]
                cut = a[:, 4] > 0
                row = {"instance": name, "n": len(req), "K": req.shape[1], "fairness": mode,
                       "method": m, "rounds": len(a),
                       "median_ms": float(np.median(ms)),
                       "p95_ms": float(np.percentile(ms, 95)),
                       "p99_ms": float(np.percentile(ms, 99)),
                       "worst_ms": float(ms.max()),
                       "cpu_median_ms": 1e3 * float(np.median(a[:, 7])),
                       "cpu_p99_ms": 1e3 * float(np.percentile(a[:, 7], 99)),
                       "oracle_ms": 1e3 * float(np.median(a[:, 1])),
                       "gap_pct": 100.0 * float(np.median(a[:, 2])),
                       "gap_max_pct": 100.0 * float(a[:, 2].max()),
                       "cpsat_rounds": int(a[:, 3].sum()),
                       "cut_short": int(cut.sum()),
                       "cut_gap_pct": 100.0 * float(np.median(a[cut, 2])) if cut.any()
                       else float("nan"),
                       "over_deadline_ms": 1e3 * float(np.nanmax(a[:, 5]))
                       if deadline and m != "exact" else float("nan")}
                r = ratio.get(m, [1.0] * len(pick)) if m != "exact" else [1.0] * len(pick)
                row["obj_mean"] = float(np.mean(r)) if len(r) else float("nan")
                row["obj_min"] = float(np.min(r)) if len(r) else float("nan")
                b = loose[m] if m != "exact" else \
                    [(x[8] - x[6]) / max(x[8], 1e-300) for x in ex_rows]
                row["bound_gap_pct"] = 100.0 * float(np.median(b)) if len(b) else float("nan")
                out.append(row)
            done += 1
            if progress is not None:
                progress(done)
    return pd.DataFrame(out)


FAIRNESS_COLUMNS = ["instance", "n", "K", "fairness", "method", "rounds", "median_ms", "p95_ms",
                    "p99_ms", "worst_ms", "cpu_median_ms", "cpu_p99_ms", "oracle_ms", "gap_pct",
                    "gap_max_pct", "cpsat_rounds", "cut_short", "cut_gap_pct", "over_deadline_ms",
                    "obj_mean", "obj_min", "bound_gap_pct"]


def fairness_markdown(df: pd.DataFrame) -> str:
    df = df.reindex(columns=FAIRNESS_COLUMNS)
    lines = ["| " + " | ".join(FAIRNESS_COLUMNS) + " |", "|" + "---|" * len(FAIRNESS_COLUMNS)]
    for _, r in df.iterrows():
        cells = []
        for c in FAIRNESS_COLUMNS:
            v = r[c]
            if isinstance(v, float):
                cells.append("" if np.isnan(v) else f"{v:.5f}" if c.startswith("obj")
                             else f"{v:.3f}" if c.endswith("pct") else f"{v:.2f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
        finite_positive_float,
        name_list,
        nonneg_int,
        positive_int,
        positive_int_list,
    )
    from librex_alloc.progress import Progress

    p = cli_args.ArgumentParser(prog="librex-alloc bench round", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--ns", type=positive_int_list, default=None,
                   help="numbers of agents, comma-separated (default "
                        + ",".join(map(str, DEFAULT_NS)) + ")")
    p.add_argument("--rounds", type=positive_int, default=None,
                   help="timed rounds per cell (default 20)")
    p.add_argument("--k", type=positive_int, default=3,
                   help="resources of the synthetic instance (the trace has its own 4)")
    p.add_argument("--instances", type=name_list(sorted(INSTANCES)), default=None,
                   help="comma-separated: " + ", ".join(INSTANCES) + " (default "
                        "synthetic,alibaba)")
    p.add_argument("--out", default=None, help="also write the table as CSV here")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--fairness", default=None,
                   help="comma-separated fairness modes (none, proportional, maxmin, loss, "
                        "minshare or a number α): the per-mode table instead (fast vs auto vs "
                        "exact; defaults then: --ns 150, --rounds 300, --instances "
                        + ",".join(FAIRNESS_INSTANCES) + ")")
    p.add_argument("--deadline", type=finite_positive_float, default=None,
                   help="with --fairness: the policies' round_deadline in seconds")
    p.add_argument("--exact-rounds", type=nonneg_int, default=20,
                   help="with --fairness: auto's value vectors solved by exact per mode")
    p.set_defaults(ns=None, rounds=None, instances=None)
    a = p.parse_args(argv)
    if a.out:  # before the run, not after it
        check_out_file(p, a.out)
    if a.fairness is not None:
        return _fairness_main(p, a)
    if a.deadline is not None or a.exact_rounds != 20:
        p.error("--deadline and --exact-rounds go with --fairness")
    a.ns = a.ns or list(DEFAULT_NS)
    a.rounds = a.rounds or 20
    names = a.instances or ["synthetic", "alibaba"]
    cells = len(names) * sum(2 * (2 + (n <= EXACT_MAX_N)) for n in a.ns)
    with Progress(cells, "bench round", unit="cells", enabled=not a.no_progress) as bar:
        df = round_benchmark(a.ns, k=a.k, rounds=a.rounds, instances=names, progress=bar)
    print(to_markdown(df))
    if a.out:
        df.to_csv(a.out, index=False)
    return 0


def _fairness_main(p, a) -> int:
    from librex_alloc.errors import InvalidConfigError
    from librex_alloc.progress import Progress

    modes = [s.strip() for s in a.fairness.split(",") if s.strip()]
    if not modes:
        p.error("--fairness: expected at least one mode")
    for m in modes:
        try:
            fairness_config(m)
        except InvalidConfigError as exc:
            p.error(f"--fairness: {exc}")
    names = a.instances or list(FAIRNESS_INSTANCES)
    ns = a.ns or [150]
    if len(ns) != 1:
        p.error("--ns: one number of agents with --fairness")
    with Progress(len(names) * len(modes), "bench round --fairness", unit="cells",
                  enabled=not a.no_progress) as bar:
        df = fairness_benchmark(modes, n=ns[0], rounds=a.rounds or 300, instances=names,
                                deadline=a.deadline, exact_rounds=a.exact_rounds, progress=bar)
    print(fairness_markdown(df))
    if a.out:
        df.to_csv(a.out, index=False)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
