"""Fairness and budget metrics.

Fairness metrics take a utility vector ``x`` of shape ``(n,)`` (one entry per agent, any
utility unit). NaN / inf / a wrong number of dimensions is an :class:`InvalidInputError`;
so are negative utilities for :func:`gini`, :func:`jain` and :func:`min_max_ratio`.
Every function returns a Python ``float`` except :func:`utilization` and
:func:`fairness_report`.
"""

from __future__ import annotations

import numpy as np

from librex_alloc._validation import as_float_array, check_scalar
from librex_alloc.errors import InvalidInputError

__all__ = [
    "gini",
    "jain",
    "min_max_ratio",
    "variance",
    "sum_log_utility",
    "max_min_share_violation",
    "utilization",
    "fairness_report",
]


def _vector(x, name: str = "x", *, nonnegative: bool = False) -> np.ndarray:
    return as_float_array(x, name, ndim=1, nonnegative=nonnegative)


def _gini(x: np.ndarray) -> float:
    n = x.shape[0]
    if n <= 1:
        return 0.0
    top = float(x.max())
    if top == 0.0:
        return 0.0
    y = np.sort(x) / top  # scale-invariant; avoids overflow of sum(x)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    g = float(np.dot(2.0 * ranks - n - 1.0, y)) / (n * float(y.sum()))
    return min(max(g, 0.0), 1.0)


def gini(x) -> float:
    """Gini coefficient ``sum_ij |x_i - x_j| / (2 n^2 mean(x))`` of ``x >= 0``, shape ``(n,)``.

    O(n log n) via the sorted formula ``sum_i (2i - n - 1) x_(i) / (n sum x)``.
    0.0 when ``n <= 1`` or all entries are zero; at most ``(n - 1) / n``.
    """
    return _gini(_vector(x, nonnegative=True))


def _jain(x: np.ndarray) -> float:
    n = x.shape[0]
    if n == 0:
        return float("nan")
    top = float(x.max())
    if top == 0.0:
        return 1.0
    y = x / top  # scale-invariant; avoids overflow of sum(x**2)
    j = float(y.sum()) ** 2 / (n * float(np.dot(y, y)))
    return min(max(j, 1.0 / n), 1.0)


def jain(x) -> float:
    """Jain's index ``(sum x)^2 / (n sum x^2)`` of ``x >= 0``, shape ``(n,)``, in ``[1/n, 1]``.

    1.0 when all entries are zero (everyone equal); NaN when ``n == 0``.
    """
    return _jain(_vector(x, nonnegative=True))


def _min_max_ratio(x: np.ndarray) -> float:
    if x.shape[0] == 0:
        return float("nan")
    top = float(x.max())
    if top == 0.0:
        return 1.0
    return float(x.min()) / top


def min_max_ratio(x) -> float:
    """``min(x) / max(x)`` of ``x >= 0``, shape ``(n,)``.

    1.0 when ``max == 0`` (all equal at zero); NaN when ``n == 0``.
    """
    return _min_max_ratio(_vector(x, nonnegative=True))


def _variance(x: np.ndarray) -> float:
    if x.shape[0] == 0:
        return float("nan")
    return float(np.var(x))


def variance(x) -> float:
    """Population variance (``ddof=0``) of ``x``, shape ``(n,)``, in utility units squared.

    NaN when ``n == 0``.
    """
    return _variance(_vector(x))


def _sum_log_utility(x: np.ndarray, eps: float) -> float:
    return float(np.log(np.maximum(x, eps)).sum())


def sum_log_utility(x, eps: float = 1e-9) -> float:
    """Proportional-fairness objective ``sum_i log(max(x_i, eps))``, ``x`` shape ``(n,)``.

    ``eps > 0`` (utility units) floors zero or negative utilities; 0.0 when ``n == 0``.
    """
    e = check_scalar(eps, "eps", low=0.0, low_open=True, error=InvalidInputError)
    return _sum_log_utility(_vector(x), e)


def max_min_share_violation(min_share, active_rounds, served_rounds) -> float:
    """Largest shortfall ``max_i (rho_i t_i - N_i)_+`` in rounds; 0.0 for empty input.

    ``min_share`` (rho, in [0, 1]), ``active_rounds`` (t >= 0) and ``served_rounds``
    (N >= 0) are 1-D of the same length ``(n,)``.
    """
    rho = _vector(min_share, "min_share", nonnegative=True)
    n = rho.shape[0]
    t = as_float_array(active_rounds, "active_rounds", shape=(n,), nonnegative=True)
    served = as_float_array(served_rounds, "served_rounds", shape=(n,), nonnegative=True)
    if n and np.any(rho > 1.0):
        raise InvalidInputError("min_share: must lie in [0, 1]")
    if n == 0:
        return 0.0
    return float(max(np.max(rho * t - served), 0.0))


def utilization(used, budget) -> np.ndarray:
    """Per-resource utilization ``used / budget``, shape ``(K,)``.

    ``used`` is ``(K,)`` or ``(T, K)`` (T rounds); ``budget`` is ``(K,)`` (same every round)
    or the shape of ``used``. For 2-D ``used`` the result is ``sum_t used / sum_t budget``
    (budget-weighted mean over rounds). ``0 / 0 -> 0.0``, ``x / 0 -> inf`` for ``x > 0``.
    Both must be finite and ``>= 0``.
    """
    u = as_float_array(used, "used", nonnegative=True)
    if u.ndim not in (1, 2):
        raise InvalidInputError(f"used: expected a 1-D or 2-D array, got shape {u.shape}")
    k = u.shape[-1]
    b = as_float_array(budget, "budget", nonnegative=True)
    if b.shape != (k,) and b.shape != u.shape:
        raise InvalidInputError(
            f"budget: expected shape {(k,)} or {u.shape} to match used, got {b.shape}"
        )
    if u.ndim == 2:
        total_used = u.sum(axis=0)
        total_budget = b * u.shape[0] if b.ndim == 1 else b.sum(axis=0)
    else:
        total_used, total_budget = u, b
    out = np.zeros(k, dtype=np.float64)
    pos = total_budget > 0
    np.divide(total_used, total_budget, out=out, where=pos)
    out[~pos & (total_used > 0)] = np.inf
    return out


def fairness_report(x) -> dict[str, float]:
    """All fairness metrics of ``x >= 0``, shape ``(n,)``: keys ``gini``, ``jain``,
    ``min_max_ratio``, ``variance``, ``sum_log_utility`` (``eps = 1e-9``)."""
    v = _vector(x, nonnegative=True)
    return {
        "gini": _gini(v),
        "jain": _jain(v),
        "min_max_ratio": _min_max_ratio(v),
        "variance": _variance(v),
        "sum_log_utility": _sum_log_utility(v, 1e-9),
    }
