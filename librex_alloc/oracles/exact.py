"""The exact oracle: OR-Tools CP-SAT on a conservatively integer-scaled model.

CP-SAT needs integers. Requests and budgets that are decimals with at most six digits are
scaled exactly; otherwise each resource is scaled so its budget is about 2^24 units, with
requests rounded **up** and the budget rounded **down**, so an integer-feasible answer is
feasible in floating point too (the model is a slight restriction of the real one). Values
are scaled exactly when they are short decimals, else to about 2^40 / max|v| resolution.

Before the model is built, Lagrangian reduced-cost fixing removes every option that cannot
appear in a solution better than the fast oracle's incumbent (its bound with the option
forced is below the incumbent), and forces a choice in groups where choosing nothing cannot
reach it. Typically only a small band of options around the LP threshold stays free.

The search is single-threaded with a fixed seed and a *deterministic* time limit, so the same
input always gives the same output; a wall-clock cap of ``4 × time_limit + 1`` seconds guards
against slow machines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from librex_alloc.oracles._problem import Groups

BUDGET_UNITS = float(2**24)


@dataclass(frozen=True)
class ExactOutcome:
    selected: np.ndarray  # bool (M,)
    proved: bool  # CP-SAT proved optimality of the (scaled) model
    exact_scaling: bool  # the scaled model is the real model
    bound: float  # upper bound from CP-SAT, valid for the real model only if exact_scaling
    status: str  # CP-SAT status name
    free_rows: int


def _decimal_scale(a: np.ndarray, max_digits: int, limit: float) -> float | None:
    """Smallest 10^d (d ≤ max_digits) making ``a`` integral (to 1e-9), if within ``limit``."""
    if a.size == 0:
        return 1.0
    top = float(np.max(np.abs(a)))
    for d in range(max_digits + 1):
        s = 10.0**d
        if top * s > limit:
            return None
        scaled = a * s
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))):
            return s
    return None


def scale_resources(requests, budget) -> tuple[np.ndarray, np.ndarray, bool]:
    """Integer requests (rounded up) and budgets (rounded down); True if the scaling is exact."""
    m, k = requests.shape
    r_int = np.zeros((m, k), dtype=np.int64)
    b_int = np.zeros(k, dtype=np.int64)
    exact = True
    limit = 2.0**62 / max(m, 1)
    for j in range(k):
        col = np.append(requests[:, j], budget[j])
        s = _decimal_scale(col, 6, min(limit, 2.0**40))
        if s is not None:
            r_int[:, j] = np.round(requests[:, j] * s).astype(np.int64)
            b_int[j] = int(np.round(budget[j] * s))
        else:
            exact = False
            s = BUDGET_UNITS / budget[j] if budget[j] > 0 else 1.0
            r_int[:, j] = np.ceil(requests[:, j] * s).astype(np.int64)
            b_int[j] = int(np.floor(budget[j] * s))
    return r_int, b_int, exact


def scale_values(values) -> tuple[np.ndarray, float, bool]:
    """Integer objective coefficients, their scale, and whether the scaling is exact."""
    m = max(len(values), 1)
    limit = min(2.0**40, 2.0**62 / m)
    s = _decimal_scale(values, 6, limit)
    if s is not None:
        return np.round(values * s).astype(np.int64), s, True
    top = float(np.max(np.abs(values))) if len(values) else 1.0
    s = limit / top if top > 0 else 1.0
    return np.round(values * s).astype(np.int64), s, False


def reduced_cost_filter(values, requests, budget, groups: Groups, lam, incumbent_value):
    """Options that may beat the incumbent, and groups that must choose one.

    With ``d = v − R λ`` and ``L = λ·B + Σ_g max(0, max d)``, forcing option i of group g gives
    the bound ``L − D_g + d_i`` and forcing "nothing" gives ``L − D_g``. Returns
    ``(keep_rows: bool (M,), must_choose: bool (G,))``.
    """
    d = values - requests @ lam
    dg = np.maximum(groups.max(d), 0.0)
    lag = float(lam @ budget + dg.sum())
    tol = 1e-7 * (1.0 + abs(incumbent_value)) + 1e-9 * (1.0 + abs(lag))
    keep = lag - dg[groups.gid] + d >= incumbent_value - tol
    must = lag - dg < incumbent_value - tol
    return keep, must


def solve_exact(values, requests, budget, groups: Groups, *, incumbent, keep, must,
                time_limit: float) -> ExactOutcome:
    """CP-SAT on the candidate problem, hinted with the fast oracle's answer ``incumbent`` and
    pruned by :func:`reduced_cost_filter` (``keep``, ``must``) against it."""
    m, _ = requests.shape
    inc_value = float(values[incumbent].sum())
    keep = keep | incumbent  # never drop the hint
    rows = np.nonzero(keep)[0]
    r_int, b_int, exact_r = scale_resources(requests[rows], budget)
    v_int, v_scale, exact_v = scale_values(values[rows])

    # data, model, variables, constraints, objective, solve, read the solution
    model = cp_model.CpModel()
    xs = [model.new_bool_var(f"x{i}") for i in rows]
    for k in range(requests.shape[1]):
        model.add(cp_model.LinearExpr.weighted_sum(xs, r_int[:, k].tolist()) <= int(b_int[k]))
    gsub = groups.gid[rows]
    if not groups.singleton and len(rows):
        order = np.argsort(gsub, kind="stable")
        bounds = np.flatnonzero(np.diff(gsub[order])) + 1
        for members in np.split(order, bounds):
            g = int(gsub[members[0]])
            lits = [xs[i] for i in members]
            if must[g]:
                model.add_exactly_one(lits)
            elif len(lits) > 1:
                model.add_at_most_one(lits)
    elif len(rows):
        for i in np.nonzero(must[gsub])[0]:
            model.add(xs[i] == 1)
    model.maximize(cp_model.LinearExpr.weighted_sum(xs, v_int.tolist()))
    for var, hint in zip(xs, incumbent[rows]):
        model.add_hint(var, bool(hint))

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.linearization_level = 2  # full LP relaxation: ~2x faster on knapsacks
    solver.parameters.max_deterministic_time = float(time_limit)
    solver.parameters.max_time_in_seconds = 4.0 * float(time_limit) + 1.0
    status = solver.solve(model)
    selected = np.zeros(m, dtype=bool)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        sol = np.asarray(solver.response_proto.solution, dtype=np.int64)[: len(rows)]
        selected[rows[sol.astype(bool)]] = True
        bound_int = float(solver.best_objective_bound)
        bound = bound_int / v_scale + 0.5 * groups.n_groups / v_scale
        if exact_v:
            bound = bound_int / v_scale
    else:
        bound = np.inf
    proved = status == cp_model.OPTIMAL
    return ExactOutcome(selected, proved, exact_r and exact_v, max(bound, inc_value),
                        solver.status_name(status), len(rows))
