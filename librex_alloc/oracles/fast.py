"""The fast oracle: LP relaxation, rounding, greedy repair and swap improvement.

The LP optimum has at most K + (number of groups) basic variables, hence at most K
fractional groups; rounding them down loses at most K options' value, so the gap to the
LP bound vanishes as n grows. With one option per agent the rounding is exact on a *core*:
the :data:`CORE_ROWS` options with the smallest relative reduced cost ``|v − λ·r| / v`` (the
fractional ones among them) are chosen by enumerating every subset that fits beside the LP's
other whole options (:func:`core_round`, ~0.1 ms); on small instances this beats the swaps
below on average and costs less. The freed capacity is then refilled greedily by the
dual-adjusted density ``v_i / (λ·r_i)`` (raw ``v_i`` is the wrong key), and (several options
per agent, or more than :data:`SWAP_POOL` options) 1-for-1 swaps between the weakest chosen and
strongest unchosen options improve the objective while they can (:func:`improve` runs them for
``exact``/``auto`` where ``fast`` skips them).

:func:`fill` completes another oracle's answer the same greedy way, and
:func:`fractional_from_relaxation` turns the LP into divisible fractions with at most one
positive option per group. Callers pass normalized data (largest value and every budget in
[0.5, 1)), so the few tolerances here are relative.
"""

from __future__ import annotations

import numpy as np

from librex_alloc.oracles._problem import Groups
from librex_alloc.oracles.enumeration import enumerate_all
from librex_alloc.oracles.relaxation import Relaxation, matvec

SWAP_WINDOW = 64
#: Options around the LP threshold chosen exactly after the LP (:func:`core_round`): 2^12
#: subsets, ~0.1 ms.
CORE_ROWS = 12
#: Neighbourhoods of CORE_ROWS options re-chosen exactly by :func:`improve` (~0.25 ms each).
LNS_PASSES = 2
#: Candidates for the swap windows, picked once per rounding.
SWAP_POOL = 256


def density_key(values, requests, budget, lam) -> np.ndarray:
    """Dual-adjusted density ``v / (λ·r)``; a tiny budget-normalized cost breaks λ = 0 ties."""
    k = requests.shape[1]
    if k == 0:
        return values.copy()
    safe_budget = np.where(budget > 0, budget, 1.0)
    scale = float(lam @ budget) if np.any(lam > 0) else 0.0
    # λ·r + ε Σ_k r_k / B_k in one product
    w = lam + 1e-9 * (scale if scale > 0 else 1.0) / (safe_budget * max(k, 1))
    cost = matvec(requests, w)
    with np.errstate(divide="ignore", over="ignore"):  # tiny costs: the key is +inf
        key = np.where(cost > 0, values / np.where(cost > 0, cost, 1.0), np.inf)
    return key


def _first_k(a: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest entries in ``(a, index)`` order, i.e. ``argsort(a,
    kind="stable")[:k]``, in O(len(a)) plus a sort of the ties at the cut."""
    if len(a) <= k:
        return np.argsort(a, kind="stable")
    cut = np.partition(a, k - 1)[k - 1]
    cand = np.nonzero(a <= cut)[0]  # every entry up to the cut, ties included
    return cand[np.argsort(a[cand], kind="stable")[:k]]


def _fitting(requests, residual, idx: np.ndarray | None = None) -> np.ndarray:
    """The rows (of ``idx``, default all) with ``requests[i] <= residual``, as sorted indices.

    A column at a time, each on the survivors of the previous ones (much faster than
    ``np.all(requests <= residual, axis=1)`` when few rows fit).
    """
    k = requests.shape[1]
    if idx is None:
        if k == 0:
            return np.arange(requests.shape[0])
        idx = np.nonzero(requests[:, 0] <= residual[0])[0]
        first = 1
    else:
        first = 0
    for j in range(first, k):
        if not len(idx):
            break
        idx = idx[requests[idx, j] <= residual[j]]
    return idx


def _slack_tol(budget, m: int) -> np.ndarray:
    """A slack above which float summation order cannot matter: sequential sums of m
    nonnegative terms err by at most ``(m − 1) · 2^-53 ·`` their total (≤ the budget here)."""
    return 8.0 * (m + 16) * 2.0**-53 * np.abs(budget)


def _greedy_fill(values, requests, budget, groups: Groups, selected, key, residual
                 ) -> np.ndarray:
    """Add unchosen options in decreasing ``key`` order while they fit (in place).

    This is first-fit in ``(−key, row)`` order. Candidates are sorted in growing blocks (only
    the first few usually fit); ``residual`` (budget minus usage) is updated incrementally
    and returned.
    """
    k = requests.shape[1]
    taken = None
    if not groups.singleton:
        taken = np.zeros(groups.n_groups, dtype=bool)
        taken[groups.gid[selected]] = True
    # options that do not fit now never will: the residual only shrinks
    rest = _fitting(requests, residual)
    rest = rest[~selected[rest]]
    block = 64
    while len(rest):
        if taken is not None:
            rest = rest[~taken[groups.gid[rest]]]
        if len(rest) > block:
            first = _first_k(-key[rest], block)
            pool = rest[first]
            keep = np.ones(len(rest), dtype=bool)
            keep[first] = False
            rest = rest[keep]
        else:
            pool, rest = rest[np.argsort(-key[rest], kind="stable")], rest[:0]
        while len(pool):
            pool = pool[~selected[pool]]
            if taken is not None:
                pool = pool[~taken[groups.gid[pool]]]
            if k:
                pool = pool[np.all(requests[pool] <= residual, axis=1)]
            view = pool
            if taken is not None and len(view):  # the best-key option of each group
                _, first = np.unique(groups.gid[view], return_index=True)
                view = view[np.sort(first)]
            if not len(view):
                break
            if k:
                use = np.cumsum(requests[view], axis=0)
                ok = np.all(use <= residual, axis=1)
                n_ok = len(view) if ok.all() else int(np.argmin(ok))
                residual = residual - use[n_ok - 1]
            else:
                n_ok = len(view)
            take = view[:n_ok]
            selected[take] = True
            if taken is not None:
                taken[groups.gid[take]] = True
            # each pass takes at least the first option of ``view``, which fits on its own
        rest = _fitting(requests, residual, rest)
        block *= 4
    return residual


def _swap_improve(values, requests, budget, groups: Groups, selected, key, residual,
                  rounds: int) -> np.ndarray:
    """Best 1-for-1 exchanges (and pure additions) within small windows, in place.

    The windows are the ``SWAP_WINDOW`` lowest-value chosen and highest-key unchosen options,
    drawn from pools of ``SWAP_POOL`` of each picked once, plus whatever later rounds add.
    Returns the updated residual.
    """
    sel = np.nonzero(selected)[0]
    out = np.nonzero(~selected)[0]
    if not len(sel) or not len(out):
        return residual
    # with at most SWAP_POOL rows the pools hold every row: no need to build them
    small = len(values) <= SWAP_POOL
    if not small:
        weak_pool = sel[_first_k(values[sel], SWAP_POOL)]
        strong_pool = out[_first_k(-key[out], SWAP_POOL)]
    before = selected.copy()
    total = float(values[sel].sum())  # gains below 1e-12 of it are rounding noise
    taken = None
    if not groups.singleton:
        taken = np.zeros(groups.n_groups, dtype=bool)
    for _ in range(rounds):
        usage = budget - residual
        if small:  # the same windows as below (every chosen row; the rows never chosen)
            weak = np.flatnonzero(selected)
            strong = np.flatnonzero(~(selected | before))
        else:
            added = np.nonzero(selected & ~before)[0]
            weak = np.union1d(weak_pool[selected[weak_pool]], added)
            strong = strong_pool[~selected[strong_pool]]
        weak = weak[_first_k(values[weak], SWAP_WINDOW)]
        strong = strong[_first_k(-key[strong], SWAP_WINDOW)]
        if not len(weak) or not len(strong):
            break
        strong = strong[values[strong] > values[weak].min()]
        if not len(strong):
            break
        gain = values[strong][None, :] - values[weak][:, None]
        # usage after each swap, resource-major (K, weak, strong): the reduction over the
        # leading axis is much faster than over a short trailing one
        r_weak = np.ascontiguousarray(requests[weak].T)  # contiguous: ~5x faster below
        r_strong = np.ascontiguousarray(requests[strong].T)
        after = (usage[:, None, None] - r_weak[:, :, None]) + r_strong[:, None, :]
        ok = (after <= budget[:, None, None]).all(axis=0) & (gain > 1e-12 * total)
        if taken is not None:
            # the incoming option's group must be free, or be the outgoing option's group
            taken[:] = False
            taken[groups.gid[selected]] = True
            same = groups.gid[weak][:, None] == groups.gid[strong][None, :]
            ok &= same | ~taken[groups.gid[strong]][None, :]
        if not ok.any():
            break
        flat = int(np.argmax(np.where(ok, gain, -np.inf)))
        i, j = divmod(flat, len(strong))
        selected[weak[i]] = False
        selected[strong[j]] = True
        residual = residual + requests[weak[i]] - requests[strong[j]]
        total += float(gain[i, j])
        residual = _greedy_fill(values, requests, budget, groups, selected, key, residual)
    return residual


def core_round(values, requests, budget, relax: Relaxation, key, size: int = CORE_ROWS
               ) -> np.ndarray:
    """One option per group only (singleton groups): keep the LP's whole options outside a
    *core* of the ``size`` options with the smallest relative reduced cost ``|v − λ·r| / v``
    (the fractional ones are among them), and choose the best subset of the core that fits the
    rest of the budget by enumerating every one (:func:`enumerate_all`). Returns bool (M,),
    within the budget (canonical float check)."""
    d = values - matvec(requests, relax.lam)
    core = _first_k(np.abs(d) / values, size)  # values > 0 (candidate rows)
    fixed = relax.x >= 1.0 - 1e-9
    fixed[core] = False
    _repair(requests, budget, fixed, key)  # the LP's tolerance may leave it a hair over
    residual = budget - requests[fixed].sum(axis=0)
    cand = core[_fitting(requests[core], residual)] if requests.shape[1] else core
    if not len(cand):
        return fixed

    def fits(sub: np.ndarray) -> bool:
        sel = fixed.copy()
        sel[cand[sub]] = True
        return bool(np.all(requests[sel].sum(axis=0) <= budget))

    out = enumerate_all(values[cand], requests[cand], residual, Groups.from_labels(None,
                        len(cand)), fits)
    if out is not None:
        fixed[cand[out.selected]] = True
    return fixed


def swaps_skipped(groups: Groups, m: int) -> bool:
    """Whether :func:`round_relaxation` leaves out the swaps on ``m`` options (one option per
    group, at most :data:`SWAP_POOL`: the core is enumerated instead)."""
    return groups.singleton and CORE_ROWS < m <= SWAP_POOL


def round_relaxation(values, requests, budget, groups: Groups, relax: Relaxation,
                     key: np.ndarray | None = None) -> np.ndarray:
    """Integral selection (bool (M,)) from an LP solution; always within the budget
    (``requests[selected].sum(axis=0) <= budget`` holds exactly in float64). ``key``: the
    :func:`density_key` at the LP prices, if the caller has it.

    One option per group: :func:`core_round`, then the greedy fill, then (more than
    :data:`SWAP_POOL` options) swaps. Several: the LP's whole options (one per group), the
    greedy fill and swaps."""
    k = requests.shape[1]
    if key is None:
        key = density_key(values, requests, budget, relax.lam)
    if groups.singleton and len(values) > CORE_ROWS:
        selected = core_round(values, requests, budget, relax, key)
        residual = budget - requests[selected].sum(axis=0)
        residual = _greedy_fill(values, requests, budget, groups, selected, key, residual)
        if not swaps_skipped(groups, len(values)):
            residual = _swap_improve(values, requests, budget, groups, selected, key, residual,
                                     rounds=2 * k + 4)
    else:
        selected = relax.x >= 1.0 - 1e-9
        if not groups.singleton:  # tolerance could leave two near-1 options in one group
            order = np.nonzero(selected)[0]
            _, first = np.unique(groups.gid[order], return_index=True)
            keep = np.zeros_like(selected)
            keep[order[first]] = True
            selected = keep
        _repair(requests, budget, selected, key)
        residual = budget - requests[selected].sum(axis=0)
        residual = _greedy_fill(values, requests, budget, groups, selected, key, residual)
        residual = _swap_improve(values, requests, budget, groups, selected, key, residual,
                                 rounds=2 * k + 4)
    # the residual was updated incrementally: check the canonical sums where it is thin
    if k and np.any(residual <= _slack_tol(budget, len(values))):
        _repair(requests, budget, selected, key)
    return selected


def _repair(requests, budget, selected, key) -> None:
    """Drop the lowest-density options until the canonical float sums fit (in place)."""
    if not requests.shape[1] or np.all(requests[selected].sum(axis=0) <= budget):
        return
    for i in np.nonzero(selected)[0][np.argsort(key[selected], kind="stable")]:
        selected[i] = False
        if np.all(requests[selected].sum(axis=0) <= budget):
            return


def improve(values, requests, budget, groups: Groups, selected, key, lam,
            passes: int = LNS_PASSES) -> np.ndarray:
    """``selected`` (bool (M,), within the budget) improved by 1-for-1 swaps and the greedy
    fill (:func:`_swap_improve`, ``key``: :func:`density_key`), then (one option per group)
    ``passes`` neighbourhoods of :data:`CORE_ROWS` options enumerated exactly with the rest
    fixed (:func:`_neighbourhoods`, prices ``lam``); a new array, within the budget."""
    k = requests.shape[1]
    selected = selected.copy()
    residual = budget - requests[selected].sum(axis=0)
    residual = _swap_improve(values, requests, budget, groups, selected, key, residual,
                             rounds=2 * k + 4)
    if k and np.any(residual <= _slack_tol(budget, len(values))):
        _repair(requests, budget, selected, key)
    if groups.singleton and len(values) > CORE_ROWS:
        selected = _neighbourhoods(values, requests, budget, groups, selected, key, lam, passes)
    return selected


def _neighbourhoods(values, requests, budget, groups: Groups, selected, key, lam,
                    passes: int) -> np.ndarray:
    """Large-neighbourhood search around ``selected`` (one option per group): in pass p the
    chosen options ranked p·h … p·h + 2h − 1 by smallest relative reduced cost ``(v − λ·r)/v``
    and the unchosen ones ranked the same by largest (h = CORE_ROWS / 4) are re-chosen exactly
    (:func:`enumerate_all`) with the other options fixed, then the greedy fill; kept when
    better. Returns the selection (within the budget)."""
    rel = (values - matvec(requests, lam)) / values
    half = CORE_ROWS // 2
    step = max(1, half // 2)
    best = float(values[selected].sum())
    for p in range(passes):
        chosen, out = np.flatnonzero(selected), np.flatnonzero(~selected)
        lo = p * step
        weak = chosen[_first_k(rel[chosen], lo + half)][lo:]
        strong = out[_first_k(-rel[out], lo + half)][lo:]
        core = np.concatenate((weak, strong))
        if not len(core):
            break
        fixed = selected.copy()
        fixed[core] = False
        residual = budget - requests[fixed].sum(axis=0)
        cand = core[_fitting(requests[core], residual)] if requests.shape[1] else core
        if not len(cand):
            continue

        def fits(sub: np.ndarray, fixed=fixed, cand=cand) -> bool:
            sel = fixed.copy()
            sel[cand[sub]] = True
            return bool(np.all(requests[sel].sum(axis=0) <= budget))

        out_e = enumerate_all(values[cand], requests[cand], residual,
                              Groups.from_labels(None, len(cand)), fits)
        if out_e is None:  # pragma: no cover - the incumbent's own subset always fits
            continue
        fixed[cand[out_e.selected]] = True
        residual = budget - requests[fixed].sum(axis=0)
        residual = _greedy_fill(values, requests, budget, groups, fixed, key, residual)
        if requests.shape[1] and np.any(residual <= _slack_tol(budget, len(values))):
            _repair(requests, budget, fixed, key)
        value = float(values[fixed].sum())
        if value > best:
            selected, best = fixed, value
    return selected


def fill(values, requests, budget, groups: Groups, selected, lam) -> np.ndarray:
    """``selected`` (bool (M,), within the budget) plus every option that still fits, added
    greedily by dual-adjusted density; a new array, within the budget in float64."""
    selected = selected.copy()
    key = density_key(values, requests, budget, lam)
    residual = budget - requests[selected].sum(axis=0)
    residual = _greedy_fill(values, requests, budget, groups, selected, key, residual)
    if requests.shape[1] and np.any(residual <= _slack_tol(budget, len(values))):
        _repair(requests, budget, selected, key)
    return selected


def fractional_from_relaxation(values, requests, budget, groups: Groups, relax: Relaxation
                               ) -> np.ndarray:
    """Fractions (M,) in [0, 1] from an LP solution, at most one positive option per group.

    Where the LP splits a group between options, only the option with the largest value
    contribution ``v_i x_i`` keeps its fraction; the freed capacity is refilled greedily by
    dual-adjusted density (raising fractions, never opening a second option in a group). The
    usage ``x @ requests`` stays within ``budget`` up to the LP's tolerance (the caller trims).
    """
    x = np.clip(relax.x, 0.0, 1.0)
    x[x < 1e-12] = 0.0
    if groups.singleton:
        return x
    pos = np.nonzero(x > 0)[0]
    counts = np.bincount(groups.gid[pos], minlength=groups.n_groups)
    if not np.any(counts > 1):
        return x
    contrib = np.where(x > 0, values * x, -1.0)
    _, _, best = groups.top_two(contrib)  # the largest contribution per group (-1: none)
    keep = np.zeros(len(x), dtype=bool)
    keep[best[best >= 0]] = True
    x[~keep] = 0.0
    k = requests.shape[1]
    residual = np.maximum(budget - x @ requests, 0.0) if k else np.zeros(0)
    # candidates: the kept option of each group, or any option of an empty group
    owner = np.full(groups.n_groups, -1)
    owner[groups.gid[keep]] = np.nonzero(keep)[0]
    rows = np.arange(len(x))
    cand = rows[((owner[groups.gid] == -1) | (owner[groups.gid] == rows)) & (x < 1.0)]
    key = density_key(values[cand], requests[cand], budget, relax.lam)
    cand = cand[np.argsort(-key, kind="stable")]
    for _ in range(4 * k + 64):  # each step fills a row or exhausts a resource
        own = owner[groups.gid[cand]]
        cand = cand[(own == -1) | (own == cand)]
        if k and len(cand):
            req = requests[cand]
            with np.errstate(divide="ignore", invalid="ignore"):
                room = np.where(req > 0, residual / np.where(req > 0, req, 1.0), np.inf)
            room = room.min(axis=1)
            cand, room = cand[room > 0], room[room > 0]
        else:
            room = np.full(len(cand), np.inf)
        if not len(cand):
            break
        i, want = cand[0], 1.0 - x[cand[0]]
        add = min(want, float(room[0]))
        x[i] += add
        owner[groups.gid[i]] = i
        if k:
            residual = np.maximum(residual - add * requests[i], 0.0)
            if add < want:  # partial: its tightest resource is used up
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(requests[i] > 0, residual / requests[i], np.inf)
                residual[int(np.argmin(ratio))] = 0.0
        cand = cand[1:]
    return x
