"""The oracle entry point :func:`solve` and its answer, :class:`OracleResult`.

Every call goes the same way:

1. Validate; keep the *candidate* rows (value > 0 and fitting the budget on their own). A
   binding column whose candidate requests are all integers (GPUs, cores, MiB) gets its budget
   lowered to a multiple of their gcd (:func:`~._problem.integer_budget`): the same selections
   fit, and the LP bound is tighter (36.75 GPUs hold 36).
2. Normalize by powers of two (exact in floating point, and a positive rescaling does not
   change the argmax): values so the largest candidate value is in [0.5, 1), each resource so
   its budget is in [0.5, 1). Every tolerance below is then relative, whatever the units
   (values of 1e-300 or 1e300 alike); answers are reported in the caller's units.
3. Solve. At most :data:`~.enumeration.ALL_MAX_ROWS` candidates (every method): every
   selection at once, exact, no LP. ``exact``/``auto`` on small candidate sets: enumeration
   (branch and bound from a greedy answer). Otherwise the LP relaxation (HiGHS through its own
   bindings; with one option per agent, the compiled simplex ``auto``'s search starts from,
   :func:`~._bnb.root_lp`) and its rounding, the ``fast`` answer (one option per
   agent: the options around the LP threshold enumerated exactly; else greedy repair and
   swaps). ``exact`` improves it by swaps and (gap above ``gap_tolerance``) by branching on
   the LP's fractional options (:mod:`~.branching`), ``auto`` by the compiled LP branch and
   bound (:mod:`~._bnb`): a tighter bound and more answers. Then both search (reduced-cost
   fixing and enumeration of the options left, or CP-SAT on integer models that bracket the
   float problem) while the certified gap exceeds ``gap_tolerance`` (``auto``: see
   :func:`solve`). ``divisible``: the LP, one option per group.
4. Check the answer with the canonical float64 check, in the caller's units, and certify it:
   ``status`` is ``"optimal"`` exactly when the objective meets the proven bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from librex_alloc._validation import check_scalar
from librex_alloc.errors import InvalidConfigError, LibrexError, OracleError
from librex_alloc.oracles._problem import (
    TINY,
    Groups,
    Problem,
    binary_exponent,
    candidate_rows,
    integer_budget,
    lagrangian_bound,
    make_problem,
    selection_is_feasible,
    sum_rtol,
    times_pow2,
    to_caller_units,
)
from librex_alloc.oracles.branching import (
    BRANCH_DEPTH,
    BRANCH_MAX_ROWS,
    branch,
)
from librex_alloc.oracles.enumeration import (
    ALL_MAX_ROWS,
    MAX_PRODUCT,
    enumerate_all,
    enumerate_optimum,
    enumeration_size,
    limbs_needed,
    max_states,
)
from librex_alloc.oracles.exact import reduced_cost_filter, solve_exact
from librex_alloc.oracles.fast import (
    density_key,
    fill,
    fractional_from_relaxation,
    improve,
    round_relaxation,
    swaps_skipped,
)
from librex_alloc.oracles.methods import METHODS, check_method
from librex_alloc.oracles.relaxation import Relaxation, lp_closed, solve_relaxation

#: Default CP-SAT deterministic time limits (about seconds here). ``auto`` is meant for the
#: round loop: by default it runs no CP-SAT at all (see :func:`solve`); this limit applies
#: when the caller sets ``gap_tolerance`` but no ``time_limit``.
DEFAULT_TIME_LIMIT = {"exact": 10.0, "auto": 0.25, "fast": 0.0}
#: Default ``gap_tolerance`` (relative): ``exact`` searches until it proves optimality; ``auto``
#: branches while its certified gap exceeds 0.1 % (issue 18 asks 99.9 % of exact per round; by
#: default without CP-SAT, so the gap may stay above it: see :func:`solve`); ``fast`` never
#: searches.
DEFAULT_GAP_TOLERANCE = {"exact": 0.0, "auto": 1e-3, "fast": 0.0}
#: ``auto`` skips CP-SAT when more options than this stay free after reduced-cost fixing.
AUTO_MAX_FREE_ROWS = 2000
BRANCH_POLISH = True
#: ``auto``'s compiled LP branch and bound (:mod:`~._bnb`, one option per agent) stops after
#: :data:`AUTO_BNB_WORK` units of work (:func:`~._bnb._work`, deterministic: 2.4–2.7 ms on
#: the machine of BENCHMARKS.md, whose LPs cost 2–3 times more on some instances than on
#: others) or :data:`AUTO_BNB_LPS` LPs (what binds at n ≈ 50), in slices of
#: :data:`AUTO_BNB_SLICE` LPs when a deadline is set. Issue 18, 2 × 400 value vectors of
#: ``bench round --fairness`` (``python -m librex_alloc.evaluation.offline quality``), side by
#: side: 5 and 1 rounds below 99.9 % of exact, the slowest row's median 3.3–3.6 ms per call,
#: against 14 and 11 at 5.0 ms with the fifth pass's search (150 LPs, a relative core of 12).
#: A cap of 120 LPs and no work limit (with the slower core search) left 8 and 1, but took
#: 4.6–5.0 ms in the slowest row (BENCHMARKS.md, "Sixth pass").
AUTO_BNB_LPS = 150
AUTO_BNB_SLICE = 32
AUTO_BNB_WORK = 650_000
#: ``auto`` searches whatever the gap when at most this many options stay free after
#: reduced-cost fixing against the fast answer: enumeration or CP-SAT then takes milliseconds.
AUTO_CHEAP_FREE_ROWS = 32
#: With a ``deadline``, CP-SAT is started only when at least this many seconds remain: on the
#: shared 2-core machine at n = 150, K = 5 building its model took 2 ms (up to 34 ms under
#: load) and a solve given 4.5 ms of wall-clock time returned after 51 ms (its presolve).
CPSAT_MIN_SECONDS = 0.05
#: With a ``deadline``, CP-SAT's wall-clock limit is the time left minus this margin (its
#: model building and stopping lag, the answer's checks after the solve).
CPSAT_MARGIN_SECONDS = 0.02
#: ``status == "optimal"`` when ``objective >= bound − OPT_RTOL·|bound|``.
OPT_RTOL = 1e-9
#: In divisible mode, rows that could get less than this fraction of their request on their
#: own are left out of the LP (their value at that fraction is added to the bound).
MIN_FRACTION = 1e-12


@dataclass(frozen=True)
class OracleResult:
    """The answer of one oracle call.

    selected: bool (N,); fractions: float (N,) in [0, 1] (1.0 where selected unless divisible);
    objective: ``Σ values·fractions`` in the caller's units (``values[selected].sum()``);
    bound: a proven upper bound on the optimum of the data as given — requests and budget
    exactly as float64 under the canonical check ``requests[selected].sum(axis=0) <= budget``,
    values summed in exact arithmetic (in divisible mode: on the optimum of the LP relaxation);
    method: whose answer this is (``"exact"``, ``"fast"``, ``"lp"`` or ``"trivial"``);
    solve_time: seconds; info: solver details, e.g. ``info["proof"]``, the source of the bound
    (``"enumeration"``, ``"cp-sat"``, ``"lp"`` or ``"trivial"``).

    status: ``"optimal"`` is a certificate, not a solver's claim: the answer passes the float64
    budget check and ``objective >= bound − 1e-9·|bound|`` (:data:`OPT_RTOL`), so no selection
    that passes the check is worth more than ``objective`` by over a relative 1e-9. With
    ``info["proof"] == "enumeration"`` (``exact`` and ``auto`` on small candidate sets) it is
    exactly optimal (as is every method's answer with ``"enumeration"`` on at most
    :data:`~.enumeration.ALL_MAX_ROWS` candidates). ``"feasible"``: within the budget but not
    certified; ``gap`` bounds the possible shortfall (``auto`` stops at ``gap_tolerance``).
    A CP-SAT model that rounds requests up (and so may exclude a selection that fits the
    budget exactly) never yields ``"optimal"`` on its own. In divisible mode
    ``"optimal"`` certifies against the LP bound, which allows several options per group; when
    the LP splits a group the one-option answer is usually ``"feasible"``.
    """

    selected: np.ndarray
    fractions: np.ndarray
    objective: float
    bound: float
    status: str
    method: str
    solve_time: float
    info: dict = field(default_factory=dict, compare=False)

    @property
    def gap(self) -> float:
        """Relative gap ``(bound − objective) / |bound|`` (0 when both are 0)."""
        if self.bound == 0:
            return 0.0
        return max(0.0, (self.bound - self.objective) / abs(self.bound))


@dataclass(frozen=True)
class _Scaled:
    """The candidate problem in normalized units: ``values`` (M,) with max in [0.5, 1) (times
    ``2^-v_exp``), ``requests`` (M, K') and ``budget`` (K',) in [0.5, 1) on the binding
    columns ``columns`` (K',) of the caller's ``rows`` (M,)."""

    rows: np.ndarray
    columns: np.ndarray
    values: np.ndarray
    requests: np.ndarray
    budget: np.ndarray
    groups: Groups
    v_exp: int
    lossy: bool  # some normalized value is subnormal (rounded): bounds get one more ulp


def _normalize(problem: Problem, rows: np.ndarray, groups: Groups, requests: np.ndarray,
               binding: np.ndarray, budget: np.ndarray | None = None) -> _Scaled:
    """Normalize the candidate ``rows`` (their ``groups`` and ``requests``, (M, K)) on the
    ``binding`` columns (bool (K,), every such budget > 0) by powers of two; ``budget`` (K,),
    default the problem's, is the one to normalize (e.g. :func:`integer_budget`'s)."""
    v = problem.values[rows]
    v_exp = int(binary_exponent(float(v.max())))
    vn = times_pow2(v, -v_exp)
    lossy = float(vn.min()) < 2.0**-1022
    if lossy:  # only a value below 2^-1074 of the largest underflows
        vn = np.where(vn > 0, vn, TINY)
    every = bool(binding.all())
    if budget is None:
        budget = problem.budget
    b = budget if every else budget[binding]
    r_exp = binary_exponent(b)
    if r_exp.min() <= -1021:  # 2^-r_exp overflows: the exact (slower) form
        rn = times_pow2(requests if every else requests[:, binding], -r_exp)
        bn = times_pow2(b, -r_exp)
    else:  # 2^-r_exp is exact (b < 2^1024), so are the products (correctly rounded, as ldexp)
        scale = np.ldexp(1.0, -r_exp)
        rn = (requests if every else requests[:, binding]) * scale
        bn = b * scale
    return _Scaled(rows, np.nonzero(binding)[0], vn, rn, bn, groups, v_exp, lossy)


def _finish(problem: Problem, t0: float, method: str, selected: np.ndarray, bound: float,
            info: dict, fractions: np.ndarray | None = None) -> OracleResult:
    """The result in the caller's units, with the certificate status."""
    with np.errstate(over="ignore"):  # an overflow is reported below
        if fractions is None:
            fractions = selected.astype(np.float64)
            objective = float(problem.values[selected].sum())
        else:
            objective = float(problem.values @ fractions) if problem.n else 0.0
    bound = max(float(bound), objective)
    if not (np.isfinite(objective) and np.isfinite(bound)):
        raise OracleError(f"the objective ({objective}) or its bound ({bound}) overflows "
                          "float64; scale the values down")
    status = "optimal" if objective >= bound - OPT_RTOL * abs(bound) else "feasible"
    return OracleResult(selected, fractions, objective, bound, status, method,
                        time.perf_counter() - t0, info)


def subset_groups(groups: Groups, rows: np.ndarray, flags: np.ndarray
                  ) -> tuple[Groups, np.ndarray]:
    """The groups of ``rows`` (int (M',)) and a per-group ``flags`` (bool (G,)) carried over
    to them: ``Groups.subset`` relabels (row order when every row is its own group)."""
    sub = groups.subset(rows)
    out = np.zeros(sub.n_groups, dtype=bool)
    out[sub.gid] = flags[groups.gid[rows]]
    return sub, out


def _best_per_group(values: np.ndarray, groups: Groups) -> np.ndarray:
    """With no binding resource: the best positive option of every group."""
    _, _, arg = groups.top_two(values)
    sel = np.zeros(len(values), dtype=bool)
    sel[arg[arg >= 0]] = True
    return sel


def _sum_of_best(values: np.ndarray, groups: Groups) -> float:
    """``Σ_g max(0, max_{i∈g} v_i)`` rounded up: the optimum when nothing binds (may be inf)."""
    top = np.maximum(groups.max(values), 0.0)
    with np.errstate(over="ignore"):  # an overflow is reported by _finish
        return float(top.sum()) * (1.0 + sum_rtol(len(top))) + TINY


def _guard(problem: Problem, selected: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, bool]:
    """Enforce the canonical float check; returns (selection, repaired)."""
    if selection_is_feasible(problem.requests, problem.budget, selected, problem.groups):
        return selected, False
    selected = selected.copy()
    for i in np.nonzero(selected)[0][np.argsort(key[selected], kind="stable")]:
        selected[i] = False
        if selection_is_feasible(problem.requests, problem.budget, selected, problem.groups):
            break
    return selected, True


def check_deadline(deadline, name: str = "deadline") -> float:
    """A round deadline in seconds: a finite number > 0 (not a bool); else
    :class:`~librex_alloc.errors.InvalidConfigError` naming ``name``."""
    if isinstance(deadline, (bool, np.bool_)) or not isinstance(deadline, (int, float, np.integer,
                                                                            np.floating)):
        raise InvalidConfigError(f"{name}: expected a number of seconds > 0, got {deadline!r}")
    if not (np.isfinite(deadline) and deadline > 0):
        raise InvalidConfigError(f"{name}: expected a finite number of seconds > 0, got "
                                 f"{deadline!r}")
    return float(deadline)


def solve(values, requests, budget, *, groups=None, method: str = "auto",
          time_limit: float | None = None, divisible: bool = False,
          gap_tolerance: float | None = None, deadline: float | None = None) -> OracleResult:
    """Solve one round's allocation problem.

    values: (N,) float, the value of choosing each row; rows with value ≤ 0 are never chosen.
    requests: (N, K) float ≥ 0, resource units. budget: (K,) float ≥ 0, same units.
    groups: (N,) ints or None; rows sharing a label are options of one agent (≤ 1 chosen).
    method: "auto", "exact" or "fast". time_limit: seconds of CP-SAT deterministic time
    (default 10 for exact; auto: no CP-SAT unless ``time_limit`` or ``gap_tolerance`` is given,
    then 0.25 by default). divisible: return fractions (at most one option per
    group gets a positive fraction) instead of a selection. gap_tolerance: relative gap
    ``(bound − objective) / bound`` at which the search stops (default 0 for exact, 0.001 for
    auto, :data:`DEFAULT_GAP_TOLERANCE`; fast does not search). deadline: seconds of wall-clock
    time from the call (None: none); see below.

    The rule of ``auto`` (what the exact search may still gain against what it costs):

    1. At most :data:`~.enumeration.ALL_MAX_ROWS` candidate options, or a small product of
       options per agent: enumeration, the exact optimum (sub-millisecond).
    2. Otherwise the fast answer (LP, core enumeration, greedy fill), with the LP bound: the
       certified gap ``g``. One option per agent (at most
       :data:`~.branching.BRANCH_MAX_ROWS` candidates): the LP is solved by the compiled
       simplex (:func:`~._bnb.root_lp`), and if ``g > gap_tolerance`` the compiled LP branch
       and bound of :mod:`~._bnb` (:class:`~._bnb.Search`: best first from that LP's basis,
       a dual simplex warm-started from each parent, each node's core of 14 options chosen
       exactly, up to :data:`AUTO_BNB_WORK` units of deterministic work), whose bound over
       its closed and open nodes replaces the LP bound (``info["branch_lps"]``,
       ``info["branch_work"]``) and whose best answer replaces the fast one when better.
       Measured on 2 × 400 value vectors of ``bench round --fairness`` (n = 150, K = 4–5): 5
       and 1 rounds below 99.9 % of exact's objective, against 14 and 11 with the fifth
       pass's search and 69 and 72 with 6 HiGHS LPs of branching (BENCHMARKS.md, "Sixth
       pass"). Several options per agent: 1-for-1 swaps and two neighbourhoods of 12 options
       re-chosen exactly.
    3. If ``g ≤ gap_tolerance`` and more than :data:`AUTO_CHEAP_FREE_ROWS` options stay free
       after reduced-cost fixing against that answer, it is returned (``info["skipped"] ==
       "gap"``; status "feasible" unless the certificate closes): the search could gain at
       most ``g`` of the objective.
    4. Otherwise the search of ``exact`` (enumeration of the free options, else CP-SAT with
       the answer as a hint, up to ``time_limit``; skipped above :data:`AUTO_MAX_FREE_ROWS`
       free options), and the better answer. CP-SAT runs in ``auto`` only when the caller
       passed ``time_limit`` or ``gap_tolerance``: by default the answer of step 2 is returned
       (``info["skipped"] == "cp-sat"``), since CP-SAT took 0.05–1 s per round under fairness
       at n = 150 (issue 18; ``librex-alloc bench round --fairness``).

    ``exact`` searches whenever ``g > gap_tolerance``; with a tolerance CP-SAT stops at that
    gap (its ``relative_gap_limit``). Every step is a function of the input only (no state
    between calls), so the same input gives the same answer whatever was solved before —
    unless a ``deadline`` cuts the work short.

    The ``deadline`` (any method, 0/1 selection): the best answer found by then, with its
    certificate, returned at most the deadline plus a slack after the call began. The fast
    answer (validation, the LP and its rounding, with the LP bound) is always computed; every
    later step starts only when it is expected to end before the deadline: a local search, a
    split of ``exact``'s branching or a slice of :data:`AUTO_BNB_SLICE` LPs of ``auto``'s
    search is expected to take as long as the LP and its rounding took (at n = 150, K = 5
    about 1 ms), then as long as its own last run; the
    enumerations stop when the deadline passes (checked before each agent); CP-SAT only with
    at least :data:`CPSAT_MIN_SECONDS` left, stopped by a wall-clock limit
    :data:`CPSAT_MARGIN_SECONDS` before the deadline. ``info["cut_short"]`` is True when the
    deadline stopped or skipped a step. The slack is the fast answer's own time when the
    deadline is shorter than it, plus the misestimate of the last step: measured with a 5 ms
    deadline at n = 150 on a quiet 2-core machine (``librex-alloc bench round --fairness ...
    --deadline 0.005``, column ``over_deadline_ms``), no call of ``auto`` in 300 rounds
    ended after the deadline in any of ten modes and instances (two runs each; the latest
    0.24 ms before it), against up to 2.0 ms after it with the slower search before
    (BENCHMARKS.md, "Sixth pass") and up to 4.97 ms when steps started whenever time was
    left (fourth pass). Divisible mode ignores the deadline.

    Any finite input is accepted. Raises :class:`~librex_alloc.errors.InvalidInputError` on
    NaN/inf, negative requests or budget, or inconsistent shapes,
    :class:`~librex_alloc.errors.InvalidConfigError` on an unknown method, a bad time limit
    or a bad gap tolerance, and :class:`~librex_alloc.errors.OracleError` when a solver fails
    or the objective overflows float64.
    """
    t0 = time.perf_counter()
    check_method(method)
    # auto runs CP-SAT only when the caller asks for a search (a time limit or a tolerance)
    cpsat = method != "auto" or time_limit is not None or gap_tolerance is not None
    # numbers: Python or numpy ints/floats, never bools or text (check_scalar)
    if time_limit is None:
        time_limit = DEFAULT_TIME_LIMIT[method]
    else:
        time_limit = check_scalar(time_limit, "time_limit", low=0.0, low_open=True)
    if gap_tolerance is None:
        gap_tolerance = DEFAULT_GAP_TOLERANCE[method]
    else:
        gap_tolerance = check_scalar(gap_tolerance, "gap_tolerance", low=0.0)
    if not isinstance(divisible, (bool, np.bool_)):
        raise InvalidConfigError(f"divisible: expected a bool, got {divisible!r}")
    divisible = bool(divisible)
    end = t0 + check_deadline(deadline) if deadline is not None else np.inf
    problem = make_problem(values, requests, budget, groups)
    try:
        if divisible:
            return _solve_divisible(problem, t0)
        return _solve_binary(problem, method, float(time_limit), float(gap_tolerance), t0, end,
                             cpsat)
    except LibrexError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # a solver's own error, overflow, ...: one error type for callers
        raise OracleError(f"the {method!r} oracle failed: {type(exc).__name__}: {exc}") from exc


# ----------------------------------------------------------------------------- 0/1 selection


def _relaxation(sc, compiled: bool):
    """The LP relaxation of the normalized problem ``sc``, and the basis it was solved at,
    from which auto's search starts. ``compiled`` (one option per agent, every method): the
    compiled simplex (:func:`~._bnb.root_lp`: 0.05 ms median at n = 150, K = 4–5, against
    0.4 ms mean for HiGHS and its set-up). Else, or when that simplex stalls, HiGHS
    (:func:`~.relaxation.solve_relaxation`) and None for the basis."""
    if compiled:
        from librex_alloc.oracles._bnb import root_lp  # numba: imported on first use

        root = root_lp(sc.values, sc.requests, sc.budget)
        if root is not None:
            x, lam = root[0], root[1]
            bound = lagrangian_bound(sc.values, sc.requests, sc.budget, sc.groups, lam)
            return Relaxation(x, lam, bound, lp_closed(sc.values, x, bound), len(x)), root[2:]
    return solve_relaxation(sc.values, sc.requests, sc.budget, sc.groups), None


def _solve_binary(problem: Problem, method: str, time_limit: float, gap_tolerance: float,
                  t0: float, end: float = np.inf, cpsat: bool = True) -> OracleResult:
    n = problem.n
    rows = candidate_rows(problem)
    if len(rows) == 0:
        return _finish(problem, t0, "trivial", np.zeros(n, dtype=bool), 0.0, {"proof": "trivial"})

    def lift(sub: np.ndarray, where: np.ndarray = rows) -> np.ndarray:
        full = np.zeros(n, dtype=bool)
        full[where[sub]] = True
        return full

    def fits(full: np.ndarray) -> bool:
        return selection_is_feasible(problem.requests, problem.budget, full, problem.groups)

    groups = problem.groups.subset(rows)
    requests = problem.requests[rows]
    binding = requests.sum(axis=0) > problem.budget
    info: dict = {"candidates": len(rows)}
    if not binding.any():  # everything fits: take the best option of every group
        sel = lift(_best_per_group(problem.values[rows], groups))
        if fits(sel):
            bound = _sum_of_best(problem.values[rows], groups)
            return _finish(problem, t0, "trivial", sel, bound, {**info, "proof": "trivial"})
        # its float sums round above the budget: those columns bind
        binding = requests[sel[rows]].sum(axis=0) > problem.budget
    # integer columns hold only a multiple of their requests' gcd: same selections, tighter LP
    budget = integer_budget(requests, problem.budget, binding)
    if budget is not problem.budget:
        info["integer_budget"] = int(np.count_nonzero(budget != problem.budget))
    sc = _normalize(problem, rows, groups, requests, binding, budget)

    def to_caller(bound_n: float) -> float:
        if sc.lossy:
            bound_n = float(np.nextafter(bound_n, np.inf))
        return to_caller_units(bound_n, sc.v_exp)

    limit = max_states(len(sc.budget), limbs_needed(sc.values))
    if limit and len(rows) <= ALL_MAX_ROWS:
        # tiny: every selection at once, for every method (cheaper than any LP)
        out = enumerate_all(sc.values, sc.requests, sc.budget, sc.groups,
                            lambda sub: fits(lift(sub)))
        if out is not None:
            info.update(proof="enumeration", states=out.states)
            return _finish(problem, t0, "fast" if method == "fast" else "exact",
                           lift(out.selected), to_caller(out.bound), info)

    def late(need: float = 0.0) -> bool:
        """The deadline has passed, or a step of about ``need`` seconds started now would end
        after it: stop here with what we have."""
        if time.perf_counter() + need < end:
            return False
        info["cut_short"] = True
        return True

    # with a deadline, the enumerations stop when it passes (their size is bounded by states,
    # not by time; late() marks the answer cut short)
    in_time = (lambda: not late()) if end < np.inf else None

    if method != "fast" and limit and enumeration_size(sc.groups) <= MAX_PRODUCT and not late():
        # small: enumerate (branch and bound from a greedy answer), no LP needed
        no_prices = np.zeros(len(sc.budget))
        greedy = fill(sc.values, sc.requests, sc.budget, sc.groups,
                      np.zeros(len(rows), dtype=bool), no_prices)
        if fits(lift(greedy)):
            out = enumerate_optimum(sc.values, sc.requests, sc.budget, sc.groups,
                                    lambda sub: fits(lift(sub)), limit=limit,
                                    lower=float(sc.values[greedy].sum()), time_left=in_time)
            if out is not None:
                info.update(proof="enumeration", states=out.states)
                return _finish(problem, t0, "exact", lift(out.selected), to_caller(out.bound),
                               info)

    # the LP and its rounding (the fast answer) run whatever the deadline (their time is part
    # of the slack): a greedy answer without prices instead, when the deadline had passed, put
    # auto at 65–91 % of exact's objective under fairness (bench round --fairness --deadline)
    t_lp = time.perf_counter()
    # one option per agent: every method's LP from the compiled simplex, so fast, auto and
    # exact round the same LP (auto and exact start from fast's answer: never below it)
    relax, root = _relaxation(sc, sc.groups.singleton and len(rows) <= BRANCH_MAX_ROWS)
    info.update(lp_rows=relax.lp_rows, lp_converged=relax.converged, proof="lp",
                lp="highs" if root is None else "compiled")
    key_n = density_key(sc.values, sc.requests, sc.budget, relax.lam)
    key = np.zeros(n)
    key[rows] = key_n
    sel_fast, repaired = _guard(problem, lift(round_relaxation(
        sc.values, sc.requests, sc.budget, sc.groups, relax, key_n)), key)
    sub_fast = sel_fast[rows]
    obj_fast = float(sc.values[sub_fast].sum())
    bound = relax.bound
    fast_optimal = obj_fast >= bound - OPT_RTOL * abs(bound)
    # with a deadline, a later step starts only when it is expected to end before it: a local
    # search or a split of the branching takes about as long as the LP and its rounding did
    # (n = 150, K = 5: 0.8 ms against 0.6-1.0 ms), then as long as its own last run
    step = time.perf_counter() - t_lp
    if method == "exact" and not fast_optimal and swaps_skipped(sc.groups, len(rows)) \
            and not late(step):
        # exact: cheap local search first (fast runs the swaps itself on more rows): 1-for-1
        # swaps, the greedy fill and two exact neighbourhoods
        t_ls = time.perf_counter()
        sub_p = improve(sc.values, sc.requests, sc.budget, sc.groups, sub_fast, key_n,
                        relax.lam)
        step = time.perf_counter() - t_ls
        obj_p = float(sc.values[sub_p].sum())
        if obj_p > obj_fast:
            sel_p = lift(sub_p)
            if fits(sel_p):
                sel_fast, sub_fast, obj_fast = sel_p, sub_p, obj_p
                info["improved"] = True
        fast_optimal = obj_fast >= bound - OPT_RTOL * abs(bound)
    gap = (bound - obj_fast) / abs(bound) if bound else 0.0
    if method == "auto" and gap > gap_tolerance and not fast_optimal \
            and sc.groups.singleton and len(rows) <= BRANCH_MAX_ROWS and not late(step):
        # the compiled LP branch and bound (:mod:`~._bnb`), from the root LP's basis (the
        # compiled simplex's) when there is one, in slices of LPs while time is left
        from librex_alloc.oracles._bnb import Search  # numba: imported on first use

        srch = Search(sc.values, sc.requests, sc.budget, key_n, incumbent=obj_fast,
                      max_lps=AUTO_BNB_LPS, max_work=AUTO_BNB_WORK, root=root)
        if end == np.inf:
            srch.run()
        else:
            last = step
            while not late(last):
                t_s = time.perf_counter()
                if srch.run(AUTO_BNB_SLICE) or srch.spent:
                    break  # complete, or every LP or the work spent
                last = time.perf_counter() - t_s
            else:
                info["cut_short"] = True
        info.update(branch_lps=srch.lps, branch_work=round(srch.work),
                    branch_complete=srch.complete)
        if srch.bound < bound:
            bound = srch.bound
            info["proof"] = "lp-branching"
        sub_b = srch.selected
        if sub_b is not None:
            # the kernel checks sequential sums: the canonical ones may round a hair over
            sub_b = _guard(problem, lift(sub_b), key)[0][rows]
            val_b = float(sc.values[sub_b].sum())
            if val_b > obj_fast:
                sel_fast, sub_fast, obj_fast = lift(sub_b), sub_b, val_b
                info["improved"] = True
        fast_optimal = obj_fast >= bound - OPT_RTOL * abs(bound)
        gap = (bound - obj_fast) / abs(bound) if bound else 0.0
    elif method == "exact" and gap > gap_tolerance and not fast_optimal \
            and sc.groups.singleton and BRANCH_DEPTH and len(rows) <= BRANCH_MAX_ROWS \
            and not late(step):
        # split on the LP's fractional options: a tighter bound and more candidate answers
        br = branch(sc.values, sc.requests, sc.budget, relax, incumbent=obj_fast,
                    fits=lambda sub: fits(lift(sub)),
                    time_left=lambda need: not late(need),
                    first_split=step, depth=BRANCH_DEPTH)
        info.update(branch_lps=br.lps, branch_complete=br.complete)
        if not br.complete:
            info["cut_short"] = True
        if br.bound < bound:
            bound = br.bound
            info["proof"] = "lp-branching"
        if br.selected is not None and br.value > obj_fast:
            sub_b = br.selected
            if BRANCH_POLISH and not late(step):  # the local search on the branches' best answer
                sub_p = improve(sc.values, sc.requests, sc.budget, sc.groups, sub_b, key_n,
                                relax.lam)
                if float(sc.values[sub_p].sum()) > br.value and fits(lift(sub_p)):
                    sub_b = sub_p
            sel_fast, sub_fast, obj_fast = lift(sub_b), sub_b, float(sc.values[sub_b].sum())
            info["improved"] = True
        fast_optimal = obj_fast >= bound - OPT_RTOL * abs(bound)
        gap = (bound - obj_fast) / abs(bound) if bound else 0.0
    chosen, used = sub_fast, "fast"
    search = method == "exact" and gap > gap_tolerance
    if (search or (method == "auto" and not fast_optimal)) and late():
        search = False
    elif method == "auto" and not fast_optimal:
        keep, must = reduced_cost_filter(sc.values, sc.requests, sc.budget, sc.groups,
                                         relax.lam, obj_fast)
        keep |= sub_fast
        free = int(np.count_nonzero(keep))
        # the rule: search when the gap is worth it, or when few options are left (cheap)
        search = gap > gap_tolerance or free <= AUTO_CHEAP_FREE_ROWS
        info.update(fast_gap=gap, free_rows=free)
        if not search:
            info["skipped"] = "gap"
    elif search:
        keep, must = reduced_cost_filter(sc.values, sc.requests, sc.budget, sc.groups,
                                         relax.lam, obj_fast)
        keep |= sub_fast
    if search:
        kept = np.nonzero(keep)[0]
        g_kept, must_kept = subset_groups(sc.groups, kept, must)
        out = None
        if limit and enumeration_size(g_kept, must_kept) <= MAX_PRODUCT and not late():
            out = enumerate_optimum(sc.values[kept], sc.requests[kept], sc.budget, g_kept,
                                    lambda sub: fits(lift(sub, rows[kept])), must=must_kept,
                                    lower=obj_fast, prices=relax.lam, limit=limit,
                                    time_left=in_time)
        slack = 4.0 * sum_rtol(len(kept)) * obj_fast  # the two float sums' rounding
        if out is not None and out.value < obj_fast - slack:  # pragma: no cover - never seen:
            out = None  # the incumbent is in its search space (see reduced_cost_filter)
        if out is not None:  # the exact optimum
            info.update(proof="enumeration", states=out.states, exact_free_rows=len(kept))
            bound = min(bound, out.bound)
            chosen = np.zeros(len(rows), dtype=bool)
            chosen[kept[out.selected]] = True
            used = "exact"
        elif not cpsat:
            info["skipped"] = "cp-sat"  # auto's default: no CP-SAT (see solve)
        elif (method == "exact" or len(kept) <= AUTO_MAX_FREE_ROWS) and \
                end - time.perf_counter() < CPSAT_MIN_SECONDS:
            info["cut_short"] = True  # too little time left for CP-SAT's set-up
        elif method == "exact" or len(kept) <= AUTO_MAX_FREE_ROWS:
            wall = end - time.perf_counter() - CPSAT_MARGIN_SECONDS if end < np.inf else None
            ex = solve_exact(sc.values, sc.requests, sc.budget, sc.groups, incumbent=sub_fast,
                             keep=keep, must=must, time_limit=time_limit,
                             fits=lambda sub: fits(lift(sub)),
                             gap_limit=gap_tolerance if method == "exact" else 0.0,
                             wall_limit=wall)
            if wall is not None and time.perf_counter() >= end - CPSAT_MARGIN_SECONDS and \
                    not ex.proved:
                info["cut_short"] = True
            info.update(exact_status=ex.status, exact_free_rows=ex.free_rows,
                        exact_models=ex.models, exact_proved=ex.proved,
                        exact_dyadic=ex.exact_scaling)
            if ex.bound < bound:
                bound = ex.bound
                info["proof"] = "cp-sat"
            if float(sc.values[ex.selected].sum()) > obj_fast:
                # CP-SAT's answer plus anything that still fits (values below its resolution)
                chosen = fill(sc.values, sc.requests, sc.budget, sc.groups, ex.selected,
                              relax.lam)
                used = "exact"
    if used == "fast":
        selected = sel_fast
    else:
        selected, repaired = _guard(problem, lift(chosen), key)
    info["repaired"] = repaired
    return _finish(problem, t0, used, selected, to_caller(bound), info)


# ----------------------------------------------------------------------------- divisible


def _fraction_cap(problem: Problem, rows: np.ndarray) -> np.ndarray:
    """The largest fraction (in [0, 1]) of each row that fits the budget on its own."""
    req = problem.requests[rows]
    if not problem.k:
        return np.ones(len(rows))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(req > 0, problem.budget / np.where(req > 0, req, 1.0), np.inf)
    return np.minimum(ratio.min(axis=1), 1.0)


def _usage_bounds(fractions: np.ndarray, requests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(usage, slack)`` (K,), with ``usage = fractions @ requests`` and ``usage + slack`` at
    least the usage summed in *any* order, products rounded or fused.

    A column with at most one nonzero product, or two from whole rows (``x = 1``), has one
    float value in every order (slack 0); otherwise orders differ by at most
    ``2·sum_rtol(nnz)`` of the usage, plus ``TINY`` per product that may underflow.
    """
    usage = fractions @ requests
    on = fractions > 0
    n_on = int(np.count_nonzero(on))
    if n_on > 2:  # the count of positive fractions bounds every column's nonzero products
        nnz, same = n_on, np.zeros(len(usage), dtype=bool)
    else:
        nnz = np.count_nonzero(requests[on] > 0, axis=0)
        whole = np.count_nonzero(requests[on & (fractions < 1)] > 0, axis=0) == 0
        same = (nnz <= 1) | ((nnz == 2) & whole)
    slack = usage * (2.0 * sum_rtol(nnz)) + 2 * nnz * TINY
    # a zero usage is exact (no positive product); so is a column with one float value
    return usage, np.where(same | (usage == 0), 0.0, slack)


def _trim(fractions: np.ndarray, requests: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Lower fractions until no summation order can exceed the budget (see
    :func:`_usage_bounds`): the fractional rows (0 < x < 1) when they can absorb it, else all."""
    x = fractions.copy()
    if not requests.shape[1]:
        return x
    for _ in range(16):
        usage, slack = _usage_bounds(x, requests)
        over = usage + slack > budget
        if not over.any():
            return x
        part = (x > 0) & (x < 1)
        excess = np.where(over, usage + 2.0 * slack - budget, 0.0)  # > 0 where over
        part_use = x[part] @ requests[part]
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(over, excess / part_use, 0.0)  # inf (or nan) if they cannot
        f = float(np.max(np.where(np.isnan(need), np.inf, need)))
        if f < 0.5:
            x[part] *= 1.0 - 2.0 * f
        else:  # the whole rows alone are too much (LP tolerance): scale everything
            ratio = np.where(over, budget / np.where(over, usage + 2.0 * slack, 1.0), 1.0)
            x *= float(ratio.min())
        x[x < MIN_FRACTION] = 0.0
    x[:] = 0.0  # pragma: no cover - never seen
    return x


def _solve_divisible(problem: Problem, t0: float) -> OracleResult:
    n = problem.n
    rows = np.nonzero(problem.values > 0)[0]
    dropped_value = 0.0
    if len(rows):
        # rows that could get less than MIN_FRACTION of their request are left out (keeping
        # the LP well scaled); their value at that cap is added to the bound
        cap = _fraction_cap(problem, rows)
        tiny = cap < MIN_FRACTION
        with np.errstate(over="ignore"):
            dropped_value = float(np.sum(problem.values[rows[tiny]] * cap[tiny]))
        rows = rows[~tiny]
    info: dict = {"candidates": len(rows)}
    if len(rows) == 0:
        sel = np.zeros(n, dtype=bool)
        return _finish(problem, t0, "trivial", sel, dropped_value, {**info, "proof": "trivial"},
                       fractions=np.zeros(n))
    groups = problem.groups.subset(rows)
    requests = problem.requests[rows]
    binding = requests.sum(axis=0) > problem.budget
    if not binding.any():  # everything fits: the best option of every group, whole
        sub = _best_per_group(problem.values[rows], groups)
        frac = np.zeros(n)
        frac[rows[sub]] = 1.0
        usage, slack = _usage_bounds(frac, problem.requests)
        over = usage + slack > problem.budget
        if not over.any():
            bound = _sum_of_best(problem.values[rows], groups) + dropped_value
            return _finish(problem, t0, "trivial", frac > 0, bound,
                           {**info, "proof": "trivial"}, fractions=frac)
        binding = over
    sc = _normalize(problem, rows, groups, requests, binding)
    relax = solve_relaxation(sc.values, sc.requests, sc.budget, sc.groups)
    info.update(lp_rows=relax.lp_rows, lp_converged=relax.converged, proof="lp")
    x = fractional_from_relaxation(sc.values, sc.requests, sc.budget, sc.groups, relax)
    frac = np.zeros(n)
    frac[rows] = x
    frac = _trim(frac, problem.requests, problem.budget)
    bound_n = float(np.nextafter(relax.bound, np.inf)) if sc.lossy else relax.bound
    bound = to_caller_units(bound_n, sc.v_exp) + dropped_value
    return _finish(problem, t0, "lp", frac > 0, bound, info, fractions=frac)


__all__ = ["solve", "OracleResult", "METHODS", "DEFAULT_TIME_LIMIT", "OPT_RTOL"]

