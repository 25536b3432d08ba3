"""The original design's SCIP model, kept **for benchmarking only**.

:func:`solve_scip_reference` rebuilds the design's ``_allocate_ortools`` model on every call,
as the design did every round: ``pywraplp.Solver.CreateSolver("SCIP")``, one ``BoolVar`` per
agent, objective ``Σ v_i x_i`` (maximize), one constraint ``0 ≤ Σ_i r_ik x_i ≤ B_k`` per
resource. Nothing is pruned or scaled, there are no option groups, and SCIP's feasibility
tolerance (~1e-6) is not the library's float64 budget check, so its answer is *not* guaranteed
to pass ``requests[selected].sum(axis=0) <= budget`` (``info["float_feasible"]`` says whether it
does). Use :func:`librex_alloc.oracles.solve` for allocation; this module only measures the
baseline that SPEC §8.5 calls too slow past about a hundred agents.
"""

from __future__ import annotations

import math
import time

import numpy as np
from ortools.linear_solver import pywraplp

from librex_alloc.oracles import OracleResult

_STATUS = {
    pywraplp.Solver.OPTIMAL: "optimal",
    pywraplp.Solver.FEASIBLE: "feasible",
    pywraplp.Solver.INFEASIBLE: "infeasible",
    pywraplp.Solver.UNBOUNDED: "unbounded",
    pywraplp.Solver.ABNORMAL: "abnormal",
    pywraplp.Solver.NOT_SOLVED: "not_solved",
    pywraplp.Solver.MODEL_INVALID: "model_invalid",
}


def solve_scip_reference(values, requests, budget, time_limit: float | None = None
                         ) -> OracleResult:
    """The design's per-round SCIP model (benchmark reference, not a library oracle).

    values: (n,) float; requests: (n, K) float resource units; budget: (K,) float, same units.
    time_limit: wall seconds for SCIP (``solver.set_time_limit``), None for no limit.
    Returns an :class:`~librex_alloc.oracles.OracleResult` with method ``"scip-reference"``:
    ``objective = Σ values[selected]``, ``bound`` = SCIP's best bound (nan if unavailable),
    ``status`` = SCIP's status in lower case (``"optimal"``, ``"feasible"`` after a time limit,
    ``"not_solved"``, ...), ``solve_time`` = wall seconds including the model build.
    """
    t0 = time.perf_counter()
    values = np.asarray(values, dtype=np.float64)
    requests = np.asarray(requests, dtype=np.float64)
    budget = np.asarray(budget, dtype=np.float64)
    n, k = requests.shape

    # model and variables: x[i] = 1 if agent i is allocated
    solver = pywraplp.Solver.CreateSolver("SCIP")
    if not solver:  # pragma: no cover - depends on the OR-Tools build
        raise RuntimeError("OR-Tools SCIP solver not available")
    x = [solver.BoolVar(f"x_{i}") for i in range(n)]
    # objective: maximize total value
    objective = solver.Objective()
    for i in range(n):
        objective.SetCoefficient(x[i], float(values[i]))
    objective.SetMaximization()
    # constraints: budget for each resource type
    for j in range(k):
        constraint = solver.Constraint(0, float(budget[j]))
        for i in range(n):
            constraint.SetCoefficient(x[i], float(requests[i, j]))
    if time_limit is not None:
        solver.set_time_limit(max(1, int(round(1000.0 * float(time_limit)))))

    # solve and read the solution and its status
    status = solver.Solve()
    selected = np.zeros(n, dtype=bool)
    if status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        selected = np.array([var.solution_value() > 0.5 for var in x], dtype=bool)
    try:
        bound = float(objective.BestBound())
    except Exception:  # pragma: no cover - older OR-Tools builds
        bound = math.nan
    obj = float(values[selected].sum())
    float_feasible = bool(np.all(requests[selected].sum(axis=0) <= budget))
    elapsed = time.perf_counter() - t0
    return OracleResult(selected, selected.astype(np.float64), obj, bound,
                        _STATUS.get(status, f"status_{status}"), "scip-reference", elapsed,
                        {"float_feasible": float_feasible, "solver_wall_ms": solver.wall_time()})


__all__ = ["solve_scip_reference"]
