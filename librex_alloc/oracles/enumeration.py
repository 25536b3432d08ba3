"""The exact oracle on small candidate sets: every selection, enumerated with numpy, no CP-SAT.

Selections are built group by group (choose nothing, or one option) as arrays of partial
states: the value as an exact fixed-point integer in 50-bit limbs (as many as the values' span
needs: values of 1e-300 next to 1 are compared exactly), a float approximation of it, usage
per resource, and a back-pointer per level. A partial state whose approximate usage exceeds
the budget by more than any float summation error is surely infeasible and dropped (usage
only grows); with a known feasible value ``lower`` (branch and bound), so is a state that
cannot reach it even with the best option of every remaining group.

:func:`enumerate_all` does the same for at most :data:`ALL_MAX_ROWS` rows with every subset at
once (two matrix products over cached 0/1 tables), the path of every method on tiny instances
and of :func:`~.fast.core_round`.

The winner is the most valuable state that passes ``fits``, the caller's canonical float64
check (``requests[selected].sum(axis=0) <= budget`` in its units), so the proof is for the
float data as given, not for a rounded model. The caller tries it when
:func:`enumeration_size` is at most :data:`MAX_PRODUCT`; it gives up (returns None) as soon
as more than :data:`MAX_STATES` partial selections are alive.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from librex_alloc.oracles._problem import TINY, Groups, binary_exponent, sum_rtol

#: Largest number of (partial) selections held at once (beyond it the caller falls back to
#: CP-SAT: 2^16 states take a few milliseconds; CP-SAT takes ~5 ms on 20 rows).
MAX_STATES = 1 << 16
#: Largest ``states × (K + 4 + limbs)`` (8-byte cells, 16 MiB).
MAX_CELLS = 1 << 21
#: Enumeration is tried when ``Π_g (options_g + 1)`` is at most this (branch and bound
#: usually keeps far fewer states; :data:`MAX_STATES` caps them).
MAX_PRODUCT = 1 << 24
#: Bits per limb of the exact values (a sum of < 2^13 of them fits an int64 limb).
LIMB_BITS = 50
#: Best states checked with ``fits`` per batch (it doubles while they fail).
_BATCH = 64
#: Up to this many rows :func:`enumerate_all` builds every subset at once (4,096 subsets).
ALL_MAX_ROWS = 12
_MASKS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


@dataclass(frozen=True)
class Enumerated:
    """selected: bool (M,), passes ``fits``; value: its value (double-double ``hi + lo``);
    bound: its exact value rounded up, an upper bound on the optimum; states: built."""

    selected: np.ndarray
    value: float
    bound: float
    states: int


def limbs_needed(values: np.ndarray) -> int:
    """Limbs for the exact fixed-point form of positive ``values`` (M,), all < 1."""
    if not len(values):
        return 1
    low = 53 - int(binary_exponent(values.min()))  # lowest bit: 2^-low
    return max(1, -(-low // LIMB_BITS))


def max_states(k: int, limbs: int = 2) -> int:
    """The enumeration budget for K resources: :data:`MAX_STATES` and :data:`MAX_CELLS`."""
    return min(MAX_STATES, MAX_CELLS // (k + 4 + limbs))


def enumeration_size(groups: Groups, must: np.ndarray | None = None, limit: int = MAX_PRODUCT
                     ) -> int:
    """``Π_g (options_g + 1)`` (no "+ 1" where ``must``), capped at ``limit + 1``."""
    if groups.singleton:
        free = groups.n_groups - (int(np.count_nonzero(must)) if must is not None else 0)
        return min(1 << min(free, 62), limit + 1)
    sizes = np.bincount(groups.gid, minlength=groups.n_groups) + 1
    if must is not None:
        sizes = sizes - must.astype(np.int64)
    total = 1
    for s in sizes[sizes > 1].tolist():
        total *= s
        if total > limit:
            return limit + 1
    return total


def _sum_up(x: np.ndarray) -> float:
    """``Σ x`` exactly, rounded up to a float64 (``math.fsum`` rounds the exact sum to nearest;
    the exact remainder's sign, again by ``fsum``, says whether to step up)."""
    terms = x.tolist()
    f = math.fsum(terms)
    terms.append(-f)
    return f if math.fsum(terms) <= 0 else float(np.nextafter(f, np.inf))


def _limbs(values: np.ndarray, n_limbs: int) -> np.ndarray:
    """``values`` (M,) in [0, 1) as exact base-2^50 fixed point: int64 (M, n_limbs), limb j
    worth ``2^-50(j+1)``. Exact: scaling by powers of two and taking fractions are exact."""
    out = np.zeros((len(values), n_limbs), dtype=np.int64)
    rest = values.copy()
    for j in range(n_limbs):
        rest = rest * 2.0**LIMB_BITS
        digit = np.floor(rest)
        out[:, j] = digit.astype(np.int64)
        rest = rest - digit
    return out


def _carry(limbs: np.ndarray) -> np.ndarray:
    """Normalize sums of limbs (S, L) so each limb is in [0, 2^50): then row order is value
    order, lexicographically."""
    limbs = limbs.copy()
    mask = (1 << LIMB_BITS) - 1
    for j in range(limbs.shape[1] - 1, 0, -1):
        limbs[:, j - 1] += limbs[:, j] >> LIMB_BITS
        limbs[:, j] &= mask
    return limbs


def enumerate_optimum(values, requests, budget, groups: Groups,
                      fits: Callable[[np.ndarray], bool], *, must: np.ndarray | None = None,
                      lower: float | None = None, prices: np.ndarray | None = None,
                      limit: int | None = None,
                      time_left: Callable[[], bool] | None = None) -> Enumerated | None:
    """The optimal selection of ``values`` (M,), positive and < 1, under ``requests`` (M, K) ≤
    ``budget`` (K,), ≤ 1 option per group (exactly 1 where ``must``, bool (G,)), proved with
    ``fits``.

    ``lower``: the value of a selection known to pass ``fits`` and satisfy ``must``; partial
    selections that cannot reach it are pruned, by the Lagrangian bound ``value + λ·(B − use)
    + Σ_{groups left} max(0, max v − λ·r)`` with ``prices`` λ (K,) ≥ 0 (LP duals; default 0).
    Returns None when more than ``limit`` states (default :func:`max_states`) would be alive,
    when no state passes ``fits``, or when ``time_left()`` (asked before each group) is False.
    """
    m, k = requests.shape
    n_limbs = limbs_needed(values)
    limit = max_states(k, n_limbs) if limit is None else limit
    must = np.zeros(groups.n_groups, dtype=bool) if must is None else must
    if groups.singleton:
        members = [np.array([i]) for i in range(m)]
    else:
        members = np.split(groups.order, groups.starts[1:])
    digits = _limbs(values, n_limbs)
    lam = np.zeros(k) if prices is None else np.maximum(prices, 0.0)
    gbest = np.maximum(groups.max(values), 0.0) if m else np.zeros(0)
    gred = np.maximum(groups.max(values - requests @ lam), 0.0) if m else np.zeros(0)
    gorder = np.argsort(-gbest, kind="stable")
    rest = np.concatenate((np.cumsum(gred[gorder][::-1])[::-1][1:], [0.0]))
    cap = budget * (1.0 + 2.0 * sum_rtol(m)) + (m + 1) * TINY  # surely over beyond this
    # float error of ``approx`` and of the bound (usage within ``cap``)
    margin = 4.0 * sum_rtol(m + k) * (float(gbest.sum()) + 2.0 * float(lam @ cap)) + TINY
    approx, exact, use = np.zeros(1), np.zeros((1, n_limbs), dtype=np.int64), np.zeros((1, k))
    parents: list[np.ndarray] = []
    choices: list[np.ndarray] = []
    built = 1
    for level, g in enumerate(gorder.tolist()):
        if time_left is not None and not time_left():
            return None
        parts_p, parts_c = [], []
        if not must[g]:
            parts_p.append(np.arange(len(approx)))
            parts_c.append(np.full(len(approx), -1))
        for o in members[g].tolist():
            ok = np.nonzero(np.all(use + requests[o] <= cap, axis=1))[0] if k else \
                np.arange(len(approx))
            parts_p.append(ok)
            parts_c.append(np.full(len(ok), o))
        parent = np.concatenate(parts_p)
        choice = np.concatenate(parts_c)
        if len(parent) > 4 * limit:  # even before pruning: too many
            return None
        pick = choice >= 0
        row = np.maximum(choice, 0)
        approx = approx[parent] + np.where(pick, values[row], 0.0)
        exact = exact[parent] + np.where(pick[:, None], digits[row], 0)
        use = use[parent] + np.where(pick[:, None], requests[row], 0.0)
        if lower is not None:
            alive = approx + (cap - use) @ lam + rest[level] >= lower - margin
            if not alive.all():
                parent, choice = parent[alive], choice[alive]
                approx, exact, use = approx[alive], exact[alive], use[alive]
        if len(approx) > limit:
            return None
        parents.append(parent.astype(np.int32))
        choices.append(choice.astype(np.int32))
        built += len(approx)
    exact = _carry(exact)

    def path(state: int) -> np.ndarray:
        sel = np.zeros(m, dtype=bool)
        for level in range(len(parents) - 1, -1, -1):
            c = choices[level][state]
            if c >= 0:
                sel[c] = True
            state = parents[level][state]
        return sel

    exact_of = exact.__getitem__
    found = _best_first(approx, exact_of, margin, path, fits)
    if found is None:
        return None
    state, sel = found
    return Enumerated(sel, float(approx[state]), _sum_up(values[sel]), built)


def _best_first(approx: np.ndarray, exact_of: Callable[[np.ndarray], np.ndarray],
                margin: float, path: Callable[[int], np.ndarray],
                fits: Callable[[np.ndarray], bool]) -> tuple[int, np.ndarray] | None:
    """The state of largest exact value whose selection passes ``fits``: ``(state, selection)``
    or None. ``approx`` (S,): float values within ``margin`` of the exact ones; ``exact_of(idx)``
    -> carried limbs (len(idx), L) of those states; ``path(state)`` -> bool selection.

    Best first, in exact order, over batches of the best approximate values: every state outside
    a batch is worth less than each batch state whose approximation reaches ``cut``.
    """
    if len(approx) and margin < np.inf:  # a clear winner needs no exact comparison
        top = int(np.argmax(approx))
        second = np.max(approx, initial=-np.inf, where=np.arange(len(approx)) != top)
        if second < approx[top] - 2.0 * margin:
            sel = path(top)
            if fits(sel):
                return top, sel
    rejected = np.zeros(len(approx), dtype=bool)
    batch = _BATCH
    while not rejected.all():
        live = np.nonzero(~rejected)[0]
        if len(live) > batch:
            cut = float(np.partition(approx[live], len(live) - batch)[len(live) - batch])
            idx = live[approx[live] >= cut - 2.0 * margin]
        else:
            cut, idx = -np.inf, live
        ex = exact_of(idx)
        keys = tuple(-ex[:, j] for j in range(ex.shape[1] - 1, -1, -1))
        idx = idx[np.lexsort(keys)]  # value descending, ties in state order
        for state in idx.tolist():
            if approx[state] < cut:  # outside states may be worth more: widen the batch
                break
            sel = path(state)
            if fits(sel):
                return state, sel
            rejected[state] = True
        batch *= 4
    return None


def _masks(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Every subset of ``m`` rows: bool (2^m, m) and its transpose as float64 (m, 2^m) (cached
    per m; a pure function of m)."""
    got = _MASKS.get(m)
    if got is None:
        bits = ((np.arange(1 << m)[:, None] >> np.arange(m)) & 1).astype(bool)
        got = _MASKS[m] = (bits, np.ascontiguousarray(bits.T, dtype=np.float64))
    return got


def enumerate_all(values, requests, budget, groups: Groups,
                  fits: Callable[[np.ndarray], bool]) -> Enumerated | None:
    """:func:`enumerate_optimum` for at most :data:`ALL_MAX_ROWS` rows, every selection at once.

    Two matrix products over the 2^M subsets give each one's approximate usage and value; the
    subsets whose usage may fit (within any float summation error) are visited best first in
    exact value order (limbs) until one passes ``fits``. None when none passes.
    """
    m, k = requests.shape
    bits, fbt = _masks(m)
    ok = None
    if not groups.singleton:  # at most one option per group
        onehot = np.zeros((groups.n_groups, m))
        onehot[groups.gid, np.arange(m)] = 1.0
        ok = (onehot @ fbt <= 1.0).all(axis=0)
    if k:
        cap = budget * (1.0 + 2.0 * sum_rtol(m)) + (m + 1) * TINY  # surely over beyond this
        fit = (requests.T @ fbt <= cap[:, None]).all(axis=0)
        ok = fit if ok is None else ok & fit
    alive = np.arange(fbt.shape[1]) if ok is None else np.flatnonzero(ok)
    approx = (values @ fbt)[alive]
    margin = 4.0 * sum_rtol(m) * float(values.sum()) + TINY

    def exact_of(idx: np.ndarray) -> np.ndarray:
        return _carry(bits[alive[idx]].astype(np.int64) @ _limbs(values, limbs_needed(values)))

    def path(state: int) -> np.ndarray:
        return bits[alive[state]]

    found = _best_first(approx, exact_of, margin, path, fits)
    if found is None:
        return None
    state, sel = found
    return Enumerated(sel.copy(), float(approx[state]), _sum_up(values[sel]), len(approx))
