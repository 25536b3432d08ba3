"""Per-round budget oracles behind one function, :func:`solve` (in :mod:`.solver`).

``solve(values, requests, budget, groups=None, method="auto")`` maximizes ``Σ v_i x_i`` subject
to ``Σ r_ik x_i ≤ B_k`` for every resource and at most one chosen row per group. Every method
returns an :class:`OracleResult` that respects the budget in float64 (the canonical check is
``requests[selected].sum(axis=0) <= budget``) and carries a proven upper ``bound``: its gap is
a certificate, and ``status == "optimal"`` means the certificate closes (see
:class:`OracleResult`). Methods:

- ``"exact"``: enumeration of every selection when few candidate options remain
  (:mod:`.enumeration`), else CP-SAT on integer models that bracket the float problem
  (:mod:`.exact`), after the fast oracle's pruning and with its hint.
- ``"fast"``: every selection when at most 12 options are candidates; else the LP relaxation
  (HiGHS, working set for large N), the options around the LP threshold enumerated exactly,
  greedy fill by dual-adjusted density and swaps (:mod:`.fast`). Approximate; the LP bound
  certifies it.
- ``"auto"``: enumeration on small candidate sets; else the fast answer improved by swaps,
  returned when its certified gap is within ``gap_tolerance`` (default 1 %) and the search
  would not be cheap, else exact under the time limit (see :func:`solve`).

With ``divisible=True`` the LP relaxation is solved and at most one option per group gets a
positive fraction: ``fractions`` in [0, 1] (the fractional knapsack when K = 1), method ``"lp"``.
"""

from typing import TYPE_CHECKING

from librex_alloc.lazy import lazy_module

if TYPE_CHECKING:
    from librex_alloc.oracles._problem import lagrangian_bound
    from librex_alloc.oracles.methods import METHODS
    from librex_alloc.oracles.solver import OracleResult, solve

# Imported on first use: importing the package loads neither SciPy nor CP-SAT.
_WHERE = {
    "lagrangian_bound": "librex_alloc.oracles._problem",
    "METHODS": "librex_alloc.oracles.methods",
    "OracleResult": "librex_alloc.oracles.solver",
    "solve": "librex_alloc.oracles.solver",
}

__getattr__, __dir__ = lazy_module(__name__, _WHERE)

__all__ = ["solve", "OracleResult", "METHODS", "lagrangian_bound"]
