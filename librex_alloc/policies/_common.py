"""Shared pieces of the baseline policies: greedy fills, the budget guard, state checks.

Every baseline that does not call the knapsack oracle builds its answer with
:func:`greedy_fill` (rows taken in a priority order while they fit) and passes it through
:func:`enforce_budget`, which checks ``fractions @ requests <= budget`` in every summation
order (:mod:`librex_alloc.budget_check`) and repairs an answer that a rounding put over the
budget (a divisible one scaled down by the excess, else its lowest-priority rows dropped).
So the hard invariant of SPEC §1 holds for every input, whatever the rule.
"""

from __future__ import annotations

import time

import numpy as np

from librex_alloc.budget_check import fits_any_order, repair
from librex_alloc.errors import StateError
from librex_alloc.oracles import OracleResult


# ---------------------------------------------------------------------------- state
def state_scalar(extra: dict, key: str, name: str, *, kind: type, low: float = 0.0,
                 high: float = np.inf):
    """A scalar of an extra state: exactly ``kind`` (int or float), finite, in [low, high]."""
    v = extra[key]
    if type(v) is not kind or not np.isfinite(v) or not low <= v <= high:
        raise StateError(f"{name}.{key}: expected a finite {kind.__name__} in [{low}, {high}], "
                         f"got {v!r}")
    return v


# ---------------------------------------------------------------------------- arithmetic
def safe_budget(budget: np.ndarray) -> np.ndarray:
    """(K,) budget with 0 replaced by inf: ``r / safe_budget(B)`` is 0 where B is 0."""
    return np.where(budget > 0, budget, np.inf)


def dominant_share(requests: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """(N,) ``max_k r_k / B_k``; inf where a row needs a resource whose budget is 0."""
    if requests.shape[1] == 0:
        return np.zeros(len(requests))
    share = (requests / safe_budget(budget)).max(axis=1)
    blocked = np.any((requests > 0) & (budget <= 0), axis=1)
    return np.where(blocked, np.inf, share)


def normalized_size(requests: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N,) ``Σ_k r_k / ref_k`` (resource units over the reference, dimensionless): the
    "normalized cost" of the budgeted-bandit rules. Resources with ``ref_k = 0`` count 0
    (rows needing them do not fit anyway)."""
    return (requests / safe_budget(reference)).sum(axis=1)


def first_per_group(rows: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """bool (len(rows),): the first of ``rows`` (in their order) of every group."""
    if not len(rows):
        return np.zeros(0, dtype=bool)
    _, first = np.unique(groups[rows], return_index=True)
    keep = np.zeros(len(rows), dtype=bool)
    keep[first] = True
    return keep


def group_rank(keys: list[np.ndarray]) -> np.ndarray:
    """Row order sorting by the keys (first key primary, ascending, stable)."""
    return np.lexsort(tuple(reversed(keys))) if keys and len(keys[0]) else \
        np.zeros(0, dtype=np.int64)


# ---------------------------------------------------------------------------- fills
def greedy_fill(order: np.ndarray, requests: np.ndarray, budget: np.ndarray,
                groups: np.ndarray, *, divisible: bool = False,
                prefix_only: bool = False) -> np.ndarray:
    """Take rows in priority ``order`` (int (M,) row indices) while they fit; (N,) fractions.

    At most one row per group is taken. Indivisible: exactly the sequential first-fit rule
    (walk the order, take a row if its group is free and it fits what is left), run as
    vectorized prefix steps: each step takes the longest prefix of the remaining candidates
    (one per group, each fitting on its own) whose cumulative request fits, then skips the
    first row that does not. ``prefix_only`` takes the ranking as given (each group's first
    row, no row skipped) and stops at its first misfit: a ranking truncated to fit.
    Divisible: the misfit gets the largest fraction that fits (the fractional knapsack's
    last item), which exhausts a resource; filling continues with rows that do not need it.
    The result still goes through :func:`enforce_budget` (cumulative sums round
    differently from the canonical check).
    """
    n = len(requests)
    frac = np.zeros(n)
    if not len(order):
        return frac
    rem = budget.astype(np.float64, copy=True)
    gid = np.unique(groups, return_inverse=True)[1].reshape(-1)
    taken = np.zeros(int(gid.max()) + 1 if n else 0, dtype=bool)
    cand = np.asarray(order, dtype=np.int64)
    while len(cand):
        r = requests[cand]
        if prefix_only:  # the ranking as given: its first misfit ends it
            ok = np.ones(len(cand), dtype=bool)
        elif divisible:
            ok = ~np.any((r > 0) & (rem <= 0), axis=1)
        else:
            ok = np.all(r <= rem, axis=1)
        cand = cand[ok & ~taken[gid[cand]]]
        if not len(cand):
            break
        lead_mask = first_per_group(cand, gid)
        lead = cand[lead_mask]
        cs = np.cumsum(requests[lead], axis=0)
        fit = np.all(cs <= rem, axis=1)
        m = len(lead) if fit.all() else int(np.argmin(fit))
        if m:
            frac[lead[:m]] = 1.0
            taken[gid[lead[:m]]] = True
            rem = rem - cs[m - 1]
        if m == len(lead):
            break
        miss = lead[m]
        if divisible:
            need = requests[miss]
            pos = need > 0
            ratios = np.maximum(rem[pos], 0.0) / need[pos]
            k_star = np.flatnonzero(pos)[int(np.argmin(ratios))]
            y = min(1.0, float(ratios.min()))
            if y > 0:
                frac[miss] = y
                rem = rem - y * need
            rem[k_star] = 0.0
            taken[gid[miss]] = True
        if prefix_only:
            break
        cand = cand[np.flatnonzero(lead_mask)[m] + 1:]
    return frac


def fits(fractions: np.ndarray, requests: np.ndarray, budget: np.ndarray) -> bool:
    """The budget check: ``fractions @ requests <= budget`` in every summation order
    (:func:`~librex_alloc.budget_check.fits_any_order`), so also the canonical
    ``requests[selected].sum(axis=0) <= budget`` of a 0/1 answer."""
    return bool(fits_any_order(fractions, requests, budget).all())


def enforce_budget(fractions: np.ndarray, requests: np.ndarray, budget: np.ndarray,
                   priority: np.ndarray | None = None, *, divisible: bool = False) -> np.ndarray:
    """``fractions`` (N,) made to pass :func:`fits`: a ``divisible`` answer is first scaled
    down by its rounding excess, then rows are dropped from the lowest priority
    (``priority``: row indices, highest first; default row order) until it fits
    (:func:`~librex_alloc.budget_check.repair`)."""
    return repair(fractions, requests, budget, divisible=divisible, priority=priority)


def make_result(fractions: np.ndarray, values: np.ndarray, groups: np.ndarray, method: str,
                t0: float, divisible: bool, **info) -> OracleResult:
    """An :class:`OracleResult` for a baseline's answer. ``bound`` is the trivial upper bound
    ``Σ_groups max(0, max v)`` (the value of every agent's best option), so the gap is a
    valid, if loose, certificate."""
    if not divisible:
        fractions = (fractions > 0).astype(np.float64)
    selected = fractions > 0
    objective = float(values @ fractions) if len(values) else 0.0
    if len(values):
        gid = np.unique(groups, return_inverse=True)[1].reshape(-1)
        best = np.zeros(int(gid.max()) + 1)
        np.maximum.at(best, gid, values)
        bound = max(float(best.sum()), objective)
    else:
        bound = 0.0
    status = "optimal" if objective >= bound - 1e-9 * abs(bound) else "feasible"
    return OracleResult(selected, fractions, objective, bound, status, method,
                        time.perf_counter() - t0, info)


# ---------------------------------------------------------------------------- learned stats
def empirical_stats(posterior, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, count, scale) per slot from a posterior's public parameters: the empirical mean
    of the observations (UCB needs it, not the prior-shrunk posterior mean; the prior mean
    where there is none), their (discounted) count, and the reward scale used by confidence
    widths (1 for the Bernoulli family, the posterior estimate ``sqrt(b/a)`` of σ for the
    Gaussian one)."""
    count = posterior.count(slots)
    has = count > 1e-9
    safe = np.where(has, count, 1.0)
    if posterior.family == "bernoulli":
        alpha, beta = posterior.params(slots)
        prior_mean = posterior.alpha_prior / (posterior.alpha_prior + posterior.beta_prior)
        mean = np.where(has, (alpha - posterior.alpha_prior) / safe, prior_mean)
        return np.clip(mean, 0.0, 1.0), count, np.ones(len(count))
    m_n, kappa_n, a_n, b_n = posterior.params(slots)
    mu0 = posterior.mu_prior
    mean = np.where(has, mu0 + (m_n - mu0) * (kappa_n / safe), mu0)
    return mean, count, np.sqrt(b_n / a_n)
