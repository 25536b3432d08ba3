"""The LP relaxation of the multiple-choice knapsack: smoothed-dual prices, then a working set.

A full HiGHS solve costs ~70 ms at n = 10,000 and ~6 s at n = 100,000 on the 2-core machine.
Up to :data:`FULL_LP_ROWS` rows (and for the working sets below) HiGHS is called through its
own bindings shipped in SciPy, on a reused per-thread object with presolve and scaling off
(~0.15 ms of set-up; ``linprog`` costs ~2 ms even for 8 rows, and is the fallback). Larger
relaxations are solved through their dual, ``L(λ) = λ·B + Σ_g max(0, max_{i∈g} v_i − λ·r_i)``
(min over λ ≥ 0 equals the LP optimum):

1. **Prices.** Projected Newton on the smoothed dual ``F_t(λ) = λ·B + t Σ_g log(1 +
   Σ_{i∈g} exp((v_i − λ·r_i)/t))`` (a K×K system per step), lowering the temperature ``t``
   fourfold per step. Large temperatures run on random subsamples of groups with a
   proportionally scaled budget (their statistical error is below ``t``), the last steps on all
   groups, until only a few dozen groups have a reduced-cost margin below ``t`` (a sample
   stage also until its prices balance its budget within :data:`BALANCE`). ``F_t`` is
   within ``t·log 2`` per group of ``L`` and is smooth, so Newton converges in a few steps.
2. **Working set.** With reduced costs ``d_i = v_i − λ·r_i`` every group whose best choice
   (an option or nothing) wins by more than a few ``t`` is fixed; the rest form the working set,
   whose LP (HiGHS, budget minus the fixed choices) gives exact prices. Every fixed group whose
   choice is no longer optimal under them joins the working set; repeat (usually not needed).

When no fixed group is violated the combined solution is an optimal solution of the full LP
(primal feasible, and complementary slackness holds for every group). Whatever happens, the
returned bound is the Lagrangian bound at the returned prices, valid for any λ ≥ 0.
The random subsamples use a fixed seed: the same input gives the same output.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from librex_alloc.errors import OracleError
from librex_alloc.oracles._problem import (  # noqa: F401 - matvec: re-exported
    _BLOCK,
    Groups,
    lagrangian_bound,
    matvec,
    vecmat,
)

#: HiGHS's tolerances are absolute. The callers normalize (largest value in [0.5, 1), every
#: budget in [0.5, 1)) and the rows are scaled to budget 1, so these are relative; 1e-7 would
#: be coarse.
_HIGHS_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
try:  # HiGHS's own Python bindings, as shipped inside SciPy (>= 1.15)
    from scipy.optimize._highspy import _core as _highs_core

    _HIGHS_DIRECT = hasattr(_highs_core, "_Highs")
except ImportError:  # pragma: no cover - older SciPy: linprog only
    _highs_core, _HIGHS_DIRECT = None, False
_LOCAL = threading.local()
#: Below this many rows the LP is solved in one piece.
FULL_LP_ROWS = 600
MAX_ROUNDS = 8
#: Smallest subsample of groups for the first Newton steps; later stages are 8× larger.
FIRST_SAMPLE = 1024
#: Temperature divisor per Newton step.
COOLING = 4.0
#: |z| = |margin| / t beyond which a choice is certain in double precision (e^-40 ≈ 4e-18).
_CERTAIN = 40.0


def _gram(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(a * w[:, None]).T @ a`` (K, K), single-threaded (see :data:`_BLOCK`)."""
    m, k = a.shape
    rows = max(1, _BLOCK // max(k, 1))
    out = np.zeros((k, k))
    for s in range(0, m, rows):
        blk = a[s:s + rows]
        out += (blk * w[s:s + rows, None]).T @ blk
    return out


@dataclass(frozen=True)
class Relaxation:
    """LP solution: ``x`` (M,) in [0, 1], prices ``lam`` (K,) ≥ 0 and the Lagrangian ``bound``."""

    x: np.ndarray
    lam: np.ndarray
    bound: float
    converged: bool
    lp_rows: int


def _highs():
    """This thread's HiGHS object: silent, presolve and scaling off (they cost more than they
    save on these small LPs, whose rows are scaled already), the tight tolerances of
    :data:`_HIGHS_OPTIONS`. Every solve starts from scratch
    (``clearSolver``; the model is replaced), so nothing carries over between calls."""
    h = getattr(_LOCAL, "highs", None)
    if h is None:
        h = _highs_core._Highs()
        for key, value in (("output_flag", False), ("presolve", "off"),
                           ("simplex_scale_strategy", 0), *_HIGHS_OPTIONS.items()):
            h.setOptionValue(key, value)
        _LOCAL.highs = h
    return h


def _lp_direct(cost, start, index, value, row_upper) -> tuple[np.ndarray, np.ndarray] | None:
    """``min cost·x`` s.t. ``A x ≤ row_upper``, ``0 ≤ x ≤ 1`` (A column-wise: ``start``,
    ``index``, ``value``) with HiGHS's own bindings: ``(x, row duals)``, or None when HiGHS
    does not report an optimum (the caller then uses ``linprog``)."""
    n_col, n_row = len(cost), len(row_upper)
    h = _highs()
    h.clearSolver()
    core = _highs_core
    status = h.passModel(n_col, n_row, len(value), int(core.MatrixFormat.kColwise),
                         int(core.ObjSense.kMinimize), 0.0, cost, np.zeros(n_col),
                         np.ones(n_col), np.full(n_row, -np.inf), row_upper, start, index, value,
                         np.zeros(n_col, dtype=np.int32))
    if status == core.HighsStatus.kError:  # pragma: no cover - a model HiGHS rejects
        return None
    h.run()
    if h.getModelStatus() != core.HighsModelStatus.kOptimal:
        return None
    sol = h.getSolution()
    return np.array(sol.col_value, dtype=np.float64), np.array(sol.row_dual, dtype=np.float64)


class HotLP:
    """The LP of a one-option-per-agent problem (``values`` (M,) > 0, ``requests`` (M, K),
    ``budget`` (K,) > 0) kept in a HiGHS object of its own, re-solved after fixing options to
    0 or 1 and warm-started from an earlier basis (the branching of :mod:`~.branching`: a few
    dual simplex iterations instead of a solve from scratch).

    :meth:`solve` returns ``(x (M,), λ (K,), basis)`` or None when HiGHS reports no optimum
    (the caller then solves from scratch). The model is passed anew by the constructor and
    every solve sets its bounds and basis explicitly, so the answers depend on the calls made
    on this object only (in order), never on what ran before it.
    """

    def __init__(self, values, requests, budget):
        m, k = requests.shape
        self.m, self.k = m, k
        self.rscale = np.where(budget > 0, budget, 1.0)
        h = getattr(_LOCAL, "hot", None)
        if h is None:
            h = _highs_core._Highs()
            for key, value in (("output_flag", False), ("presolve", "off"),
                               ("simplex_scale_strategy", 0), *_HIGHS_OPTIONS.items()):
                h.setOptionValue(key, value)
            _LOCAL.hot = h
        h.clearSolver()
        core = _highs_core
        start = np.arange(0, m * k + 1, k, dtype=np.int32)
        index = np.tile(np.arange(k, dtype=np.int32), m)
        value = (requests / self.rscale).ravel()
        status = h.passModel(m, k, len(value), int(core.MatrixFormat.kColwise),
                             int(core.ObjSense.kMinimize), 0.0, -np.asarray(values, float),
                             np.zeros(m), np.ones(m), np.full(k, -np.inf), budget / self.rscale,
                             start, index, value, np.zeros(m, dtype=np.int32))
        self.ok = status != core.HighsStatus.kError
        self.h = h
        self.cols = np.arange(m, dtype=np.int32)

    def solve(self, lower: np.ndarray, upper: np.ndarray, basis=None):
        """The LP with ``lower ≤ x ≤ upper`` (float (M,), 0 or 1), from ``basis`` if given."""
        if not self.ok:
            return None
        h, core = self.h, _highs_core
        h.changeColsBounds(self.m, self.cols, lower, upper)
        if basis is not None:
            h.setBasis(basis)
        h.run()
        if h.getModelStatus() != core.HighsModelStatus.kOptimal:
            return None
        sol = h.getSolution()
        x = np.clip(np.array(sol.col_value, dtype=np.float64), 0.0, 1.0)
        lam = np.maximum(-np.array(sol.row_dual, dtype=np.float64), 0.0) / self.rscale
        return x, lam, h.getBasis()


def _lp(values, requests, budget, groups: Groups) -> tuple[np.ndarray, np.ndarray]:
    """Solve the LP exactly with HiGHS; returns (x, λ).

    Each resource row is divided by its budget first: HiGHS's tolerances are absolute
    (~1e-7), and prices of order v/r (1e-6 with requests ~1e5) would otherwise come back as 0
    with a suboptimal x. HiGHS is called through its own bindings (:func:`_lp_direct`, ~0.1 ms
    of set-up) when SciPy ships them, else (or when they fail) through ``linprog`` (~2 ms).
    """
    m, k = requests.shape
    if m == 0:
        return np.zeros(0), np.zeros(k)
    rscale = np.where(budget > 0, budget, 1.0)
    if k:
        top = np.max(requests, axis=0)
        rscale = np.where(budget > 0, budget, np.where(top > 0, top, 1.0))
    r = None  # each option's group row (-1: its group has one option)
    n_multi = 0
    if not groups.singleton:
        sizes = np.bincount(groups.gid, minlength=groups.n_groups)
        multi = np.nonzero(sizes > 1)[0]
        n_multi = len(multi)
        if n_multi:
            remap = np.full(groups.n_groups, -1)
            remap[multi] = np.arange(n_multi)
            r = remap[groups.gid]
    if not k and not n_multi:
        return (values > 0).astype(float), np.zeros(k)
    # the constraint matrix column-wise: each option's scaled requests (zeros included), then
    # its group's row when the group has several options
    if r is None:
        start = np.arange(0, m * k + 1, k, dtype=np.int32)
        index = np.tile(np.arange(k, dtype=np.int32), m)
        value = (requests / rscale).ravel()
    else:
        idx = np.empty((m, k + 1), dtype=np.int32)
        val = np.empty((m, k + 1))
        idx[:, :k] = np.arange(k, dtype=np.int32)
        val[:, :k] = requests / rscale
        idx[:, k] = k + r
        val[:, k] = 1.0
        keep = np.ones((m, k + 1), dtype=bool)
        keep[:, k] = r >= 0
        start = np.zeros(m + 1, dtype=np.int32)
        np.cumsum(np.count_nonzero(keep, axis=1), out=start[1:])
        index, value = idx[keep], val[keep]
    b = np.concatenate((budget / rscale, np.ones(n_multi)))
    out = None
    if _HIGHS_DIRECT:
        try:
            out = _lp_direct(-values, start, index, value, b)
        except Exception:  # pragma: no cover - an incompatible SciPy build: use linprog
            out = None
    if out is not None:
        x, dual = out
    else:
        a = sparse.csc_matrix((value, index, start), shape=(k + n_multi, m))
        for options in (_HIGHS_OPTIONS, {}):  # tight tolerances can stall HiGHS: then defaults
            res = linprog(-values, A_ub=a, b_ub=b, bounds=(0.0, 1.0), method="highs",
                          options=options)
            if res.status == 0 and res.x is not None:
                break
        else:  # x = 0 is always feasible: HiGHS gave up (seen with values of 1e20 unnormalized)
            raise OracleError(f"HiGHS failed on a feasible LP (status {res.status}): "
                              f"{res.message}")
        x, dual = res.x, np.asarray(res.ineqlin.marginals, dtype=np.float64)
    lam = np.maximum(-dual[:k], 0.0)
    return np.clip(x, 0.0, 1.0), lam / rscale


class _Smoothed:
    """``F_t``, its gradient and Hessian on a fixed set of rows.

    ``starts`` None: every row is its own group; else rows are sorted by group and group j is
    ``rows[starts[j]:starts[j + 1]]``, so per-group reductions are ``ufunc.reduceat`` calls.
    """

    def __init__(self, values, requests, budget, starts: np.ndarray | None):
        self.v, self.r, self.b, self.starts = values, requests, budget, starts
        if starts is not None:
            self.sizes = np.diff(np.append(starts, len(values)))
        self.last_d = values  # reduced costs at the last evaluated prices

    def _top(self, d):
        """Per group: max(0, max d) and the same repeated per row."""
        top = np.maximum(np.maximum.reduceat(d, self.starts), 0.0)
        return top, np.repeat(top, self.sizes)

    def _value(self, lam, d, t: float) -> float:
        if self.starts is None:
            za = np.abs(d[np.abs(d) < _CERTAIN * t]) / t
            return float(lam @ self.b + np.maximum(d, 0.0).sum() + t * np.log1p(np.exp(-za)).sum())
        top, top_rows = self._top(d)
        ea = np.exp(np.maximum(d - top_rows, -_CERTAIN * t) / t)
        z = np.exp(-top / t) + np.add.reduceat(ea, self.starts)
        return float(lam @ self.b + top.sum() + t * np.log(z).sum())

    def __call__(self, lam, t: float, hessian: bool = True, t_check: float | None = None):
        """(F, gradient, Hessian or None, groups with a margin below about ``t``, F at
        ``t_check`` or None), sharing one product ``R λ``."""
        d = self.v - matvec(self.r, lam)
        self.last_d = d
        f_check = None if t_check is None else self._value(lam, d, t_check)
        if not hessian:
            return self._value(lam, d, t), None, None, 0, f_check
        if self.starts is None:
            act = np.nonzero(np.abs(d) < _CERTAIN * t)[0]
            za = d[act] / t
            f = float(lam @ self.b + np.maximum(d, 0.0).sum()
                      + t * np.log1p(np.exp(-np.abs(za))).sum())
            p = (d > 0).astype(np.float64)
            pa = 0.5 * (1.0 + np.tanh(0.5 * za))
            p[act] = pa
            grad = self.b - vecmat(p, self.r)
            close = int(np.count_nonzero(np.abs(za) < 1.0))
            return f, grad, _gram(self.r[act], pa * (1.0 - pa) / t), close, f_check
        top, top_rows = self._top(d)
        ea = np.exp(np.maximum(d - top_rows, -_CERTAIN * t) / t)
        z0 = np.exp(-top / t)  # the "nothing" option
        z = z0 + np.add.reduceat(ea, self.starts)
        f = float(lam @ self.b + top.sum() + t * np.log(z).sum())
        p = ea / np.repeat(z, self.sizes)
        q = np.add.reduceat(self.r * p[:, None], self.starts, axis=0)
        grad = self.b - q.sum(axis=0)
        close = int(np.count_nonzero(z > 1.0 + np.exp(-1.0)))  # runner-up within ~t
        # covariance of r under each group's choice distribution ("nothing" has r = 0)
        p0 = z0 / z
        unsure = np.maximum.reduceat(p, self.starts) < 1.0 - 1e-15
        rows = np.nonzero(np.repeat(unsure, self.sizes) & (p > 1e-17))[0]
        c = self.r[rows] - np.repeat(q, self.sizes, axis=0)[rows] if len(rows) else \
            np.zeros((0, len(lam)))
        hess = _gram(c, p[rows] / t) + _gram(q[unsure], p0[unsure] / t)
        return f, grad, hess, close, f_check


#: Cooling stops only where every price's projected gradient ``B_k − usage_k`` is within this
#: fraction of its budget (see :func:`_balanced`).
BALANCE = 0.1


def _balanced(fn: _Smoothed, lam, grad, balance: float | None) -> bool:
    """Whether the prices nearly balance the budget: every projected gradient (``grad_k``
    where ``λ_k > 0``, its negative part where ``λ_k = 0``) within ``balance`` of its budget
    (None: no condition). Few groups near the margin alone do not tell: prices far too high
    also leave few (every reduced cost far below 0), and a sample stage that stopped there
    left the full problem ~3x the Newton steps late in a 10,000-agent run."""
    if balance is None:
        return True
    pg = np.where(lam > 0, grad, np.minimum(grad, 0.0))
    return bool(np.all(np.abs(pg) <= balance * fn.b))


def _newton(fn: _Smoothed, lam, t: float, steps: int, stop_active: int, polish: int,
            balance: float | None = None) -> tuple[np.ndarray, float, float]:
    """Projected Newton on ``F_t`` with backtracking, cooling ``t`` after every full step.

    Cooling stops once at most ``stop_active`` groups have a margin below about ``t`` (with
    a ``balance``: ``t`` is held while the prices do not yet balance the budget within it, see
    :func:`_balanced`, and the stage ends once they do); then
    up to ``polish`` more steps at that ``t`` while a step moves some reduced cost by more
    than ``t / 2``. At most ``steps`` steps. Returns (λ, t, the largest change of any reduced
    cost in the last step).
    """
    f, grad, hess, close, _ = fn(lam, t)
    frozen = close <= stop_active and _balanced(fn, lam, grad, balance)
    moved = 0.0
    if frozen and not polish:
        return lam, t, moved
    for _ in range(steps):
        free = (lam > 0) | (grad < 0)
        # with a balance condition, few groups near the margin hold t (Newton at that t
        # balances the prices); cooling further would outrun a sample's statistical error
        hold = frozen or (balance is not None and close <= stop_active)
        t_next = t if hold else t / COOLING
        if free.any():
            h = hess[np.ix_(free, free)]
            h = h + (1e-12 * (np.trace(h) + 1e-300)) * np.eye(len(h))
            step = np.zeros_like(lam)
            step[free] = -np.linalg.solve(h, grad[free])
            if not np.all(np.isfinite(step)):  # pragma: no cover - degenerate Hessian
                break
            d_old = fn.last_d
            trial = np.maximum(lam + step, 0.0)
            # the trial point's derivatives at the next temperature, and F_t for the test
            ev = fn(trial, t_next, t_check=t)
            if ev[4] > f + 1e-4 * float(grad @ (trial - lam)) + 1e-13 * abs(f):
                alpha = 0.5
                for _ in range(30):  # backtrack at this temperature, then no cooling
                    trial = np.maximum(lam + alpha * step, 0.0)
                    if fn(trial, t, hessian=False)[0] <= \
                            f + 1e-4 * float(grad @ (trial - lam)) + 1e-13 * abs(f):
                        break
                    alpha *= 0.5
                else:
                    break
                t_next = t
                ev = fn(trial, t)
            moved = float(np.max(np.abs(fn.last_d - d_old)))
            lam = trial
        else:  # λ = 0 minimizes F_t: cool and look again
            moved = 0.0
            ev = fn(lam, t_next)
        cooled = t_next < t
        t = t_next
        f, grad, hess, close, _ = ev
        if frozen:
            polish -= 1
            if moved <= 0.5 * t or polish <= 0:
                break
        elif (cooled or balance is not None) and close <= stop_active and \
                _balanced(fn, lam, grad, balance):
            frozen = True
            if not polish:
                break
    return lam, t, moved


def _sample_rows(groups: Groups, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of the picked groups, sorted by pick, and the start of each (None: singleton)."""
    if groups.singleton:
        return pick, None
    m = len(groups.gid)
    counts = np.diff(np.append(groups.starts, m))
    size = counts[pick]
    ends = np.cumsum(size)
    offs = np.arange(ends[-1]) - np.repeat(ends - size, size)
    rows = groups.order[np.repeat(groups.starts[pick], size) + offs]
    return rows, ends - size


def _smoothed_prices(values, requests, budget, groups: Groups
                     ) -> tuple[np.ndarray, float, float]:
    """Near-optimal dual prices, the final temperature and the last Newton step's largest
    change of a reduced cost (see the module docstring)."""
    m, k = requests.shape
    g = groups.n_groups
    scale = float(np.mean(np.abs(values))) or 1.0
    mean_r = requests.mean(axis=0)
    lam = np.where(mean_r > 0, scale / (k * np.where(mean_r > 0, mean_r, 1.0)), 0.0)
    t = scale
    target = 16 + 4 * k
    rng = np.random.default_rng(0x11B7E)  # fixed: the same input gives the same output
    s = FIRST_SAMPLE
    while 2 * s < g:
        rows, starts = _sample_rows(groups, rng.choice(g, size=s, replace=True))
        fn = _Smoothed(values[rows], requests[rows], budget * (s / g), starts)
        # a sample's price error is about t when ~sqrt(s) of its groups have margins below t
        lam, t, _ = _newton(fn, lam, t, 12, max(target, int(np.sqrt(s))), 0, BALANCE)
        s *= 8
    if groups.singleton:
        fn = _Smoothed(values, requests, budget, None)
    else:
        fn = _Smoothed(values[groups.order], requests[groups.order], budget, groups.starts)
    return _newton(fn, lam, t, 30, target, 3)


def lp_closed(values, x, bound: float) -> bool:
    """Whether primal ``x`` and the dual ``bound`` agree, i.e. both are LP-optimal (HiGHS works
    to ~1e-7 relative tolerances; a larger disagreement means it returned inexact duals)."""
    return bool(bound - float(values @ x) <= 1e-7 * abs(bound))


def solve_relaxation(values, requests, budget, groups: Groups) -> Relaxation:
    """LP relaxation of the candidate problem (all values > 0, every row fits alone)."""
    m, k = requests.shape
    if m <= FULL_LP_ROWS or k == 0:
        x, lam = _lp(values, requests, budget, groups)
        bound = lagrangian_bound(values, requests, budget, groups, lam)
        return Relaxation(x, lam, bound, lp_closed(values, x, bound), m)

    lam, t, moved = _smoothed_prices(values, requests, budget, groups)
    g = groups.n_groups
    tol = 1e-9 * float(np.max(np.abs(values)))  # relative to the values
    best: tuple[float, np.ndarray] | None = None  # the best (bound, λ) after an LP
    start = lam
    keep: np.ndarray | None = None  # groups carried over from the last round (violators)
    x, lp_rows = np.zeros(m), 0
    margin = 4.0 * t + 2.0 * moved
    width = min(g, 24 + 8 * k)  # fewest groups in the working set
    for _ in range(MAX_ROUNDS):
        d = values - matvec(requests, lam)
        top1, top2, arg = groups.top_two(d)
        gap = top1 - top2
        core = np.zeros(g, dtype=bool) if keep is None else keep.copy()
        near = gap < margin
        for _ in range(200):  # widen the margin until enough groups are in
            if np.count_nonzero(near) >= width:
                break
            margin = 2.0 * margin if margin > 0 else float(np.min(gap[gap > 0], initial=1.0))
            near = gap < margin
        else:  # pragma: no cover - only with non-finite margins
            near[:] = True
        core |= near
        fixed = (~core) & (arg >= 0)
        x = np.zeros(m)
        x[arg[fixed]] = 1.0
        residual = budget - vecmat(x, requests)
        if np.any(residual < 0):
            # prices too low: move the weakest fixed choices into the core until they fit,
            # and as many again so the core has room to choose
            out = np.nonzero(fixed)[0]
            out = out[np.argsort(gap[out], kind="stable")]
            use = np.cumsum(requests[arg[out]][::-1], axis=0)[::-1]  # usage of out[j:]
            ok = np.all(use <= budget, axis=1)
            first = int(np.argmax(ok)) if ok.any() else len(out)
            core[out[: min(len(out), first + width // 2)]] = True
            fixed = (~core) & (arg >= 0)
            x = np.zeros(m)
            x[arg[fixed]] = 1.0
            residual = budget - vecmat(x, requests)
        residual = np.maximum(residual, 0.0)
        core_rows = np.nonzero(core[groups.gid])[0]
        x_core, lam_new = _lp(values[core_rows], requests[core_rows], residual,
                              groups.subset(core_rows))
        x[core_rows] = x_core
        lp_rows = max(lp_rows, len(core_rows))
        bound = lagrangian_bound(values, requests, budget, groups, lam_new)
        if best is None or bound < best[0]:
            best = (bound, lam_new)
        # Are the fixed choices still optimal under the new prices?
        d = values - matvec(requests, lam_new)
        top1, _, _ = groups.top_two(d)
        chosen = np.where(arg >= 0, d[np.maximum(arg, 0)], 0.0)
        violated = (~core) & (chosen < top1 - tol)
        n_bad = int(np.count_nonzero(violated))
        if n_bad == 0:
            return Relaxation(x, lam_new, bound, lp_closed(values, x, bound), lp_rows)
        if n_bad <= 4 * width:  # few: add them and keep the core
            keep = core | violated
            lam = lam_new
        else:  # many: the prices moved; re-centre on the best prices so far, wider
            if start is not None:
                b0 = lagrangian_bound(values, requests, budget, groups, start)
                if b0 < best[0]:
                    best = (b0, start)
                start = None
            keep = None
            lam = best[1]
            margin *= 4.0
            width = min(g, 4 * width)
    if start is not None:
        b0 = lagrangian_bound(values, requests, budget, groups, start)
        if b0 < best[0]:
            best = (b0, start)
    return Relaxation(x, best[1], best[0], False, lp_rows)
