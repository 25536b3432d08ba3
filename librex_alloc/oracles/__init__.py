"""Per-round budget oracles behind one function, :func:`solve`.

``solve(values, requests, budget, groups=None, method="auto")`` maximizes ``Σ v_i x_i`` subject
to ``Σ r_ik x_i ≤ B_k`` for every resource and at most one chosen row per group. Every method
returns an :class:`OracleResult` that respects the budget in float64 (the canonical check is
``requests[selected].sum(axis=0) <= budget``) and carries a valid upper ``bound``: its gap is
a certificate. Methods:

- ``"exact"``: CP-SAT (OR-Tools) on a conservatively integer-scaled model (see
  :mod:`librex_alloc.oracles.exact`), after the fast oracle's pruning and with its hint.
- ``"fast"``: LP relaxation (working-set HiGHS), rounding, greedy repair by dual-adjusted
  density and swaps (see :mod:`librex_alloc.oracles.fast`). Approximate; the LP bound certifies it.
- ``"auto"``: the fast answer when its certificate already proves it optimal, else exact
  under the time limit, else the better of the two.

With ``divisible=True`` the LP relaxation itself is returned: ``fractions`` in [0, 1] (the
fractional knapsack when K = 1), method ``"lp"``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from librex_alloc.errors import InvalidConfigError
from librex_alloc.oracles._problem import (
    Groups,
    Problem,
    candidate_rows,
    lagrangian_bound,
    make_problem,
    selection_is_feasible,
)
from librex_alloc.oracles.exact import reduced_cost_filter, solve_exact
from librex_alloc.oracles.fast import (
    density_key,
    fractional_from_relaxation,
    round_relaxation,
)
from librex_alloc.oracles.relaxation import solve_relaxation

METHODS = ("auto", "exact", "fast")
#: Default CP-SAT deterministic time limits (about seconds here). ``auto`` is meant for the
#: round loop: it keeps CP-SAT short and falls back to the certified fast answer.
DEFAULT_TIME_LIMIT = {"exact": 10.0, "auto": 0.25, "fast": 0.0}
#: ``auto`` skips CP-SAT when more options than this stay free after reduced-cost fixing.
AUTO_MAX_FREE_ROWS = 2000


@dataclass(frozen=True)
class OracleResult:
    """The answer of one oracle call.

    selected: bool (N,); fractions: float (N,) in [0, 1] (1.0 where selected unless divisible);
    objective: ``Σ values·fractions``; bound: an upper bound on the optimum (of the LP in
    divisible mode); status: ``"optimal"`` (proved) or ``"feasible"``; method: the method whose
    answer this is (``"exact"``, ``"fast"``, ``"lp"`` or ``"trivial"``); solve_time in seconds.
    ``status == "optimal"`` means proved: either the bound meets the objective, or CP-SAT
    proved its integer model optimal; when that model's scaling was not exact
    (``info["exact_scaling"] is False``) it is the real problem with every request rounded
    up by less than 2^-24 of its budget, so ``bound`` may still sit above ``objective``.
    """

    selected: np.ndarray
    fractions: np.ndarray
    objective: float
    bound: float
    status: str
    method: str
    solve_time: float
    info: dict = field(default_factory=dict, compare=False)

    @property
    def gap(self) -> float:
        """Relative gap ``(bound − objective) / |bound|`` (0 when both are 0)."""
        if self.bound == 0:
            return 0.0
        return max(0.0, (self.bound - self.objective) / abs(self.bound))


def _empty(n: int, method: str, t0: float, bound: float = 0.0, objective: float = 0.0,
           selected: np.ndarray | None = None, fractions=None, status="optimal", info=None):
    sel = np.zeros(n, dtype=bool) if selected is None else selected
    frac = sel.astype(np.float64) if fractions is None else fractions
    return OracleResult(sel, frac, float(objective), float(max(bound, objective)), status, method,
                        time.perf_counter() - t0, info or {})


def _best_per_group(values: np.ndarray, groups: Groups) -> np.ndarray:
    """With no binding resource: the best positive option of every group."""
    _, _, arg = groups.top_two(values)
    sel = np.zeros(len(values), dtype=bool)
    sel[arg[arg >= 0]] = True
    return sel


def _guard(problem: Problem, selected: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, bool]:
    """Enforce the canonical float check; returns (selection, repaired)."""
    if selection_is_feasible(problem.requests, problem.budget, selected, problem.groups):
        return selected, False
    selected = selected.copy()
    for i in np.nonzero(selected)[0][np.argsort(key[selected], kind="stable")]:
        selected[i] = False
        if selection_is_feasible(problem.requests, problem.budget, selected, problem.groups):
            break
    return selected, True


def solve(values, requests, budget, *, groups=None, method: str = "auto",
          time_limit: float | None = None, divisible: bool = False) -> OracleResult:
    """Solve one round's allocation problem.

    values: (N,) float, the value of choosing each row; rows with value ≤ 0 are never chosen.
    requests: (N, K) float ≥ 0, resource units. budget: (K,) float ≥ 0, same units.
    groups: (N,) ints or None; rows sharing a label are options of one agent (≤ 1 chosen).
    method: "auto", "exact" or "fast". time_limit: seconds of CP-SAT deterministic time
    (default 10 for exact, 0.25 for auto). divisible: return the LP's fractions instead.

    Raises :class:`~librex_alloc.errors.InvalidInputError` on NaN/inf, negative requests or
    budget, or inconsistent shapes, and :class:`~librex_alloc.errors.InvalidConfigError` on an
    unknown method or a bad time limit.
    """
    t0 = time.perf_counter()
    if method not in METHODS:
        raise InvalidConfigError(f"method: expected one of {METHODS}, got {method!r}")
    if time_limit is None:
        time_limit = DEFAULT_TIME_LIMIT[method]
    elif not (isinstance(time_limit, (int, float)) and np.isfinite(time_limit) and time_limit > 0):
        raise InvalidConfigError(f"time_limit: expected a positive number, got {time_limit!r}")
    problem = make_problem(values, requests, budget, groups)
    n = problem.n
    # 0/1: a row must fit on its own; divisible: any positive-value row may get a fraction
    rows = np.nonzero(problem.values > 0)[0] if divisible else candidate_rows(problem)
    dropped_value = 0.0
    if divisible and len(rows):
        # the largest fraction a row can get on its own; rows that could get less than 1e-12
        # of their request are left out (keeping the LP well scaled) and their value at that
        # cap is added to the bound, so the bound stays valid
        req = problem.requests[rows]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(req > 0, problem.budget / np.where(req > 0, req, 1.0), np.inf)
        cap = np.minimum(ratio.min(axis=1) if problem.k else np.ones(len(rows)), 1.0)
        tiny = cap < 1e-12
        dropped_value = float(problem.values[rows[tiny]] @ cap[tiny])
        rows = rows[~tiny]
    if len(rows) == 0:
        return _empty(n, "trivial", t0, bound=dropped_value)
    v = problem.values[rows]
    g = problem.groups.subset(rows)
    binding = problem.requests[rows].sum(axis=0) > problem.budget
    r = problem.requests[rows][:, binding]
    b = problem.budget[binding]

    def lift(sub_selected: np.ndarray) -> np.ndarray:
        full = np.zeros(n, dtype=bool)
        full[rows[sub_selected]] = True
        return full

    if not binding.any():  # everything fits: take the best option of every group
        sel = lift(_best_per_group(v, g))
        if divisible:  # its canonical check sums in another order: it may miss by an ulp
            over = sel.astype(np.float64) @ problem.requests > problem.budget
            binding = over[:] if over.any() else binding
        if not binding.any():
            obj = float(problem.values[sel].sum())
            return _empty(n, "trivial", t0, bound=obj, objective=obj, selected=sel)
        r = problem.requests[rows][:, binding]
        b = problem.budget[binding]

    # the LP works in budget units (every binding B_k > 0): well scaled whatever the units
    rs = r / b
    bs = np.ones_like(b)
    relax = solve_relaxation(v, rs, bs, g)
    lam = relax.lam / b  # prices per original resource unit
    info = {"lp_rows": relax.lp_rows, "lp_converged": relax.converged, "candidates": len(rows)}
    if divisible:
        x = fractional_from_relaxation(rs, bs, relax)
        frac = np.zeros(n)
        frac[rows] = x
        if not problem.groups.singleton:  # HiGHS tolerance can leave a group at 1 + 1 ulp
            gsum = np.bincount(problem.groups.gid, weights=frac, minlength=problem.groups.n_groups)
            over = gsum > 1.0
            if over.any():
                scale = np.where(over, (1.0 - 1e-12) / np.where(over, gsum, 1.0), 1.0)
                frac *= scale[problem.groups.gid]
        # the canonical check on the full arrays: fractions @ requests <= budget
        for _ in range(8):
            usage = frac @ problem.requests
            over = usage > problem.budget
            if not over.any():
                break
            frac *= np.min(problem.budget[over] / usage[over]) * (1.0 - 1e-12)
        else:  # pragma: no cover - never seen
            frac[:] = 0.0
        x = frac[rows]
        obj = float(v @ x)
        status = "optimal" if relax.converged else "feasible"
        return _empty(n, "lp", t0, bound=relax.bound + dropped_value, objective=obj,
                      selected=frac > 0, fractions=frac, status=status, info=info)

    sel_fast = round_relaxation(v, rs, bs, g, relax)
    obj_fast = float(v[sel_fast].sum())
    tol = 1e-9 * (1.0 + abs(relax.bound))
    fast_optimal = obj_fast >= relax.bound - 2 * tol
    key_full = np.zeros(n)
    key_full[rows] = density_key(v, rs, bs, relax.lam)

    chosen, chosen_obj, used, status, bound = sel_fast, obj_fast, "fast", "feasible", relax.bound
    if fast_optimal:
        status = "optimal"
    if method == "exact" or (method == "auto" and not fast_optimal):
        keep, must = reduced_cost_filter(v, r, b, g, lam, obj_fast)
        if method == "exact" or int(keep.sum()) <= AUTO_MAX_FREE_ROWS:
            out = solve_exact(v, r, b, g, incumbent=sel_fast, keep=keep, must=must,
                              time_limit=time_limit)
            obj_ex = float(v[out.selected].sum())
            info.update(exact_status=out.status, exact_free_rows=out.free_rows,
                        exact_scaling=out.exact_scaling)
            if out.exact_scaling:
                bound = min(bound, out.bound)
            # CP-SAT's answer, unless the fast one is strictly better (only possible when the
            # conservative scaling excluded the hint). "optimal": CP-SAT proved its model
            # optimal; with inexact scaling that model rounds requests up by < 2^-24 of the
            # budget (info["exact_scaling"]); ``bound`` stays valid for the real problem.
            if obj_ex >= obj_fast:
                chosen, chosen_obj, used = out.selected, obj_ex, "exact"
                status = "optimal" if out.proved or obj_ex >= bound - 2 * tol else "feasible"
    selected, repaired = _guard(problem, lift(chosen), key_full)
    if repaired:
        status = "feasible"
        chosen_obj = float(problem.values[selected].sum())
    info["repaired"] = repaired
    return _empty(n, used, t0, bound=bound, objective=chosen_obj, selected=selected,
                  status=status, info=info)


__all__ = ["solve", "OracleResult", "METHODS", "lagrangian_bound"]
