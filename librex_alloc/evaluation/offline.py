"""Offline study of the oracles under fairness: value vectors cached once, then every variant
of the oracle, or of its bound, compared on the same vectors (issue 18).

``bench round --fairness`` plays each method on its own learning trajectory, so only the
rounds checked against ``exact`` (20 per row) compare answers, and every run re-solves them
(minutes). Here the value vectors of ``auto``'s trajectories are collected once, with
``exact``'s optimum (a generous CP-SAT limit), into one ``.npz`` file; then:

- ``quality``: per instance and fairness mode, how many rounds a method answers below
  99.9 % of the optimum, its worst and mean ratio and its median time per call. The answers
  are deterministic, so two checkouts can be compared on the same file
  (``PYTHONPATH=<other checkout> python -m librex_alloc.evaluation.offline quality F``).
- ``bounds``: how loose each upper bound is against the optimum, ``(bound − opt) / bound``
  in %, and the share of the LP's looseness each one removes: the LP relaxation (the fast
  certificate, over the integer budget of :func:`~librex_alloc.oracles._problem.integer_budget`
  as the oracle uses it), ``auto``'s certificate (after its branching), the LP with rounds of
  extended cover inequalities on the binding resources, and the Lagrangian relaxation that
  keeps one resource row as an exact 0/1 knapsack (the others priced at the LP's duals,
  weights floored to a grid of ``grid`` steps of that row's budget, a valid relaxation), the
  best over the binding rows; with the time each takes per vector.

Usage::

    python -m librex_alloc.evaluation.offline collect --out vectors.npz   # ~3 min at n = 150
    python -m librex_alloc.evaluation.offline quality vectors.npz
    python -m librex_alloc.evaluation.offline bounds vectors.npz [--grid 4096]

The vectors depend on the checkout that collected them (``auto``'s trajectory): keep the file
to compare later changes on the same data.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from librex_alloc import cli_args
from librex_alloc.oracles import solve

MODES = ("none", "proportional", "maxmin", "loss", "minshare")
INSTANCES = ("mixed", "alibaba", "bitbrains", "heterogeneous")
#: ``exact``'s CP-SAT limit (deterministic seconds) for the cached optimum
EXACT_LIMIT = 20.0


def collect(instances: Sequence[str] = INSTANCES,
            modes: Sequence[str] = MODES, n: int = 150, rounds: int = 300, per_row: int = 20,
            seed: int = 0, exact_limit: float = EXACT_LIMIT) -> dict:
    """``per_row`` evenly spaced value vectors of ``auto``'s ``rounds``-round trajectory with
    learning (:func:`~.round_bench._fair_rounds`) per instance and mode, with exact's optimum.
    A dict of arrays (``np.savez`` ready): ``instance``, ``mode``, ``round`` (V,), ``values``
    (V, n), ``optimum`` (V,), ``optimal`` (V,) bool, and per instance ``requests/<name>``,
    ``budget/<name>``."""
    from librex_alloc.evaluation import round_bench as rb

    out: dict = {"instance": [], "mode": [], "round": [], "values": [], "optimum": [],
                 "optimal": []}
    for name in instances:
        inst = rb.INSTANCES[name](n, seed=seed)
        if inst is None:
            continue
        req, budget, mu = inst
        out[f"requests/{name}"], out[f"budget/{name}"] = req, budget
        for mode in modes:
            _, vals = rb._fair_rounds(req, budget, mu, rb.fairness_config(mode), "auto",
                                      rounds, seed, None)
            for i in np.unique(np.linspace(0, len(vals) - 1, per_row).astype(int)):
                ex = solve(vals[i], req, budget, method="exact", time_limit=exact_limit)
                for key, val in (("instance", name), ("mode", mode), ("round", int(i)),
                                 ("values", vals[i]), ("optimum", ex.objective),
                                 ("optimal", ex.status == "optimal")):
                    out[key].append(val)
    return {k: np.asarray(v) for k, v in out.items()}


def _vectors(data):
    for j in range(len(data["instance"])):
        name = str(data["instance"][j])
        yield (name, str(data["mode"][j]), data["values"][j], data[f"requests/{name}"],
               data[f"budget/{name}"], float(data["optimum"][j]))


def quality(data, method: str = "auto", **options) -> pd.DataFrame:
    """Per instance and mode: rounds below 99.9 % of the optimum, worst and mean ratio,
    median ms per call of ``solve(method=method, **options)``."""
    rows = []
    for name, mode, v, req, budget, opt in _vectors(data):
        t = time.perf_counter()
        r = solve(v, req, budget, method=method, **options)
        rows.append((name, mode, r.objective / opt, 1e3 * (time.perf_counter() - t)))
    df = pd.DataFrame(rows, columns=["instance", "mode", "ratio", "ms"])
    g = df.groupby(["instance", "mode"], sort=False)
    out = pd.DataFrame({"vectors": g.size(),
                        "below_99.9": g["ratio"].apply(lambda r: int((r < 0.999).sum())),
                        "worst": g["ratio"].min(), "mean": g["ratio"].mean(),
                        "median_ms": g["ms"].median()}).reset_index()
    total = {"instance": "all", "mode": "", "vectors": len(df),
             "below_99.9": int((df["ratio"] < 0.999).sum()), "worst": df["ratio"].min(),
             "mean": df["ratio"].mean(), "median_ms": df["ms"].median()}
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


# ----------------------------------------------------------------------------- bounds


def _lp(values, a_rows, rhs):
    """max v·x, a_rows x <= rhs, 0 <= x <= 1 (HiGHS through SciPy): (value, x, row duals)."""
    from scipy.optimize import linprog

    res = linprog(-values, A_ub=a_rows, b_ub=rhs, bounds=(0, 1), method="highs")
    if res.status != 0:
        raise RuntimeError(f"LP failed: {res.message}")
    return -res.fun, res.x, -res.ineqlin.marginals


def _covers(x, requests, budget):
    """Violated extended cover inequalities ``Σ_{C ∪ E} x ≤ |C| − 1``, one per binding row:
    the cover ``C`` taken greedily by ``(1 − x) / r`` (the LP's whole options first), made
    minimal, extended by every option at least as large as its largest member. A cover must
    exceed the budget by a relative 1e-9 (beyond any float summation error). Rows (a, rhs)."""
    cuts = []
    for k in range(requests.shape[1]):
        r, b = requests[:, k], budget[k] * (1.0 + 1e-9)
        if r.sum() <= b:
            continue
        order = np.argsort((1.0 - x) / np.maximum(r, 1e-300), kind="stable")
        t = int(np.searchsorted(np.cumsum(r[order]), b, side="right"))
        if t >= len(r):
            continue
        cover = list(order[:t + 1])
        for i in sorted(cover, key=lambda i: x[i]):  # minimal: drop the smallest x first
            if r[cover].sum() - r[i] > b:
                cover.remove(i)
        rhs = len(cover) - 1
        members = np.union1d(cover, np.flatnonzero(r >= r[cover].max()))
        if x[members].sum() > rhs + 1e-6:
            row = np.zeros(len(x))
            row[members] = 1.0
            cuts.append((row, float(rhs)))
    return cuts


def _knapsack(profits, weights, capacity: int) -> float:
    """The 0/1 knapsack optimum ``max Σ p x`` with integer ``weights`` ≤ ``capacity`` (DP)."""
    f = np.zeros(capacity + 1)
    for p, w in zip(profits, weights):
        if w == 0:
            f += p
        elif w <= capacity:
            f[w:] = np.maximum(f[w:], f[:-w] + p)
    return float(f[-1])


def bound_study(values, requests, budget, *, grid: int = 4096, cover_rounds: int = 5) -> dict:
    """Upper bounds on one problem (one option per agent): ``lp``, ``covers`` (the LP with
    ``cover_rounds`` rounds of :func:`_covers`), ``lagrange1`` (one row kept exact, the best
    binding row; see the module), each with its seconds (``*_s``)."""
    from librex_alloc.oracles._problem import integer_budget

    keep = (values > 0) & np.all(requests <= budget, axis=1)
    v, req = values[keep], requests[keep]
    binding = req.sum(axis=0) > budget
    b = integer_budget(req, budget, binding)
    k = np.flatnonzero(binding)
    a, rhs = req[:, k].T / b[k, None], np.ones(len(k))
    out = {}
    t = time.perf_counter()
    lp, x, duals = _lp(v, a, rhs)
    out["lp"], out["lp_s"] = lp, time.perf_counter() - t
    t = time.perf_counter()
    rows, cut_rhs, z = [], [], lp
    for _ in range(cover_rounds):
        new = _covers(x, req[:, k], b[k])
        if not new:
            break
        rows += [c[0] for c in new]
        cut_rhs += [c[1] for c in new]
        z, x, _ = _lp(v, np.vstack([a, *rows]), np.concatenate([rhs, cut_rhs]))
    out["covers"], out["covers_s"] = min(z, lp), out["lp_s"] + time.perf_counter() - t
    t = time.perf_counter()
    lam = np.maximum(duals, 0.0) / b[k]  # per unit of each binding resource
    best = lp
    for j in range(len(k)):
        if lam[j] <= 0:
            continue
        other = np.arange(len(k)) != j
        d = v - req[:, k[other]] @ lam[other]
        pos = d > 0
        w = np.floor(req[pos, k[j]] / b[k[j]] * grid).astype(np.int64)
        best = min(best, float(lam[other] @ b[k[other]]) + _knapsack(d[pos], w, grid))
    out["lagrange1"], out["lagrange1_s"] = best, out["lp_s"] + time.perf_counter() - t
    return out


def bounds(data, grid: int = 4096) -> pd.DataFrame:
    """Per instance and mode, medians over the vectors: each bound's looseness against the
    optimum (``*_pct``: (bound − opt) / bound, %), the share of the LP's looseness it removes
    (``*_closed``, over the vectors where the LP is looser than 1e-6; NaN if none) and its ms
    per vector; ``auto`` is the oracle's own certificate (its ms: the whole ``solve``). The
    study's LPs are SciPy's ``linprog`` (HiGHS, tolerance ~1e-7, rebuilt per call: ~2 ms
    here against ~0.5 ms for the oracle's warm model), so ``lp``, ``covers`` and
    ``lagrange1`` times include that LP; they are the study's costs, not an oracle's."""
    rows = []
    for name, mode, v, req, budget, opt in _vectors(data):
        s = bound_study(v, req, budget, grid=grid)
        t = time.perf_counter()
        s["auto"] = solve(v, req, budget, method="auto").bound
        s["auto_s"] = time.perf_counter() - t
        row = {"instance": name, "mode": mode}
        for key in ("lp", "auto", "covers", "lagrange1"):
            row[f"{key}_pct"] = 100.0 * (s[key] - opt) / s[key]
            # the share of the LP's looseness removed; undefined where the LP is tight already
            loose = s["lp"] - opt
            row[f"{key}_closed"] = (s["lp"] - s[key]) / loose if loose > 1e-6 * opt else np.nan
            row[f"{key}_ms"] = 1e3 * s[f"{key}_s"]
        rows.append(row)
    df = pd.DataFrame(rows)
    cols = [c for c in df.columns if c not in ("instance", "mode", "lp_closed")]
    out = df.groupby(["instance", "mode"], sort=False)[cols].median().reset_index()
    total = {"instance": "all", "mode": "", **df[cols].median().to_dict()}
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m librex_alloc.evaluation.offline",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("collect", help="cache value vectors and exact's optima")
    c.add_argument("--out", required=True, help="the .npz file to write")
    c.add_argument("--instances", type=cli_args.name_list(INSTANCES), default=list(INSTANCES))
    c.add_argument("--modes", type=cli_args.name_list(MODES), default=list(MODES))
    c.add_argument("--n", type=cli_args.positive_int, default=150)
    c.add_argument("--rounds", type=cli_args.positive_int, default=300)
    c.add_argument("--per-row", type=cli_args.positive_int, default=20)
    c.add_argument("--seed", type=cli_args.nonneg_int, default=0,
                   help="the instances' and the trajectories' seed")
    c.add_argument("--exact-limit", type=cli_args.finite_positive_float, default=EXACT_LIMIT)
    q = sub.add_parser("quality", help="a method's answers against the optima")
    q.add_argument("file")
    q.add_argument("--method", choices=("auto", "fast", "exact"), default="auto")
    bd = sub.add_parser("bounds", help="upper bounds against the optima")
    bd.add_argument("file")
    bd.add_argument("--grid", type=cli_args.positive_int, default=4096)
    a = p.parse_args(argv)
    pd.set_option("display.width", 250)
    if a.what == "collect":
        data = collect(a.instances, a.modes, n=a.n, rounds=a.rounds, per_row=a.per_row,
                       seed=a.seed, exact_limit=a.exact_limit)
        np.savez_compressed(a.out, **data)
        print(f"{len(data['values'])} vectors ({int(data['optimal'].sum())} proven optimal) "
              f"written to {a.out}")
        return 0
    try:
        data = dict(np.load(a.file, allow_pickle=False))
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {a.file}: {exc}", file=sys.stderr)
        return 2
    need = {"instance", "mode", "values", "optimum"} | \
        {f"{w}/{name}" for name in map(str, data.get("instance", ())) for w in ("requests",
                                                                              "budget")}
    if not need <= set(data):
        print(f"error: {a.file} is not a file of the 'collect' step (missing "
              f"{', '.join(sorted(need - set(data)))})", file=sys.stderr)
        return 2
    if a.what == "quality":
        df = quality(data, a.method)
    else:
        df = bounds(data, a.grid)
    print(df.to_string(index=False, float_format=lambda x: f"{x:.5g}"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
