"""A cheap proven upper bound on the optimum: the Lagrangian bound with warm-started prices.

For the multiple-choice multi-dimensional knapsack of :mod:`librex_alloc.oracles` (maximize
``Σ v_i x_i`` under ``Σ r_ik x_i ≤ B_k`` and at most one row per group), relaxing the budget
rows with prices ``λ ≥ 0`` (K,) gives, for *every* such λ (weak duality)::

    L(λ) = λ·B + Σ_g max(0, max_{i∈g} v_i − λ·r_i)  ≥  LP optimum  ≥  optimum,

with equality to the LP bound at the best λ. One evaluation is O(N·K), vectorized
(:func:`librex_alloc.oracles._problem.lagrangian_bound`, which also adds the slack covering
its own floating-point error). :func:`improve_prices` lowers L from a warm start (the prices of
a previous, similar problem) by coordinate-wise exact line searches: with the other prices
fixed, L is convex and piecewise linear in λ_k, a sum of hinges ``r_ik (t_i − λ_k)_+`` with
breakpoints ``t_i = (v_i − Σ_{l≠k} λ_l r_il) / r_ik``, minimized where the requests of the
rows above the price first exceed ``B_k`` (the fractional knapsack's threshold; exact for one
row per group, a candidate checked by evaluating L otherwise). The number of evaluations is
fixed (``sweeps · K + 1``), so the cost per call is bounded whatever the data. Rows that do
not fit the budget alone can never be chosen and are left out (a valid, tighter bound).
"""

from __future__ import annotations

import numpy as np

from librex_alloc.oracles._problem import Groups, lagrangian_bound, matvec


def _line_min(a: np.ndarray, r: np.ndarray, b: float, hint: float) -> float:
    """``argmin_{t ≥ 0} t·b + Σ_i max(0, a_i − t·r_i)`` over the rows with ``r_i > 0`` (the
    others do not depend on t). ``hint``: a price near the answer (the current one); only the
    breakpoints in a window around it are sorted when the threshold lies there."""
    pos = (r > 0) & (a > 0)
    if not pos.any():
        return 0.0
    a, r = a[pos], r[pos]
    t = a / r
    if float(r.sum()) <= b:  # everything with a positive margin fits: no price needed
        return 0.0
    above = 0.0  # requests of the rows left out above the window
    if hint > 0:  # the answer is usually near the hint: sort only a window of breakpoints
        for lo, hi in ((0.95, 1.05), (0.5, 2.0)):
            over = t > hi * hint
            s_over = float(r[over].sum())
            if s_over > b:
                continue
            win = (t > lo * hint) & ~over
            if s_over + float(r[win].sum()) > b:  # the threshold lies in the window
                t, r, above = t[win], r[win], s_over
                break
    order = np.argsort(-t)
    cum = above + np.cumsum(r[order])
    j = int(np.searchsorted(cum, b, side="right"))  # the first row whose requests exceed b
    return float(t[order[min(j, len(order) - 1)]])

def improve_prices(values, requests, budget, groups: Groups, lam0, sweeps: int = 1
                   ) -> tuple[float, np.ndarray]:
    """``(L(λ), λ)``: prices λ ≥ 0 (K,) from ``lam0`` (None: zeros) improved by ``sweeps``
    rounds of coordinate-wise exact line searches, and the proven bound there. Never worse
    than ``L(lam0)``; the prices stay finite (a step that overflows on extreme data is not
    taken). ``budget`` entries may be +inf (their price stays 0)."""
    m, k = requests.shape
    finite = np.isfinite(budget)
    b = np.where(finite, budget, 0.0)
    lam = np.zeros(k) if lam0 is None else np.where(finite, np.maximum(lam0, 0.0), 0.0)
    best = lagrangian_bound(values, requests, b, groups, lam)
    start = lam
    if m == 0 or k == 0:
        return best, lam
    fits = np.all(requests <= budget, axis=1) & (values > 0)
    if not fits.all():  # rows that cannot be chosen: drop them (the optimum never uses them)
        rows = np.nonzero(fits)[0]
        values, requests, groups = values[rows], requests[rows], groups.subset(rows)
        best = min(best, lagrangian_bound(values, requests, b, groups, lam))
        if not len(rows):
            return best, lam
    d = values - matvec(requests, lam)
    for _ in range(sweeps):
        for j in np.nonzero(finite)[0]:
            col = requests[:, j]
            a = d + lam[j] * col
            new = _line_min(a, col, float(b[j]), float(lam[j]))
            if new == lam[j] or not np.isfinite(new):
                continue
            trial = lam.copy()
            trial[j] = new
            if groups.singleton:  # exact line search: L can only go down
                lam, d = trial, a - new * col
                continue
            val = lagrangian_bound(values, requests, b, groups, trial)
            if val < best:  # False for NaN
                best, lam, d = val, trial, a - new * col
    if groups.singleton:
        val = lagrangian_bound(values, requests, b, groups, lam)
        if not val < best:  # not better (or not finite: overflow on extreme data)
            return best, start
        best = val
    return best, lam


def reference_bound(values, requests, budget, labels=None, lam0=None, sweeps: int = 1
                    ) -> tuple[float, np.ndarray]:
    """:func:`improve_prices` for raw arrays: ``labels`` (N,) the group of each row (None: one
    row per group)."""
    values = np.asarray(values, dtype=np.float64)
    requests = np.asarray(requests, dtype=np.float64)
    budget = np.asarray(budget, dtype=np.float64)
    groups = Groups.from_labels(None if labels is None else np.asarray(labels), len(values))
    with np.errstate(over="ignore", invalid="ignore"):  # huge or tiny data: see the guards
        return improve_prices(values, requests, budget, groups, lam0, sweeps)
