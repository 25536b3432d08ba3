"""The fast oracle: LP relaxation, rounding, greedy repair and swap improvement.

The LP optimum has at most K + (number of groups) basic variables, hence at most K
fractional groups; rounding them down loses at most K options' value, so the gap to the
LP bound vanishes as n grows. The freed capacity is refilled greedily by the dual-adjusted
density ``v_i / (λ·r_i)`` (raw ``v_i`` is the wrong key), then 1-for-1 swaps between the
weakest chosen and strongest unchosen options improve the objective while they can.
"""

from __future__ import annotations

import numpy as np

from librex_alloc.oracles._problem import Groups
from librex_alloc.oracles.relaxation import Relaxation

SWAP_WINDOW = 64


def density_key(values, requests, budget, lam) -> np.ndarray:
    """Dual-adjusted density ``v / (λ·r)``; a tiny budget-normalized cost breaks λ = 0 ties."""
    k = requests.shape[1]
    if k == 0:
        return values.copy()
    safe_budget = np.where(budget > 0, budget, 1.0)
    norm_cost = (requests / safe_budget).sum(axis=1)
    scale = float(lam @ budget) if np.any(lam > 0) else 0.0
    cost = requests @ lam + 1e-9 * (scale if scale > 0 else 1.0) * norm_cost / max(k, 1)
    with np.errstate(divide="ignore"):
        key = np.where(cost > 0, values / np.where(cost > 0, cost, 1.0), np.inf)
    return key


def _greedy_fill(values, requests, budget, groups: Groups, selected, key) -> None:
    """Add unchosen options in decreasing ``key`` order while they fit (in place)."""
    taken = np.zeros(groups.n_groups, dtype=bool)
    taken[groups.gid[selected]] = True
    residual = budget - requests[selected].sum(axis=0)
    pool = np.nonzero(~selected & ~taken[groups.gid])[0]
    pool = pool[np.argsort(-key[pool], kind="stable")]
    while len(pool):
        # options that no longer fit never will again: the residual only shrinks
        pool = pool[~taken[groups.gid[pool]]]
        if requests.shape[1]:
            pool = pool[np.all(requests[pool] <= residual, axis=1)]
        view = pool
        if not groups.singleton and len(view):  # the best-key option of each group
            _, first = np.unique(groups.gid[view], return_index=True)
            view = view[np.sort(first)]
        if not len(view):
            break
        if requests.shape[1]:
            fits = np.all(np.cumsum(requests[view], axis=0) <= residual, axis=1)
            n_ok = len(view) if fits.all() else int(np.argmin(fits))
        else:
            n_ok = len(view)
        take = view[:n_ok]
        selected[take] = True
        taken[groups.gid[take]] = True
        residual = budget - requests[selected].sum(axis=0)
        # each pass takes at least the first option of ``view``, which fits on its own


def _swap_improve(values, requests, budget, groups: Groups, selected, key, rounds: int) -> None:
    """Best 1-for-1 exchanges (and pure additions) within small windows, in place."""
    for _ in range(rounds):
        sel = np.nonzero(selected)[0]
        if not len(sel):
            return
        usage = requests[sel].sum(axis=0)
        taken = np.zeros(groups.n_groups, dtype=bool)
        taken[groups.gid[sel]] = True
        out = np.nonzero(~selected)[0]
        if not len(out):
            return
        weak = sel[np.argsort(values[sel], kind="stable")[:SWAP_WINDOW]]
        strong = out[np.argsort(-key[out], kind="stable")[:SWAP_WINDOW]]
        strong = strong[values[strong] > values[weak].min()]
        if not len(strong):
            return
        gain = values[strong][None, :] - values[weak][:, None]
        after = usage[None, None, :] - requests[weak][:, None, :] + requests[strong][None, :, :]
        ok = np.all(after <= budget, axis=2) & (gain > 1e-12 * max(1.0, float(values[sel].sum())))
        # the incoming option's group must be free, or be the outgoing option's group
        same = groups.gid[weak][:, None] == groups.gid[strong][None, :]
        ok &= same | ~taken[groups.gid[strong]][None, :]
        if not ok.any():
            return
        flat = int(np.argmax(np.where(ok, gain, -np.inf)))
        i, j = divmod(flat, len(strong))
        selected[weak[i]] = False
        selected[strong[j]] = True
        _greedy_fill(values, requests, budget, groups, selected, key)


def round_relaxation(values, requests, budget, groups: Groups, relax: Relaxation) -> np.ndarray:
    """Integral selection (bool (M,)) from an LP solution; always within the budget."""
    selected = relax.x >= 1.0 - 1e-9
    key = density_key(values, requests, budget, relax.lam)
    if not groups.singleton:  # tolerance could leave two near-1 options in one group
        order = np.nonzero(selected)[0]
        _, first = np.unique(groups.gid[order], return_index=True)
        keep = np.zeros_like(selected)
        keep[order[first]] = True
        selected = keep
    # repair: drop the lowest-density options until the float sums fit
    usage = requests[selected].sum(axis=0)
    if requests.shape[1] and np.any(usage > budget):
        for i in np.nonzero(selected)[0][np.argsort(key[selected], kind="stable")]:
            selected[i] = False
            if np.all(requests[selected].sum(axis=0) <= budget):
                break
    _greedy_fill(values, requests, budget, groups, selected, key)
    _swap_improve(values, requests, budget, groups, selected, key, rounds=2 * requests.shape[1] + 4)
    return selected


def fractional_from_relaxation(requests, budget, relax: Relaxation) -> np.ndarray:
    """Fractions (M,) in [0, 1] from an LP solution, scaled so the float sums fit exactly."""
    x = np.clip(relax.x, 0.0, 1.0).copy()
    x[x < 1e-12] = 0.0
    for _ in range(4):
        usage = x @ requests if requests.shape[1] else np.zeros(0)
        over = usage > budget
        if not over.any():
            return x
        factor = np.min(np.where(over, budget / np.where(usage > 0, usage, 1.0), 1.0))
        x *= factor * (1.0 - 1e-12)
    x[:] = 0.0  # pragma: no cover - unreachable in practice
    return x
