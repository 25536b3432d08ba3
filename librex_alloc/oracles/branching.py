"""Branching on the LP's fractional options: a tighter bound and better answers.

Under a fairness rule the values of one round spread over orders of magnitude, and the LP
optimum often takes a valuable option (a starved agent) or an option that is large in one
resource only in part. Rounding it down leaves much of that resource unused, and the LP bound
stays far above every selection: the certified gap of the fast answer exceeds 1 %.

:func:`branch` splits on such an option ``j`` (one option per agent only): in one branch ``j``
is chosen (the other options share the budget less ``r_j``), in the other it is not; each
branch's LP is solved, rounded (:func:`~.fast.round_relaxation`) and split again: both children
of the root first, then always the open node of largest bound (best first), up to a budget of
LPs. Every selection of the problem lies in exactly one leaf or open node, so the largest of
their bounds (the value of the options fixed in the node plus its LP's Lagrangian bound) is an
upper bound on the optimum, at most the root's LP bound; the nodes' rounded answers are
candidates. A larger budget splits a superset of the nodes (same order), so the bound never
grows with it.

Floating point: the budget less ``r_j`` is rounded *up* (one ulp per subtraction, so it is never
below the exact residual), each leaf's bound is :func:`~._problem.lagrangian_bound` (valid in
exact arithmetic on the data) and the sum with the fixed values is rounded up by a relative
:func:`~._problem.sum_rtol`. Answers are checked by the caller's canonical check.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from librex_alloc.oracles._problem import Groups, lagrangian_bound, sum_rtol
from librex_alloc.oracles.fast import density_key, round_relaxation
from librex_alloc.oracles.relaxation import HotLP, Relaxation, solve_relaxation

#: Levels of splitting (the tree is explored best first, up to :data:`BRANCH_LPS` LPs).
BRANCH_DEPTH = 16
#: LPs solved by the branching at most (two per split; ~0.3–0.5 ms each at n = 150).
BRANCH_LPS = 6
#: The first levels are split in full (both children of the root), the rest best first.
BREADTH_LEVELS = 2
#: Branching runs on at most this many candidate options (one HiGHS call per LP, < 1 ms); on
#: more the LP's few fractional options matter little (the gap vanishes as n grows) and each
#: LP costs tens of milliseconds.
BRANCH_MAX_ROWS = 600
#: The nodes' LPs warm-started in one HiGHS model (:class:`~.relaxation.HotLP`); False: each
#: solved from scratch.
HOT_LP = True
#: An LP value strictly between these is fractional.
_FRAC = 1e-9


@dataclass(frozen=True)
class Branched:
    """selected: the best candidate (bool (M,)) that passed ``fits``, or None; value: its value
    (normalized units); bound: an upper bound on the optimum (normalized units); lps: LPs
    solved; complete: every split up to the depth was made (False when time ran out)."""

    selected: np.ndarray | None
    value: float
    bound: float
    lps: int
    complete: bool
    #: every candidate that passed ``fits`` (value, selection), best first
    candidates: tuple = ()


def _pick(values: np.ndarray, x: np.ndarray, free: np.ndarray) -> int | None:
    """The fractional option of the LP (``x`` over ``free``) of largest value to split on
    (``v·min(x, 1 − x)``, the most valuable far from either side, did no better: BENCHMARKS.md,
    "Fifth pass")."""
    frac = (x > _FRAC) & (x < 1.0 - _FRAC)
    if not frac.any():
        return None
    idx = np.flatnonzero(frac)
    return int(free[idx[np.argmax(values[free[idx]])]])


def root_relaxation(values, requests, budget) -> tuple[Relaxation, tuple] | None:
    """The LP of the candidate problem (one option per group, ``budget`` > 0) solved in the
    :class:`~.relaxation.HotLP` model the branching warm-starts from: ``(relaxation, (HotLP,
    basis))`` for :func:`branch`'s ``warm``, or None (HiGHS reported no optimum: the caller
    uses :func:`~.relaxation.solve_relaxation`). Its bound is the Lagrangian bound at the LP's
    prices, as :func:`~.relaxation.solve_relaxation`'s."""
    m, k = requests.shape
    if not (HOT_LP and k and m):
        return None
    hot = HotLP(values, requests, budget)
    out = hot.solve(np.zeros(m), np.ones(m))
    if out is None:
        return None
    x, lam, basis = out
    groups = Groups.from_labels(None, m)
    bound = lagrangian_bound(values, requests, budget, groups, lam)
    converged = bool(bound - float(values @ x) <= 1e-7 * abs(bound))
    return Relaxation(x, lam, bound, converged, m), (hot, basis)


def branch(values, requests, budget, relax: Relaxation, *, incumbent: float,
           fits: Callable[[np.ndarray], bool], time_left: Callable[[float], bool],
           depth: int = BRANCH_DEPTH, max_lps: int | None = None,
           warm: tuple | None = None, first_split: float = 0.0) -> Branched:
    """Split on fractional options of the LP ``relax`` of the candidate problem (normalized
    units, one option per group; ``values`` (M,) > 0, ``requests`` (M, K), ``budget`` (K,)),
    best first (the open node of largest bound is split next), to ``depth`` levels and at most
    ``max_lps`` LPs (default :data:`BRANCH_LPS`) while ``time_left(seconds)`` (a split
    expected to take ``seconds``: ``first_split`` for the first, then as long as the last one
    took) allows the next split, splitting on the
    fractional option of largest value (:func:`_pick`). ``warm``: ``(HotLP, basis)`` of the
    root LP when the caller solved ``relax`` with :func:`root_relaxation` (else it is solved
    again here, for its basis). A node whose bound is at
    most ``incumbent`` (the value of a known selection) or the best candidate's is not split.
    ``fits(selected (M,)) -> bool``: the canonical check of a candidate. Returns the best
    candidate found and the bound (see the module)."""
    m, k = requests.shape
    max_lps = BRANCH_LPS if max_lps is None else max_lps
    best_sel, best_val = None, -np.inf
    lps = 0
    complete = True
    leaves: list[float] = []
    # (past the breadth-first levels, -bound, sequence, chosen, free, budget, fixed value, LP,
    # level): the first BREADTH_LEVELS levels are split in full, then best first
    heap: list = []
    seq = 0

    found: list = []

    def candidate(sel: np.ndarray) -> None:
        nonlocal best_sel, best_val
        val = float(values[sel].sum())
        if fits(sel):
            found.append((val, len(found), sel))
            if val > best_val:
                best_sel, best_val = sel, val

    def push(chosen, free, b, fixed_val, rx, level, basis) -> None:
        nonlocal seq
        if rx is None:  # nothing left to choose
            leaves.append(fixed_val * (1.0 + sum_rtol(m)))
            candidate(chosen)
            return
        node_bound = (fixed_val + rx.bound) * (1.0 + sum_rtol(m))
        if level:  # the root's rounding is the caller's own answer
            sel = chosen.copy()
            key = density_key(values[free], requests[free], b, rx.lam)
            sel[free[round_relaxation(values[free], requests[free], b,
                                      Groups.from_labels(None, len(free)), rx, key)]] = True
            candidate(sel)
        seq += 1
        heapq.heappush(heap, (level >= BREADTH_LEVELS, -node_bound, seq, chosen, free, b,
                              fixed_val, rx, level, basis))

    # the nodes' LPs: one HiGHS model with options fixed by their bounds, each warm-started
    # from its parent's basis (the root's from a first solve)
    if warm is None:
        root = root_relaxation(values, requests, budget)
        warm = root[1] if root is not None else None
    hot, basis0 = warm if warm is not None else (None, None)

    def node_lp(chosen, fr, bb, basis):
        if hot is not None:
            lower = chosen.astype(np.float64)
            upper = lower.copy()
            upper[fr] = 1.0
            out = hot.solve(lower, upper, basis)
            if out is not None:
                x, lam, basis = out
                bound = lagrangian_bound(values[fr], requests[fr], bb,
                                         Groups.from_labels(None, len(fr)), lam)
                return Relaxation(x[fr], lam, bound, True, len(fr)), basis
        return solve_relaxation(values[fr], requests[fr], bb,
                                Groups.from_labels(None, len(fr))), None

    push(np.zeros(m, dtype=bool), np.arange(m), np.asarray(budget, dtype=np.float64), 0.0,
         relax, 0, basis0)
    last = first_split  # seconds of the last split (the first: the caller's estimate)
    while heap:
        _, neg, _, chosen, free, b, fixed_val, rx, level, basis = heapq.heappop(heap)
        node_bound = -neg
        j = _pick(values, rx.x, free) if level < depth else None
        if j is None or node_bound <= max(incumbent, best_val):
            leaves.append(node_bound)
            continue
        if lps + 2 > max_lps:
            leaves.append(node_bound)
            break
        if not time_left(last):
            complete = False
            leaves.append(node_bound)
            break
        t_split = time.perf_counter()
        rest = free[free != j]
        # j chosen: the others share the budget less r_j (rounded up: never below the exact
        # residual, so no selection of this branch is lost)
        b1 = np.nextafter(b - requests[j], np.inf)
        chosen1 = chosen.copy()
        chosen1[j] = True
        children = [(chosen1, rest, np.maximum(b1, 0.0), fixed_val + float(values[j])),
                    (chosen, rest, b, fixed_val)]
        for ch, fr, bb, fv in children:
            fr = fr[np.all(requests[fr] <= bb, axis=1)] if k else fr  # the rest cannot fit
            sub, bas = None, None
            if len(fr):
                lps += 1
                sub, bas = node_lp(ch, fr, bb, basis)
            push(ch, fr, bb, fv, sub, level + 1, bas)
        last = time.perf_counter() - t_split
    leaves.extend(-h[1] for h in heap)  # open nodes: their bounds still count
    found.sort(key=lambda c: (-c[0], c[1]))
    return Branched(best_sel, float(best_val) if best_sel is not None else -np.inf,
                    max(leaves), lps, complete, tuple((c[0], c[2]) for c in found))
