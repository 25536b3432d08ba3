"""Independent references for the oracle tests: brute force over every selection with the
canonical float64 check (``requests[selected].sum(axis=0) <= budget``) and exact rational sums
of the values, and the validity checks every answer must pass. Imported by name (tests/ is on
``sys.path``)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from librex_alloc.oracles import OracleResult

#: The certificate tolerance of ``status == "optimal"`` (OracleResult docstring).
OPT_RTOL = 1e-9


def exact_value(values, selected) -> Fraction:
    """``Σ values[selected]`` in exact arithmetic."""
    return sum((Fraction(float(x)) for x in np.asarray(values)[selected]), Fraction(0))


def brute_force(values, requests, budget, groups=None) -> Fraction:
    """The optimum over every selection passing the canonical check, in exact arithmetic.

    Subsets whose matrix-product usage is far over the budget are dropped (a superset of the
    canonically feasible ones stays); the rest are checked canonically in order of approximate
    value until no later one can be worth more."""
    values, requests, budget = (np.asarray(a, dtype=np.float64) for a in (values, requests,
                                                                          budget))
    n = len(values)
    masks = ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(bool)
    if groups is not None and n:
        _, gid = np.unique(np.asarray(groups), return_inverse=True)
        onehot = np.eye(gid.max() + 1)[gid.reshape(-1)]
        masks = masks[np.all(masks.astype(np.float64) @ onehot <= 1, axis=1)]
    use = masks.astype(np.float64) @ requests
    masks = masks[np.all(use <= budget * (1.0 + 1e-12) + 1e-300, axis=1)]
    approx = masks.astype(np.float64) @ values
    best = Fraction(0)  # the empty selection
    for i in np.argsort(-approx, kind="stable"):
        if approx[i] < float(best) * (1.0 - 1e-9) - 1e-300 or approx[i] <= 0:
            break
        if np.all(requests[masks[i]].sum(axis=0) <= budget):
            best = max(best, exact_value(values, masks[i]))
    return best


def check_answer(res: OracleResult, values, requests, budget, groups=None,
                 divisible: bool = False) -> None:
    """Validity of any answer in the caller's units (budget, groups, objective, bound)."""
    values, requests, budget = (np.asarray(a, dtype=np.float64) for a in (values, requests,
                                                                          budget))
    assert isinstance(res, OracleResult)
    assert res.status in ("optimal", "feasible")
    assert np.isfinite(res.objective) and np.isfinite(res.bound)
    assert res.bound >= res.objective
    if res.status == "optimal":  # the certificate
        assert res.objective >= res.bound - OPT_RTOL * abs(res.bound)
    if divisible:
        frac = res.fractions
        assert np.all((frac >= 0) & (frac <= 1))
        assert np.all(frac @ requests <= budget)
        assert res.objective == float(values @ frac)
        sel = frac > 0
    else:
        sel = res.selected
        assert np.array_equal(res.fractions, sel.astype(np.float64))
        assert np.all(requests[sel].sum(axis=0) <= budget)
        assert res.objective == float(values[sel].sum())
    assert not np.any(sel & (values <= 0))
    if groups is not None and sel.any():
        assert np.unique(np.asarray(groups)[sel], return_counts=True)[1].max() == 1
