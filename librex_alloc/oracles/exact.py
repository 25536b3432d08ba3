"""The exact oracle: OR-Tools CP-SAT on integer-scaled models, with proofs for the float data.

CP-SAT needs integers. The caller normalizes (largest value in [0.5, 1), every budget in
[0.5, 1), by powers of two); each resource is then scaled by a power of two ``s`` so its budget
is about 2^24 units, and the values by a power of two ``S`` so their sum is about 2^52 units.
Two integer models bracket the float problem, whose feasibility is the canonical float64
check ``requests[selected].sum(axis=0) <= budget``:

- the **relaxed** model (requests rounded *down*, budgets rounded *up* by more than any float
  summation error) admits every selection that passes the float check, so its optimum,
  plus the value rounding ``Σ_g max_{i∈g} (v_i S − ⌊v_i S⌋) / S``, bounds the float optimum.
  When its optimal selection passes the float check it is optimal for the float data (up to
  that value rounding, about 2^-52 of the values' sum). When it fails, a no-good cut excludes
  exactly that selection (it is infeasible) and the model is solved again, a few times.
- the **conservative** model (requests rounded *up*, budgets *down*) admits only selections
  that pass the float check; it gives a feasible answer when the relaxed one does not.

When every scaled request and budget is an integer (integer or dyadic data) the two models
coincide with the float problem (its float sums are exact) and one solve suffices.

Before the models are built, Lagrangian reduced-cost fixing removes every option that cannot
appear in a solution better than the fast oracle's incumbent (its bound with the option
forced is below the incumbent), and forces a choice in groups where choosing nothing cannot
reach it. Typically only a small band of options around the LP threshold stays free.

The search is single-threaded with a fixed seed and a *deterministic* time limit shared by
all solves of one call, so the same input always gives the same output; a wall-clock cap of
``4 × time_limit + 1`` seconds per solve guards against slow machines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from librex_alloc.errors import OracleError
from librex_alloc.oracles._problem import TINY, Groups, binary_exponent, matvec, sum_rtol

if TYPE_CHECKING:  # CP-SAT is imported where a model is built: a light import of the package
    from ortools.sat.python import cp_model

#: A budget is scaled to about 2^RESOURCE_BITS integer units (fewer for very many rows).
#: CP-SAT is ~3x slower with 2^40 than with 2^24 (n = 200, K = 3); the resolution only decides
#: how often the relaxed optimum misses the float check (then a no-good cut) by < m·2^-24.
RESOURCE_BITS = 24
#: The values are scaled so their sum is at most 2^VALUE_BITS units (exact in float64).
VALUE_BITS = 52
#: No-good cuts on the relaxed model before falling back to the conservative one.
MAX_CUTS = 4
#: Under a wall-clock limit, another model is solved only with at least this much time left.
MIN_WALL_SECONDS = 0.003


@dataclass(frozen=True)
class ExactOutcome:
    """selected: bool (M,), passes the float check (the incumbent when nothing better was
    found); bound: an upper bound on the float optimum over the candidate rows (normalized
    value units; inf if none was obtained); proved: the relaxed model was solved to optimality
    and its optimum passes the float check; status: the last CP-SAT status name; models:
    CP-SAT solves; exact_scaling: the integer models are the float problem itself."""

    selected: np.ndarray
    bound: float
    proved: bool
    status: str
    free_rows: int
    models: int
    exact_scaling: bool


def resource_scale(requests, budget) -> np.ndarray:
    """Per resource, a power of two ``s`` (K,) that puts the budget at about 2^RESOURCE_BITS
    units and keeps ``Σ_i ⌈r_ik s⌉ + ⌈B_k s⌉`` below 2^61."""
    m = requests.shape[0]
    bits = min(RESOURCE_BITS, 59 - int(np.ceil(np.log2(m + 2))))
    top = np.maximum(budget, requests.max(axis=0, initial=0.0))
    top = np.where(top > 0, top, 1.0)
    return np.ldexp(1.0, bits - binary_exponent(top))


def integer_resources(requests, budget) -> tuple[tuple, tuple, bool]:
    """The relaxed ``(r_lo, b_hi)`` and conservative ``(r_hi, b_lo)`` int64 models and whether
    the scaling is exact (then both are the float problem; see the module docstring)."""
    m, k = requests.shape
    s = resource_scale(requests, budget)
    scaled = requests * s  # exact: powers of two, no overflow (r <= 2^RESOURCE_BITS)
    bs = budget * s
    r_lo, r_hi = np.floor(scaled), np.ceil(scaled)
    exact = bool(np.array_equal(r_lo, r_hi) and np.all(bs == np.floor(bs))
                 and np.all(r_lo.sum(axis=0) + bs <= 2.0**53))
    if exact:
        b = bs.astype(np.int64)
        model = (r_lo.astype(np.int64), b)
        return model, model, True
    eps = 2.0 * sum_rtol(m)  # float sums of m terms err by less than half of this
    b_hi = np.ceil(bs * (1.0 + eps)) + 1.0
    b_lo = np.maximum(np.floor(bs * (1.0 - eps)) - 1.0, 0.0)
    relaxed = (r_lo.astype(np.int64), b_hi.astype(np.int64))
    conservative = (r_hi.astype(np.int64), b_lo.astype(np.int64))
    return relaxed, conservative, False


def integer_values(values) -> tuple[np.ndarray, np.ndarray, float]:
    """``w = ⌊v S⌋`` (int64, M), the remainders ``v S − w`` in [0, 1) and the power of two S."""
    total = float(np.abs(values).sum())
    if total == 0:
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values)), 1.0
    scale = float(np.ldexp(1.0, VALUE_BITS - int(binary_exponent(total))))
    scaled = values * scale
    w = np.floor(scaled)
    return w.astype(np.int64), scaled - w, scale


def reduced_cost_filter(values, requests, budget, groups: Groups, lam, incumbent_value):
    """Options that may beat the incumbent, and groups that must choose one.

    With ``d = v − R λ`` and ``L = λ·B + Σ_g max(0, max d)``, forcing option i of group g gives
    the bound ``L − D_g + d_i`` and forcing "nothing" gives ``L − D_g``. Returns
    ``(keep_rows: bool (M,), must_choose: bool (G,))``. The tolerance is relative (1e-7 of
    ``L``) plus the float error of evaluating the bounds, so nothing that could beat the
    incumbent is removed.
    """
    m, k = requests.shape
    rl = matvec(requests, lam) if k else np.zeros(m)
    d = values - rl
    dg = np.maximum(groups.max(d), 0.0)
    lag = float(lam @ budget + dg.sum())
    mag = float(np.abs(values).sum() + rl.sum() + lam @ budget)
    tol = 1e-7 * abs(lag) + 2.0 * sum_rtol(m + k) * mag
    keep = lag - dg[groups.gid] + d >= incumbent_value - tol
    must = lag - dg < incumbent_value - tol
    return keep, must


def _model(v_int, r_int, b_int, gsub, singleton, must, hint):
    """A CP-SAT model: maximize ``v_int · x`` s.t. ``r_int^T x <= b_int``, ≤ 1 per group
    (exactly one where ``must``), hinted with ``hint``. Returns (model, variables)."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    xs = [model.new_bool_var(f"x{i}") for i in range(len(v_int))]
    for k in range(r_int.shape[1]):
        model.add(cp_model.LinearExpr.weighted_sum(xs, r_int[:, k].tolist()) <= int(b_int[k]))
    if not singleton and len(xs):
        order = np.argsort(gsub, kind="stable")
        bounds = np.flatnonzero(np.diff(gsub[order])) + 1
        for members in np.split(order, bounds):
            lits = [xs[i] for i in members]
            if must[int(gsub[members[0]])]:
                model.add_exactly_one(lits)
            elif len(lits) > 1:
                model.add_at_most_one(lits)
    elif len(xs):
        for i in np.nonzero(must[gsub])[0]:
            model.add(xs[i] == 1)
    model.maximize(cp_model.LinearExpr.weighted_sum(xs, v_int.tolist()))
    for var, h in zip(xs, hint, strict=True):
        model.add_hint(var, bool(h))
    return model, xs


def _run(model, time_limit: float, gap_limit: float = 0.0, wall_limit: float | None = None
         ) -> tuple[cp_model.CpSolver, int]:
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.relative_gap_limit = float(gap_limit)
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.linearization_level = 2  # full LP relaxation: ~2x faster on knapsacks
    solver.parameters.max_deterministic_time = float(time_limit)
    wall = 4.0 * float(time_limit) + 1.0
    if wall_limit is not None:
        wall = max(min(wall, float(wall_limit)), 1e-4)
    solver.parameters.max_time_in_seconds = wall
    status = solver.solve(model)
    if status == cp_model.MODEL_INVALID:
        raise OracleError(f"CP-SAT rejected the scaled model: {model.validate()}")
    return solver, status


def solve_exact(values, requests, budget, groups: Groups, *, incumbent, keep, must,
                time_limit: float, fits: Callable[[np.ndarray], bool],
                gap_limit: float = 0.0, wall_limit: float | None = None) -> ExactOutcome:
    """CP-SAT on the candidate problem (normalized units), hinted with the fast oracle's answer
    ``incumbent`` (bool (M,), passes ``fits``) and pruned by :func:`reduced_cost_filter`
    (``keep``, ``must``) against it. ``fits(selected (M,)) -> bool`` is the canonical float
    check in the caller's units; every answer returned passes it. ``gap_limit``: CP-SAT stops
    once its relative gap is at most this (``relative_gap_limit``; 0: prove optimality).
    ``wall_limit``: seconds of wall-clock time for all solves of the call (None: only the
    deterministic ``time_limit``, guarded by ``4 × time_limit + 1`` seconds per solve)."""
    from ortools.sat.python import cp_model

    m, _ = requests.shape
    keep = keep | incumbent  # never drop the hint
    rows = np.nonzero(keep)[0]
    relaxed, conservative, exact = integer_resources(requests[rows], budget)
    w, rem, v_scale = integer_values(values[rows])
    gsub = groups.gid[rows]
    # value rounding: a selection takes at most one row per group
    slack = float(groups.subset(rows).max(rem).sum()) if len(rows) else 0.0
    hint = incumbent[rows]
    best = incumbent.copy()
    best_value = float(values[incumbent].sum())
    bound, proved, status_name, models = np.inf, False, "NOT_RUN", 0
    remaining = float(time_limit)
    wall_end = None if wall_limit is None else time.perf_counter() + float(wall_limit)

    def wall_left() -> float | None:
        return None if wall_end is None else wall_end - time.perf_counter()

    def lift(sol: np.ndarray) -> np.ndarray:
        sel = np.zeros(m, dtype=bool)
        sel[rows[sol]] = True
        return sel

    model, xs = _model(w, *relaxed, gsub, groups.singleton, must, hint)
    if wall_end is not None and wall_left() <= 0:  # building the model took the time left
        return ExactOutcome(best, bound, proved, "NOT_RUN", len(rows), models, exact)
    done = False  # a relaxed-model answer that passes the float check, proved or within the gap
    for cut in range(MAX_CUTS + 1):
        solver, status = _run(model, remaining, gap_limit, wall_left())
        models += 1
        remaining -= solver.deterministic_time
        status_name = solver.status_name(status)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            break
        # every float-feasible selection is in the relaxed model (cuts remove infeasible ones)
        b_int = float(solver.best_objective_bound)
        bound = min(bound, float(np.nextafter((b_int + slack) / v_scale, np.inf)))
        sol = np.asarray(solver.response_proto.solution, dtype=np.int64)[: len(rows)] > 0
        sel = lift(sol)
        if fits(sel):
            value = float(values[sel].sum())
            if value > best_value:
                best, best_value = sel, value
            obj_int = float(solver.objective_value)
            # with a gap limit CP-SAT reports OPTIMAL once within it: proved only if closed
            proved = status == cp_model.OPTIMAL and b_int <= obj_int
            done = proved or (status == cp_model.OPTIMAL
                              and b_int - obj_int <= gap_limit * max(1.0, abs(obj_int)))
            break
        if status != cp_model.OPTIMAL or cut == MAX_CUTS or remaining <= 0 or \
                (wall_end is not None and wall_left() <= MIN_WALL_SECONDS):
            break
        # exclude exactly this (float-infeasible) selection and solve again
        sign = np.where(sol, 1, -1).tolist()
        model.add(cp_model.LinearExpr.weighted_sum(xs, sign) <= int(sol.sum()) - 1)
    if not done and not exact and remaining > 0 and \
            (wall_end is None or wall_left() > MIN_WALL_SECONDS):
        cmodel, _ = _model(w, *conservative, gsub, groups.singleton, must, hint)
        solver, status = _run(cmodel, remaining, gap_limit, wall_left())
        models += 1
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            sol = np.asarray(solver.response_proto.solution, dtype=np.int64)[: len(rows)] > 0
            sel = lift(sol)
            value = float(values[sel].sum())
            if value > best_value and fits(sel):  # it always fits; checked all the same
                best, best_value = sel, value
    if np.isfinite(bound):
        bound = max(bound, best_value * (1.0 + sum_rtol(m)) + TINY)
    return ExactOutcome(best, bound, proved, status_name, len(rows), models, exact)
