"""The budget invariant in floating point: ``Σ_i fractions_i · requests_ik ≤ budget_k`` for
every resource k, whichever order the sum is taken in.

Float64 sums depend on their order: ``requests[selected].sum(axis=0)`` (row order),
``fractions @ requests`` (BLAS, possibly fused multiply-adds), ``np.sort(...).sum()`` or
``math.fsum`` can differ by a few units in the last place, so an answer that passes one of
them exactly at the budget can exceed it by one ulp in another. :func:`fits_any_order`
decides, per resource, whether *every* order of summation (and fused or separate products)
stays within the budget, from these facts about round-to-nearest float64 arithmetic:

* Summing m ≥ 0 terms in any order takes m − 1 roundings; the computed sum is the exact sum
  plus their errors. The last rounding cannot cross the budget (rounding is monotone and the
  budget is a float), and while every partial sum is ≤ B each other rounding errs by at most
  ``spacing(B) / 2``. Products ``f · r`` with ``f ∉ {0, 1}`` add one rounding each (or none,
  when fused). So every order stays ≤ B when
  ``B − Σ_exact (f·r)_rounded ≥ (max(m − 2, 0) + m_frac) · spacing(B) / 2``; the left side is
  computed exactly enough with ``math.fsum``.
* When every term is a multiple of q (a power of two, the lowest set bit of the terms) and
  ``B < 2^53 q``, no partial sum is ever rounded (integer requests: cores, GPUs, MiB): the sum
  is exact in every order, and ``Σ ≤ B`` is the whole condition. So an integer answer that
  fills the budget exactly is kept.

:func:`repair` makes an answer pass: a divisible answer is scaled down (only the rows that use
a failing resource, by the excess), a 0/1 answer drops rows from the lowest priority until
it fits. A quick vectorized test clears every resource with room to spare, so the exact path
(one ``math.fsum`` per tight resource) runs only when the budget is met within rounding.
"""

from __future__ import annotations

import math

import numpy as np

_U = 2.0**-53


def _granted(fractions: np.ndarray, requests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows with a positive fraction, their granted resources ``f · r`` (m, K))."""
    rows = np.flatnonzero(fractions > 0)
    return rows, fractions[rows, None] * requests[rows]


def _lowest_bit(x: np.ndarray) -> float:
    """The largest power of two that divides every (positive, finite) entry of ``x``."""
    m, e = np.frexp(x)
    mant = (m * 2.0**53).astype(np.int64)  # exact: m has 53 significant bits
    low = mant & -mant
    return float(np.min(np.ldexp(low.astype(np.float64), e - 53)))


def fits_any_order(fractions: np.ndarray, requests: np.ndarray, budget: np.ndarray
                   ) -> np.ndarray:
    """(K,) bool: resource k's total ``Σ_i fractions_i · requests_ik`` is ≤ ``budget_k`` in
    every summation order (see the module docstring). fractions (N,) in [0, 1], requests
    (N, K) ≥ 0 and budget (K,) ≥ 0, finite float64."""
    budget = np.asarray(budget, dtype=np.float64)
    k = budget.shape[0]
    if not len(fractions):
        return np.ones(k, dtype=bool)
    m = int(np.count_nonzero(fractions > 0))
    if not m:
        return np.ones(k, dtype=bool)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow does not fit: exact path
        s = fractions @ requests
        # room to spare: this sum's own errors (m products, m additions) and every other
        # order's are far below it (spacing of twice the larger: a binade up, to be safe)
        ok = s + (4.0 * m + 8.0) * np.spacing(2.0 * np.maximum(budget, s)) <= budget
    if ok.all():
        return ok
    rows, g = _granted(fractions, requests)
    partial = fractions[rows] != 1.0
    for j in np.flatnonzero(~ok):
        col = g[:, j]
        nz = col[col > 0]
        b = float(budget[j])
        if not len(nz):
            ok[j] = True
            continue
        try:
            slack = math.fsum([b, *(-nz).tolist()])  # B − Σ terms, correctly rounded
        except OverflowError:  # the partial sums only fall: B − Σ < −max float, no fit
            continue
        if slack < 0:
            continue
        n_frac = int(np.count_nonzero(partial & (col > 0)))
        if n_frac == 0 and (len(nz) <= 2 or b < 2.0**53 * _lowest_bit(nz)):
            ok[j] = True  # ≤ 2 terms: one rounding (monotone); dyadic terms: no rounding
            continue
        needed = (max(len(nz) - 2, 0) + n_frac) * float(np.spacing(b)) / 2.0
        ok[j] = slack * (1.0 - 4.0 * _U) >= needed
    return ok


def repair(fractions: np.ndarray, requests: np.ndarray, budget: np.ndarray, *,
           divisible: bool, priority: np.ndarray | None = None) -> np.ndarray:
    """``fractions`` (N,) made to pass :func:`fits_any_order` on every resource; the input
    itself when it already does (no copy). Divisible: the rows using a failing resource are
    scaled down by its excess (a relative few ulps per row); if that is not enough (or not
    divisible), rows are dropped from the lowest ``priority`` (row indices, highest first;
    default: row order) among those using a failing resource."""
    bad = ~fits_any_order(fractions, requests, budget)
    if not bad.any():
        return fractions
    out = np.array(fractions, dtype=np.float64, copy=True)
    if divisible:
        for _ in range(8):
            rows, g = _granted(out, requests)
            m = len(rows)
            p = 2.0 ** -max(1, m.bit_length())  # sums of p·terms cannot overflow
            s = (g * p).sum(axis=0)
            room = np.maximum(budget - (3.0 * m + 4.0) * np.spacing(budget), 0.0) * p
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                scale = np.where(bad & (s > 0), room / s, 1.0)
            factor = float(np.min(scale)) * (1.0 - 8.0 * _U)
            use = rows[np.any(requests[rows][:, bad] > 0, axis=1)]
            out[use] *= max(factor, 0.0)
            bad = ~fits_any_order(out, requests, budget)
            if not bad.any():
                return out
    order = np.arange(len(out)) if priority is None else np.asarray(priority, np.int64)
    chosen = order[out[order] > 0]
    missing = np.setdiff1d(np.flatnonzero(out > 0), chosen)  # not in priority: lowest
    for i in np.concatenate([missing, chosen[::-1]]):
        if not np.any(requests[i, bad] > 0):
            continue
        out[i] = 0.0
        bad = ~fits_any_order(out, requests, budget)
        if not bad.any():
            break
    return out
