"""Validated problem data shared by the oracles: values, requests, budget and option groups.

The per-round problem is a multiple-choice multi-dimensional knapsack::

    maximize   sum_i v_i x_i
    subject to sum_i r_ik x_i <= B_k   for every resource k
               sum_{i in g} x_i <= 1   for every group g (the options of one agent)
               x_i in {0, 1}           (or [0, 1] in divisible mode)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from librex_alloc._validation import as_float_array, as_int_array
from librex_alloc.errors import InvalidInputError

#: Matrix-vector products are cut into blocks of at most this many entries: OpenBLAS runs
#: larger ones on several threads, and on a busy 2-core machine one 100,000 × 10 product then
#: took ~8 ms instead of ~0.2 ms.
_BLOCK = 1 << 18


def matvec(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``a @ x`` for a (M, K) matrix, single-threaded (see :data:`_BLOCK`)."""
    m, k = a.shape
    rows = max(1, _BLOCK // max(k, 1))
    if m <= rows:
        return a @ x
    out = np.empty(m)
    for s in range(0, m, rows):
        np.matmul(a[s:s + rows], x, out=out[s:s + rows])
    return out


def vecmat(y: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``y @ a`` for a (M, K) matrix, single-threaded (see :data:`_BLOCK`)."""
    m, k = a.shape
    rows = max(1, _BLOCK // max(k, 1))
    if m <= rows:
        return y @ a
    return sum(y[s:s + rows] @ a[s:s + rows] for s in range(0, m, rows))


@dataclass(frozen=True)
class Groups:
    """Option groups in compact form: ``gid`` (M,) in ``0..n_groups-1``.

    ``order`` sorts rows by group (stable), ``starts`` are the first sorted row of each group,
    so per-group reductions are one ``ufunc.reduceat`` call. ``singleton`` is True when every
    group has exactly one row (then ``gid`` is ``arange(M)`` and the fast paths apply).
    """

    gid: np.ndarray
    n_groups: int
    order: np.ndarray
    starts: np.ndarray
    singleton: bool

    @classmethod
    def from_labels(cls, labels: np.ndarray | None, n: int) -> Groups:
        if labels is None:
            ar = np.arange(n, dtype=np.int64)
            return cls(ar, n, ar, ar, True)
        if n < 2 or bool((labels[1:] > labels[:-1]).all()):  # increasing: one row each
            ar = np.arange(n, dtype=np.int64)
            return cls(ar, n, ar, ar, True)
        uniq, gid = np.unique(labels, return_inverse=True)
        gid = gid.astype(np.int64).reshape(-1)
        g = len(uniq)
        if g == n:
            # Every row is its own group: relabel in row order so the fast path is exact.
            ar = np.arange(n, dtype=np.int64)
            return cls(ar, n, ar, ar, True)
        order = np.argsort(gid, kind="stable")
        counts = np.bincount(gid, minlength=g)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        return cls(gid, g, order, starts, False)

    def subset(self, rows: np.ndarray) -> Groups:
        """Groups of a row subset (rows: int indices), relabelled compactly."""
        if self.singleton:
            return Groups.from_labels(None, len(rows))
        return Groups.from_labels(self.gid[rows], len(rows))

    def max(self, x: np.ndarray) -> np.ndarray:
        """Per-group maximum of ``x`` (M,) -> (n_groups,)."""
        if self.singleton:
            return x
        return np.maximum.reduceat(x[self.order], self.starts)

    def top_two(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per group: the best and second-best of ``{x_i : i in g} ∪ {0}`` and the best row.

        The 0 stands for "choose nothing". Returns ``(top1, top2, arg)`` with ``arg = -1`` when
        choosing nothing is best. Ties go to the lowest row index.
        """
        if self.singleton:
            pos = x > 0
            top1 = np.where(pos, x, 0.0)
            top2 = np.where(pos, 0.0, x)
            arg = np.where(pos, np.arange(len(x)), -1)
            return top1, top2, arg
        xs = x[self.order]
        best = np.maximum.reduceat(xs, self.starts)
        # first row attaining the maximum in each group
        is_best = xs == best[self.gid[self.order]]
        first = np.full(self.n_groups, len(xs), dtype=np.int64)
        np.minimum.at(first, self.gid[self.order][is_best], np.nonzero(is_best)[0])
        best_row = self.order[first]
        masked = xs.copy()
        masked[first] = -np.inf
        second = np.maximum.reduceat(masked, self.starts)
        top1 = np.maximum(best, 0.0)
        top2 = np.where(best > 0, np.maximum(second, 0.0), best)
        arg = np.where(best > 0, best_row, -1)
        return top1, top2, arg


@dataclass(frozen=True)
class Problem:
    """Validated oracle input. ``values`` (N,), ``requests`` (N, K), ``budget`` (K,)."""

    values: np.ndarray
    requests: np.ndarray
    budget: np.ndarray
    groups: Groups

    @property
    def n(self) -> int:
        return self.values.shape[0]

    @property
    def k(self) -> int:
        return self.budget.shape[0]


def _floats(x, name: str, ndim: int, nonnegative: bool = False) -> np.ndarray:
    """:func:`as_float_array` with a shortcut for float64 arrays that pass (two reductions;
    NaN propagates through min and max); anything else gets the full check and its error."""
    if type(x) is np.ndarray and x.dtype == np.float64 and x.ndim == ndim:
        if not x.size:
            return x
        lo, hi = float(x.min()), float(x.max())
        if (lo >= 0.0 if nonnegative else lo > -np.inf) and hi < np.inf:
            return x
    return as_float_array(x, name, ndim=ndim, nonnegative=nonnegative)


def make_problem(values, requests, budget, groups=None) -> Problem:
    """Validate the public ``solve`` arguments. Raises :class:`InvalidInputError`."""
    budget = _floats(budget, "budget", 1, nonnegative=True)
    values = _floats(values, "values", 1)
    n, k = values.shape[0], budget.shape[0]
    requests = _floats(requests, "requests", 2, nonnegative=True)
    if requests.shape != (n, k):
        raise InvalidInputError(
            f"requests: expected shape ({n}, {k}) to match values (N,) and budget (K,), "
            f"got {requests.shape}"
        )
    labels = None
    if groups is not None:
        labels = as_int_array(groups, "groups", ndim=1, length=n)
    return Problem(
        np.ascontiguousarray(values),
        np.ascontiguousarray(requests),
        budget,
        Groups.from_labels(labels, n),
    )


def candidate_rows(problem: Problem) -> np.ndarray:
    """Rows that can ever be chosen: positive value and fitting the budget on their own."""
    ok = problem.values > 0
    for k in range(problem.k):  # a column at a time: ~5x faster than np.all(..., axis=1)
        ok &= problem.requests[:, k] <= problem.budget[k]
    return np.nonzero(ok)[0]


#: Columns of integer requests are tightened (:func:`integer_budget`) only while their float
#: sums are exact integers (every partial sum at most 2^53).
EXACT_INT_SUM = 2.0**52


def integer_budget(requests, budget, columns) -> np.ndarray:
    """``budget`` with each of ``columns`` (bool (K,)) whose ``requests`` (M, K) are all integers
    lowered to the largest multiple of their gcd ``g`` it holds (a copy when any changes).

    The selections that pass the canonical float check are the same: the column's sums are
    exact integers (its total is at most :data:`EXACT_INT_SUM`) and multiples of ``g``, so
    ``sum <= b`` exactly when ``sum <= g·⌊b / g⌋``. The LP relaxation over the lowered budget
    is the tighter bound (e.g. 36.75 GPUs hold 36).
    """
    out = budget
    for k in np.nonzero(columns)[0]:
        col = requests[:, k]
        b = float(budget[k])
        if b >= EXACT_INT_SUM or not (float(col[0]).is_integer()
                                      and float(col[-1]).is_integer()):
            continue  # float data fails here, at no cost
        with np.errstate(over="ignore"):  # huge integers (1e300): the sum is inf, skipped
            if not np.array_equal(col, np.floor(col)) or not float(col.sum()) <= EXACT_INT_SUM:
                continue
        g = int(np.gcd.reduce(col.astype(np.int64)))
        if g == 0:
            continue
        tight = float((int(b) // g) * g)  # int(b) == floor(b) for 0 <= b < 2^52
        if tight < b:
            if out is budget:
                out = budget.copy()
            out[k] = tight
    return out


def lagrangian_bound(values, requests, budget, groups: Groups, lam) -> float:
    """``λ·B + Σ_g max(0, max_{i∈g} v_i − λ·r_i)``: an upper bound on the optimum for any λ ≥ 0.

    It is also an upper bound on the LP relaxation, and equals it at the optimal dual prices.
    The slack added covers the floating-point error of evaluating the formula (relative to the
    magnitudes summed, :func:`sum_rtol`), so the bound holds in exact arithmetic on the data.
    """
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    m, k = requests.shape
    if m == 0:
        return 0.0
    if k:
        rl = matvec(requests, lam)
        d = values - rl
        mag = float(np.abs(values).sum() + rl.sum() + lam @ budget)
    else:
        d = values
        mag = float(np.abs(values).sum())
    bound = float(lam @ budget + np.maximum(groups.max(d), 0.0).sum())
    return bound + sum_rtol(m + k) * mag


def selection_is_feasible(requests, budget, selected, groups: Groups) -> bool:
    """The canonical budget check: ``requests[selected].sum(axis=0) <= budget`` and ≤1 per group."""
    if not np.all(requests[selected].sum(axis=0) <= budget):
        return False
    if groups.singleton:
        return True
    return bool(np.all(np.bincount(groups.gid[selected], minlength=groups.n_groups) <= 1))


# ----------------------------------------------------------------------------- float numerics

#: Unit roundoff of float64 (round to nearest).
UNIT = 2.0**-53
#: The smallest positive (subnormal) float64.
TINY = float(np.nextafter(0.0, 1.0))


def sum_rtol(n: int) -> float:
    """A relative bound on the rounding error of a sum of ``n`` products of float64 numbers,
    in any order: ``|computed − exact| <= sum_rtol(n) · Σ|terms|`` (``2 (n + 4) u``, with
    room for the products themselves, fused or not)."""
    return 2.0 * (n + 4) * UNIT


def binary_exponent(x) -> np.ndarray:
    """``e`` with ``x = f · 2^e``, ``f`` in [0.5, 1) (``np.frexp``); 0 where ``x == 0``."""
    if type(x) is float:
        return math.frexp(x)[1]
    return np.frexp(np.asarray(x, dtype=np.float64))[1]


def times_pow2(x: np.ndarray, exponent) -> np.ndarray:
    """``x · 2^exponent`` (exponent: int or int array broadcasting over the last axis), as
    ``np.ldexp`` (exact unless the result under- or overflows) but a plain multiplication
    whenever ``2^exponent`` is a normal float64 (about 4x faster)."""
    if type(exponent) is int:
        return x * 2.0**exponent if -1022 <= exponent <= 1023 else np.ldexp(x, exponent)
    exponent = np.asarray(exponent)
    if exponent.size and (exponent.min() < -1022 or exponent.max() > 1023):
        return np.ldexp(x, exponent)
    return x * np.ldexp(1.0, exponent)


def to_caller_units(x: float, exponent: int) -> float:
    """``x · 2^exponent``, rounded up when inexact (only in the subnormal range), so an upper
    bound stays an upper bound. May return inf."""
    with np.errstate(over="ignore"):
        y = float(np.ldexp(x, exponent))
    if abs(y) < 2.0**-1022 and float(np.ldexp(y, -exponent)) != x:
        y = float(np.nextafter(y, np.inf))
    return y
