"""Compiled LP branch and bound for one option per agent: ``auto``'s search (issue 18).

Under a fairness rule the optimum of a round differs from the LP's integral part in 5–20
options, some far from the LP threshold (rank 50–110 of 150 by relative reduced cost), and
moves around the LP answer miss it: on 400 value vectors of ``bench round --fairness``
(n = 150, K = 4–5) ``auto`` with 6 HiGHS LPs of branching answered 69 rounds below 99.9 % of
the optimum; 400 such LPs would bring that to 7, at 0.5 ms per node (the HiGHS call and the
numpy rounding). Here the search runs compiled (numba), 10–30 µs per node (the core's
depth-first search takes half of it on some instances, the K = 5 simplex more on others):

- **LP.** Each node's LP, ``max v·x`` s.t. ``Σ_i r_i x_i ≤ b``, ``lo ≤ x ≤ up`` (``lo = up``
  for the options the node fixes), is solved by a bounded dual simplex on the K resource
  rows (one slack each), warm-started from its parent's basis: fixing the fractional option
  leaves the basis dual feasible, so a few pivots restore the optimum. The ratio test flips
  bounds (a boxed option whose flip leaves the leaving row infeasible is passed), so the root
  LP, from the slack basis with every option at its upper bound, takes about a dozen pivots
  (at most 39 on the 400 offline vectors of seed 0) instead of about one per option
  (:func:`root_lp`: it replaces HiGHS for ``auto``'s search). The pivot row and the reduced
  costs are computed for every option at once on the transposed requests. The K × K inverse
  is updated per pivot and refactored (Gauss–Jordan) at every node and every 16 pivots.
- **Bound.** Nothing of the certificate rests on the simplex being exact: each node's bound
  is the Lagrangian bound of its subproblem at its prices ``λ = max(0, duals)`` (valid for
  any ``λ ≥ 0``) with the rounding slack of :func:`~._problem.lagrangian_bound`; a simplex
  that stalls or finds the LP infeasible (rounding only: a node is opened only when its
  fixed-in options fit) closes its node with that bound. The search's bound is the largest
  over the closed and the open nodes (and the best answer).
- **Answers.** Each node's answer is its *core* chosen exactly (:func:`_core`: the 14 free
  options of smallest reduced cost ``|v − λ·r|`` at the node's prices, the best subset that
  fits beside the LP's other whole options), then the greedy fill by the root's dual-adjusted
  density; a new best answer is polished by 1-for-1 exchanges (:func:`_swaps`). Answers are
  checked with sequential sums here and with the canonical check by the caller.
- **Order.** Best first (the open node of largest bound), splitting on the free fractional
  option of largest value; a node bounded by the best answer is closed. The search stops at
  a number of LPs or of units of work (:func:`_work`: LPs, pivots and the cores' steps,
  weighted by their measured cost), whichever comes first: the same work takes about the
  same time on every instance, and the same input always stops at the same node. Plunging (depth
  first into the child of larger bound), a fill by each node's own prices, the most
  fractional option and a core searched by its Lagrangian bound did worse per millisecond
  (BENCHMARKS.md, "Fifth pass").

The state lives in arrays (:class:`Search`), so the search runs in slices of LPs and stops
at a deadline; slices give the same search as one run, and the same input the same answer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: primal feasibility tolerance of the simplex (normalized units: budgets in [0.5, 1))
_PTOL = 1e-9
#: smallest pivot entry accepted in the ratio test
_PIVOT = 1e-11
#: an LP value strictly between these is fractional
_FRAC = 1e-9
_UNIT = 2.0**-53
#: 1-for-1 exchanges tried on each new best answer of a node (:func:`_swaps`)
SWAP_MOVES = 8
#: options of each node's core, chosen exactly (:func:`_core`)
CORE = 14
#: the search's work (:func:`_work`): per LP ``M·K``, per pivot ``WORK_PIVOT·(M + K)·K``, per
#: step of a core's search ``WORK_STEP`` units; a least-squares fit of the search's time on the
#: 2 × 400 offline vectors (150 LPs each, n = 150, K = 4–5: 3.7, 5.1 and 8.3 ns per unit,
#: median error 7 %), so a unit is about 4 ns on the machine of BENCHMARKS.md ("Sixth pass")
WORK_PIVOT = 1.35
WORK_STEP = 2.2
# the search's scalars, in one float array: the best value, LPs solved, the largest bound of
# a closed node, open-node slots used, whether an answer was found, the simplex's pivots and
# the cores' search steps (the work, :func:`_work`)
_BEST, _LPS, _CLOSED, _USED, _FOUND, _PIVOTS, _STEPS, _SLOTS = 0, 1, 2, 3, 4, 5, 6, 7


@njit(cache=True)
def _invert(rows, basis, m, binv):
    """``binv`` = the inverse of the basis matrix (K, K) (columns: options' requests or unit
    slack columns); False when it is singular."""
    k = rows.shape[1]
    a = np.zeros((k, 2 * k))
    for p in range(k):
        j = basis[p]
        if j < m:
            for c in range(k):
                a[c, p] = rows[j, c]
        else:
            a[j - m, p] = 1.0
        a[p, k + p] = 1.0
    for col in range(k):
        piv = col
        best = abs(a[col, col])
        for r in range(col + 1, k):
            if abs(a[r, col]) > best:
                best = abs(a[r, col])
                piv = r
        if best < 1e-13:
            return False
        if piv != col:
            for c in range(2 * k):
                t = a[col, c]
                a[col, c] = a[piv, c]
                a[piv, c] = t
        inv = 1.0 / a[col, col]
        for c in range(2 * k):
            a[col, c] *= inv
        for r in range(k):
            if r != col and a[r, col] != 0.0:
                f = a[r, col]
                for c in range(2 * k):
                    a[r, c] -= f * a[col, c]
    for r in range(k):
        for c in range(k):
            binv[r, c] = a[r, k + c]
    return True


@njit(cache=True)
def _simplex(values, rows, cols, budget, lo, up, basis, atup, x, lam, max_iter, count):
    """Bounded dual simplex from the dual-feasible ``basis``/``atup`` (in place); fills
    ``x`` (M,) and ``lam`` (K,) ≥ 0; adds its pivots to ``count[0]``. Returns 0 optimal, 1
    infeasible, 2 stalled (iteration limit or a singular basis: ``lam`` are the last prices,
    still a valid Lagrangian point)."""
    m, k = rows.shape
    binv = np.empty((k, k))
    isbasic = np.zeros(m + k, np.bool_)
    for p in range(k):
        isbasic[basis[p]] = True
    rhs = np.empty(k)
    xb = np.empty(k)
    w = np.empty(k)
    alpha = np.empty(m + k)
    d = np.empty(m)
    c_j = np.empty(m + k, np.int64)  # the ratio test's candidates
    c_ratio = np.empty(m + k)
    c_alpha = np.empty(m + k)
    flips = np.empty(m, np.int64)
    y = np.zeros(k)  # duals of the min problem (c = -v): lam = -y
    status = 2
    if not _invert(rows, basis, m, binv):
        for c in range(k):
            lam[c] = 0.0
        return 2
    # rhs = b − Σ_{nonbasic options} r_j x_j (nonbasic slacks are 0), kept up to date
    for c in range(k):
        rhs[c] = budget[c]
    for j in range(m):
        if not isbasic[j]:
            xj = up[j] if atup[j] else lo[j]
            if xj != 0.0:
                for c in range(k):
                    rhs[c] -= rows[j, c] * xj
    for it in range(max_iter):
        for p in range(k):
            s = 0.0
            for c in range(k):
                s += binv[p, c] * rhs[c]
            xb[p] = s
        # y = c_B binv
        for c in range(k):
            s = 0.0
            for p in range(k):
                j = basis[p]
                if j < m:
                    s -= values[j] * binv[p, c]
            y[c] = s
        # leaving row: the largest bound violation
        r = -1
        worst = _PTOL
        below = False
        for p in range(k):
            j = basis[p]
            lj = lo[j] if j < m else 0.0
            if lj - xb[p] > worst:
                worst = lj - xb[p]
                r = p
                below = True
            elif j < m and xb[p] - up[j] > worst:
                worst = xb[p] - up[j]
                r = p
                below = False
        if r < 0:
            status = 0
            break
        # the pivot row (alpha_j = row r of the inverse · column j), every option at once
        for c in range(k):
            alpha[m + c] = binv[r, c]
        for j in range(m):
            alpha[j] = 0.0
        for c in range(k):
            f = binv[r, c]
            if f != 0.0:
                for j in range(m):
                    alpha[j] += f * cols[c, j]
        # the options' reduced costs (of the min problem, c = -v), every option at once
        for j in range(m):
            d[j] = -values[j]
        for c in range(k):
            f = y[c]
            if f != 0.0:
                for j in range(m):
                    d[j] -= f * cols[c, j]
        # the ratio test, bound flipping: the eligible columns by increasing ratio |d_j| /
        # |alpha_j|; a boxed option whose flip to its other bound leaves row r still
        # infeasible is passed (flipped), the first that does not enters
        n_c = 0
        for j in range(m + k):
            if isbasic[j]:
                continue
            a = alpha[j]
            if j < m:
                if lo[j] == up[j]:
                    continue
                at_upper = atup[j]
            else:
                at_upper = False
            if below:
                ok = (a < -_PIVOT and not at_upper) or (a > _PIVOT and at_upper)
            else:
                ok = (a > _PIVOT and not at_upper) or (a < -_PIVOT and at_upper)
            if ok:  # the reduced cost only for the eligible columns
                dj = d[j] if j < m else -y[j - m]
                c_j[n_c] = j
                c_ratio[n_c] = abs(dj) / abs(a)
                c_alpha[n_c] = abs(a)
                n_c += 1
        q = -1
        n_flip = 0
        slope = worst  # row r's infeasibility left
        while n_c > 0:
            t = 0
            for u in range(1, n_c):  # the smallest ratio (ties: the largest |alpha|)
                if c_ratio[u] < c_ratio[t] or (c_ratio[u] == c_ratio[t]
                                               and c_alpha[u] > c_alpha[t]):
                    t = u
            j = c_j[t]
            drop = c_alpha[t] * (up[j] - lo[j]) if j < m else np.inf
            if slope - drop <= 0.0:
                q = j
                break
            slope -= drop
            flips[n_flip] = j
            n_flip += 1
            n_c -= 1
            c_j[t] = c_j[n_c]
            c_ratio[t] = c_ratio[n_c]
            c_alpha[t] = c_alpha[n_c]
        if q < 0:
            status = 1
            break
        for t in range(n_flip):  # the passed options change bounds
            j = flips[t]
            dx = (lo[j] - up[j]) if atup[j] else (up[j] - lo[j])
            atup[j] = not atup[j]
            for c in range(k):
                rhs[c] -= rows[j, c] * dx
        leaving = basis[r]
        isbasic[leaving] = False
        if leaving < m:
            atup[leaving] = not below
            xl = up[leaving] if atup[leaving] else lo[leaving]
            if xl != 0.0:
                for c in range(k):
                    rhs[c] -= rows[leaving, c] * xl
        if q < m:
            xq = up[q] if atup[q] else lo[q]
            if xq != 0.0:
                for c in range(k):
                    rhs[c] += rows[q, c] * xq
        basis[r] = q
        isbasic[q] = True
        count[0] += 1.0
        # the inverse updated by the pivot (eta), refactored every 16 pivots
        if (it + 1) % 16 == 0:
            if not _invert(rows, basis, m, binv):
                status = 2
                break
        else:
            for c in range(k):
                w[c] = 0.0
            for c in range(k):
                col = rows[q, c] if q < m else (1.0 if c == q - m else 0.0)
                if col != 0.0:
                    for p in range(k):
                        w[p] += binv[p, c] * col
            if abs(w[r]) < 1e-12:
                if not _invert(rows, basis, m, binv):
                    status = 2
                    break
            else:
                piv = 1.0 / w[r]
                for c in range(k):
                    binv[r, c] *= piv
                for p in range(k):
                    if p != r and w[p] != 0.0:
                        f = w[p]
                        for c in range(k):
                            binv[p, c] -= f * binv[r, c]
    for c in range(k):
        lam[c] = max(0.0, -y[c])
    for j in range(m):
        if not isbasic[j]:
            x[j] = up[j] if atup[j] else lo[j]
    for p in range(k):
        j = basis[p]
        if j < m:
            x[j] = min(max(xb[p], lo[j]), up[j])
    return status


@njit(cache=True)
def _node_bound(values, rows, budget, fix, lam):
    """The Lagrangian bound of a node's subproblem at ``lam`` (≥ 0): ``λ·b + Σ_{fixed in}
    (v − λ·r) + Σ_{free} max(0, v − λ·r)``, plus the rounding slack of evaluating it."""
    m, k = rows.shape
    total = 0.0
    mag = 0.0
    for c in range(k):
        total += lam[c] * budget[c]
        mag += lam[c] * budget[c]
    for i in range(m):
        if fix[i] == 0:
            continue
        rl = 0.0
        for c in range(k):
            rl += lam[c] * rows[i, c]
        d = values[i] - rl
        mag += abs(values[i]) + rl
        if fix[i] == 1 or d > 0.0:
            total += d
    return total + 2.0 * (m + k + 4) * _UNIT * mag


@njit(cache=True)
def _answer(values, rows, budget, x, fix, order, sel, use):
    """A node's answer in ``sel``: the LP's whole options (the fixed-in ones among them), then
    the other options in ``order`` (decreasing dual-adjusted density at the root's prices)
    while they fit (sequential sums, exact comparisons: the caller checks the canonical sums).
    Returns its value (-1: the whole options do not fit)."""
    m, k = rows.shape
    for i in range(m):
        sel[i] = x[i] >= 1.0 - _FRAC
    _recount(rows, sel, use)
    for c in range(k):
        if use[c] > budget[c]:  # the LP's tolerance: start from the fixed-in options only
            for i in range(m):
                sel[i] = fix[i] == 1
            _recount(rows, sel, use)
            break
    for c in range(k):
        if use[c] > budget[c]:
            return -1.0
    _fill(rows, budget, order, sel, use)
    return _total(values, sel)


@njit(cache=True)
def _core(values, rows, budget, x, fix, lam, size, order, sel, use, steps):
    """A node's answer by its *core*: the ``size`` free options of smallest reduced cost
    ``|v − λ·r|`` (the fractional ones among them), chosen beside the LP's other whole
    options by the subset of largest value that fits (depth first, bounded by the value left
    and by the Lagrangian bound), then the greedy fill in ``order``; into ``sel``/``use``.
    Returns its value, or -1 when the whole options do not fit; adds the depth-first
    search's steps (the core positions it visits going forward) to ``steps[0]``.

    The absolute reduced cost, not ``|v − λ·r| / v``: on the 14 seed-0 offline rounds that
    ``auto`` answered below 99.9 % with the relative one, the options in which the optimum
    differs from the answer rank at most 61st of 150 by it (112th by the relative one)."""
    m, k = rows.shape
    # the size smallest (ties: the lower index first), kept sorted in one pass
    core = np.empty(size, np.int64)
    top = np.empty(size)
    n_core = 0
    for i in range(m):
        if fix[i] != -1:
            continue
        rl = 0.0
        for c in range(k):
            rl += lam[c] * rows[i, c]
        r = abs(values[i] - rl)
        if n_core == size and (size == 0 or not r < top[size - 1]):
            continue
        pos = n_core if n_core < size else size - 1
        while pos > 0 and top[pos - 1] > r:
            top[pos] = top[pos - 1]
            core[pos] = core[pos - 1]
            pos -= 1
        top[pos] = r
        core[pos] = i
        if n_core < size:
            n_core += 1
    for i in range(m):
        sel[i] = x[i] >= 1.0 - _FRAC
    for t in range(n_core):
        sel[core[t]] = False
    _recount(rows, sel, use)
    for c in range(k):
        if use[c] > budget[c]:
            return -1.0
    core = core[:n_core]
    cv = np.empty(n_core)
    for t in range(n_core):
        cv[t] = values[core[t]]
    core = core[np.argsort(-cv)]
    rest = np.zeros(n_core + 1)  # the value of the core options not yet decided
    rest_d = np.zeros(n_core + 1)  # ... and Σ max(0, v − λ·r) over them
    for t in range(n_core - 1, -1, -1):
        i = core[t]
        rest[t] = rest[t + 1] + values[i]
        rl = 0.0
        for c in range(k):
            rl += lam[c] * rows[i, c]
        rest_d[t] = rest_d[t + 1] + max(0.0, values[i] - rl)
    lr = np.empty(n_core)  # λ·r of the core options
    for t in range(n_core):
        i = core[t]
        rl = 0.0
        for c in range(k):
            rl += lam[c] * rows[i, c]
        lr[t] = rl
    cap = 0.0  # λ·(the capacity left), kept up to date
    for c in range(k):
        cap += lam[c] * (budget[c] - use[c])
    take = np.zeros(n_core, np.bool_)
    best_take = np.zeros(n_core, np.bool_)
    cur = use.copy()
    best_val = -1.0
    val = 0.0
    t = 0
    n_steps = 0
    # depth first, each option in before out: go forward taking what fits while the bound
    # beats the best (nothing below beats it otherwise: by the value left, or by the
    # Lagrangian bound λ·the capacity left + Σ max(0, v − λ·r) over the options left), then
    # back to the last option taken and on without it
    while True:
        while t < n_core:
            n_steps += 1
            if min(val + rest[t], val + rest_d[t] + cap) <= best_val:
                break
            i = core[t]
            if _fits(rows, i, cur, budget):
                take[t] = True
                for c in range(k):
                    cur[c] += rows[i, c]
                val += values[i]
                cap -= lr[t]
            t += 1
        if t == n_core and val > best_val:
            best_val = val
            best_take[:] = take
        t -= 1
        while t >= 0 and not take[t]:
            t -= 1
        if t < 0:
            break
        i = core[t]
        take[t] = False
        for c in range(k):
            cur[c] -= rows[i, c]
        val -= values[i]
        cap += lr[t]
        t += 1
    steps[0] += n_steps
    for t in range(n_core):
        if best_take[t]:
            sel[core[t]] = True
    _recount(rows, sel, use)
    _fill(rows, budget, order, sel, use)
    return _total(values, sel)


@njit(cache=True)
def _recount(rows, sel, use):
    """``use`` = the usage of ``sel`` (sequential sums)."""
    m, k = rows.shape
    for c in range(k):
        use[c] = 0.0
    for i in range(m):
        if sel[i]:
            for c in range(k):
                use[c] += rows[i, c]


@njit(cache=True)
def _total(values, sel):
    total = 0.0
    for i in range(len(values)):
        if sel[i]:
            total += values[i]
    return total


@njit(cache=True)
def _fits(rows, i, use, budget):
    """Option ``i`` fits beside the usage ``use``."""
    for c in range(rows.shape[1]):
        if use[c] + rows[i, c] > budget[c]:
            return False
    return True


@njit(cache=True)
def _fill(rows, budget, order, sel, use):
    """Add the unchosen options in ``order`` while they fit (in place)."""
    m, k = rows.shape
    for t in range(m):
        i = order[t]
        if not sel[i] and _fits(rows, i, use, budget):
            sel[i] = True
            for c in range(k):
                use[c] += rows[i, c]


@njit(cache=True)
def _swaps(values, rows, budget, order, sel, use, moves):
    """Best 1-for-1 exchanges (then the fill) while one gains, at most ``moves`` (in place);
    returns the value."""
    m, k = rows.shape
    total = _total(values, sel)
    for _ in range(moves):
        best = 1e-12 * total
        bi = -1
        bj = -1
        for i in range(m):
            if not sel[i]:
                continue
            for j in range(m):
                if sel[j] or values[j] - values[i] <= best:
                    continue
                ok = True
                for c in range(k):
                    if use[c] - rows[i, c] + rows[j, c] > budget[c]:
                        ok = False
                        break
                if ok:
                    best = values[j] - values[i]
                    bi = i
                    bj = j
        if bi < 0:
            break
        sel[bi] = False
        sel[bj] = True
        _recount(rows, sel, use)  # recomputed: no drift from the updates
        _fill(rows, budget, order, sel, use)
        total = _total(values, sel)
    return total


@njit(cache=True)
def _pick(values, x, fix):
    """The free fractional option of largest value (-1: the LP is integral)."""
    best = -1.0
    j = -1
    for i in range(len(x)):
        if fix[i] == -1 and _FRAC < x[i] < 1.0 - _FRAC and values[i] > best:
            best = values[i]
            j = i
    return j


@njit(cache=True)
def _process(values, rows, cols, budget, fix, basis, atup, st, o_fix, o_basis, o_atup, o_bound,
             o_var, o_alive, best_sel, order, max_iter, core, moves):
    """Solve one node's LP (``fix``: -1 free, 0 out, 1 in; warm ``basis``/``atup``), try its
    answer (:func:`_core`, then :func:`_swaps` when it is the best so far), and open the node
    (to be split on ``o_var``) or close it (its bound into ``st``)."""
    m, k = rows.shape
    lo = np.zeros(m)
    up = np.ones(m)
    for i in range(m):
        if fix[i] == 0:
            up[i] = 0.0
        elif fix[i] == 1:
            lo[i] = 1.0
    x = np.zeros(m)
    lam = np.zeros(k)
    status = _simplex(values, rows, cols, budget, lo, up, basis, atup, x, lam, max_iter,
                      st[_PIVOTS:_PIVOTS + 1])
    st[_LPS] += 1.0
    # status 1 (the LP found infeasible) is closed with its bound like a stalled node: the
    # caller opens a node only when its fixed-in options fit, so only rounding gets here
    bound = _node_bound(values, rows, budget, fix, lam)
    if not np.isfinite(bound):  # prices out of range: the bound at λ = 0 (always finite)
        for c in range(k):
            lam[c] = 0.0
        bound = _node_bound(values, rows, budget, fix, lam)
        status = 2
    incumbent = st[_BEST]
    if status == 0 and bound > incumbent:  # (a node to close needs no answer)
        sel = np.empty(m, np.bool_)
        use = np.empty(k)
        val = _core(values, rows, budget, x, fix, lam, core, order, sel, use,
                    st[_STEPS:_STEPS + 1])
        if val < 0.0:  # the LP's whole options are a hair over: from the fixed-in ones
            val = _answer(values, rows, budget, x, fix, order, sel, use)
        if val > incumbent:  # a new best answer: polished by exchanges
            val = _swaps(values, rows, budget, order, sel, use, moves)
            st[_BEST] = val
            incumbent = val
            best_sel[:] = sel
            st[_FOUND] = 1.0
    j = _pick(values, x, fix) if status == 0 else -1
    if j < 0 or bound <= incumbent:
        if bound > st[_CLOSED]:
            st[_CLOSED] = bound
        return
    slot = int(st[_USED])
    o_fix[slot] = fix
    o_basis[slot] = basis
    o_atup[slot] = atup
    o_bound[slot] = bound
    o_var[slot] = j
    o_alive[slot] = True
    st[_USED] += 1.0


@njit(cache=True)
def _work(st, m, k):
    """The search's work so far, in units (:data:`WORK_PIVOT`): deterministic, unlike time."""
    return (st[_LPS] * m * k + WORK_PIVOT * st[_PIVOTS] * (m + k) * k
            + WORK_STEP * st[_STEPS])


@njit(cache=True)
def _run(values, rows, cols, budget, st, o_fix, o_basis, o_atup, o_bound, o_var, o_alive, best_sel,
         order, max_lps, max_work, max_iter, core, moves):
    """Split open nodes, best first, until ``max_lps`` LPs were solved, the work reached
    ``max_work`` (:func:`_work`) or none is left open; returns True when the search is complete
    (every node closed)."""
    cap = o_bound.shape[0]
    m, k = rows.shape
    while True:
        slot = -1
        top = -np.inf
        for s in range(int(st[_USED])):
            if o_alive[s] and o_bound[s] > top:
                top = o_bound[s]
                slot = s
        if slot < 0:
            return True
        if top <= st[_BEST]:  # every open node is closed by the best answer
            for s in range(int(st[_USED])):
                if o_alive[s]:
                    o_alive[s] = False
                    if o_bound[s] > st[_CLOSED]:
                        st[_CLOSED] = o_bound[s]
            return True
        if st[_LPS] + 2 > max_lps or _work(st, m, k) >= max_work or st[_USED] + 2 > cap:
            return False
        o_alive[slot] = False
        j = o_var[slot]
        for side in (1, 0):
            fix = o_fix[slot].copy()
            fix[j] = side
            ok = True
            if side == 1:  # the option must fit beside the fixed-in ones (beyond rounding)
                for c in range(k):
                    s = rows[j, c]
                    for i in range(m):
                        if fix[i] == 1 and i != j:
                            s += rows[i, c]
                    if s > budget[c] + 2.0 * (m + 4) * _UNIT * (s + budget[c]):
                        ok = False
                        break
            if ok:
                _process(values, rows, cols, budget, fix, o_basis[slot].copy(),
                         o_atup[slot].copy(), st, o_fix, o_basis, o_atup, o_bound, o_var,
                         o_alive, best_sel, order, max_iter, core, moves)


def root_lp(values, requests, budget):
    """The LP relaxation ``max v·x`` s.t. ``Σ_i r_i x_i ≤ b``, ``0 ≤ x ≤ 1`` by the kernel's
    simplex from the slack basis (every option at its upper bound: dual feasible):
    ``(x, lam, basis, atup)`` at its optimum, or None when the simplex stalled or found it
    infeasible (the caller then asks HiGHS). ``basis``/``atup`` start a :class:`Search` there.
    ``lam`` are the optimal prices; any ``λ ≥ 0`` gives a valid Lagrangian bound, so the
    certificate never rests on this simplex."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    rows = np.ascontiguousarray(requests, dtype=np.float64)
    m, k = rows.shape
    basis = np.arange(m, m + k, dtype=np.int64)
    atup = np.ones(m, np.bool_)
    x, lam = np.zeros(m), np.zeros(k)
    status = _simplex(values, rows, np.ascontiguousarray(rows.T),
                      np.ascontiguousarray(budget, dtype=np.float64), np.zeros(m), np.ones(m),
                      basis, atup, x, lam, 4 * (m + k) + 20, np.zeros(1))
    return (x, lam, basis, atup) if status == 0 else None


class Search:
    """A best-first LP branch and bound over ``values`` (M,) > 0, ``requests`` (M, K),
    ``budget`` (K,) > 0 (normalized units), for at most ``max_lps`` LPs and ``max_work``
    units of work (:func:`_work`: a deterministic measure of its time, which per LP varies by
    2–3 times between instances), in slices (:meth:`run`). ``key`` (M,): the dual-adjusted
    density of the root (the order of the greedy fill); ``incumbent``: the value of a known
    answer (a node bounded by it is closed, and only better answers are kept); ``core``: the
    options of each node's core (:func:`_core`); ``moves``: the exchanges tried on each new
    best answer (:func:`_swaps`); ``root``: ``(basis, atup)`` of :func:`root_lp` (its LP is
    then not solved again).

    After the runs: :attr:`selected` (bool (M,), or None when nothing better than the
    incumbent was found), :attr:`value`, :attr:`bound` (an upper bound on every selection's
    value, over the closed and the open nodes), :attr:`lps`, :attr:`work`, :attr:`complete`,
    :attr:`spent` (no split fits in the limits). The same input gives the same answer (no
    clock, no randomness)."""

    def __init__(self, values, requests, budget, key, *, incumbent: float, max_lps: int,
                 max_work: float = np.inf, core: int = CORE, moves: int = SWAP_MOVES,
                 root=None):
        self.values = np.ascontiguousarray(values, dtype=np.float64)
        self.rows = np.ascontiguousarray(requests, dtype=np.float64)
        self.cols = np.ascontiguousarray(self.rows.T)  # (K, M): the pivot rows' layout
        self.budget = np.ascontiguousarray(budget, dtype=np.float64)
        m, k = self.rows.shape
        self.max_lps = int(max_lps)
        self.max_work = float(max_work)
        self.core, self.moves = int(core), int(moves)
        cap = self.max_lps + 4
        self.st = np.zeros(_SLOTS)
        self.st[_BEST] = float(incumbent)
        self.st[_CLOSED] = -np.inf
        self.o_fix = np.empty((cap, m), np.int8)
        self.o_basis = np.empty((cap, k), np.int64)
        self.o_atup = np.empty((cap, m), np.bool_)
        self.o_bound = np.empty(cap)
        self.o_var = np.empty(cap, np.int64)
        self.o_alive = np.zeros(cap, np.bool_)
        self.best = np.zeros(m, np.bool_)
        self.max_iter = 4 * (m + k) + 20
        self.complete = False
        self.order = np.argsort(-np.asarray(key, dtype=np.float64), kind="stable")
        # the root: from the basis of root_lp, else every slack basic and every option at
        # its upper bound (dual feasible)
        if root is None:
            basis, atup = np.arange(m, m + k, dtype=np.int64), np.ones(m, np.bool_)
        else:
            basis = np.array(root[0], dtype=np.int64)
            atup = np.array(root[1], dtype=np.bool_)
        _process(self.values, self.rows, self.cols, self.budget, np.full(m, -1, np.int8),
                 basis, atup, self.st,
                 self.o_fix, self.o_basis, self.o_atup, self.o_bound, self.o_var, self.o_alive,
                 self.best, self.order, self.max_iter, self.core, self.moves)

    def run(self, lps: int | None = None) -> bool:
        """Split nodes for at most ``lps`` more LPs (default: up to ``max_lps``); True when
        the search is complete."""
        limit = self.max_lps if lps is None else min(self.max_lps, self.lps + int(lps))
        self.complete = bool(_run(self.values, self.rows, self.cols, self.budget, self.st,
                                  self.o_fix,
                                  self.o_basis, self.o_atup, self.o_bound, self.o_var,
                                  self.o_alive, self.best, self.order, limit, self.max_work,
                                  self.max_iter, self.core, self.moves))
        return self.complete

    @property
    def lps(self) -> int:
        return int(self.st[_LPS])

    @property
    def work(self) -> float:
        m, k = self.rows.shape
        return float(_work(self.st, m, k))

    @property
    def spent(self) -> bool:
        """No further split runs: every LP (a split solves two) or the work is spent."""
        return self.lps + 2 > self.max_lps or self.work >= self.max_work

    @property
    def pivots(self) -> int:
        return int(self.st[_PIVOTS])

    @property
    def steps(self) -> int:
        return int(self.st[_STEPS])

    @property
    def value(self) -> float:
        return float(self.st[_BEST])

    @property
    def selected(self) -> np.ndarray | None:
        return self.best.copy() if self.st[_FOUND] else None

    @property
    def bound(self) -> float:
        used = int(self.st[_USED])
        alive = self.o_alive[:used]
        top = float(self.o_bound[:used][alive].max()) if alive.any() else -np.inf
        return max(float(self.st[_CLOSED]), top, float(self.st[_BEST]))


def warm() -> None:
    """Compile (or load from numba's cache) every kernel: a tiny search."""
    rng = np.random.default_rng(0)
    values = rng.random(16) + 0.1
    requests = rng.random((16, 2))
    budget = requests.sum(axis=0) / 3
    Search(values, requests, budget, values, incumbent=0.0, max_lps=8).run()
