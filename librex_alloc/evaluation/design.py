"""The original design's three fairness modes, reimplemented as written — for comparison only.

SPEC §8 lists where the design (``shared/seed/librex_alloc_design.md``) is wrong; the library
does not use these rules. They are policies here so that the evaluation can put the design's
own points on the reward–fairness plot, clearly labelled ``design-*``:

- learning: one Beta posterior per agent; a continuous reward is *thresholded*
  (``reward > threshold`` is a success, default 0.5), as the design's ``update`` does;
- ``mode="none"``: maximize ``Σ θ̃_i x_i`` under the budget (the design's knapsack; solved
  here with the policy's oracle, ``exact``/``auto`` find the same optimum as its SCIP model);
- ``mode="proportional"``: values ``θ̃_i / (count_i / total + 0.1)`` with ``count_i`` the
  rounds agent i was allocated and ``total`` the rounds so far (the design's heuristic);
- ``mode="maxmin"``: the design's big-M model as its docstring states it (and SPEC §8.1),
  ``max m`` s.t. ``m ≤ θ̃_i x_i + M (1 − x_i)``, ``M = 1000``, solved with SCIP as in the
  design. Its optimum is the empty allocation (``m = M``), which is what it returns. (The
  design's code has a sign slip, coefficient ``−θ̃_i − M`` on ``x_i``, i.e. ``m ≤ θ̃_i x_i +
  M (1 + x_i)``: then any allocation that leaves one agent out is optimal, and SCIP returns an
  arbitrary one. The stated model is the one compared.)

The one deviation: every answer passes the library's float64 budget check (an infeasible SCIP
answer is repaired by dropping agents), because the budget is never exceeded here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.linear_solver import pywraplp

from librex_alloc.errors import InvalidConfigError
from librex_alloc.oracles import OracleResult, solve
from librex_alloc.policies import ConstrainedThompsonSampling, register_policy
from librex_alloc.policies.params import Params, param

MODES = ("none", "proportional", "maxmin")
BIG_M = 1000.0


@dataclass(frozen=True)
class DesignParams(Params):
    """mode: one of MODES; threshold: a reward above it counts as a success, in [0, 1]."""

    mode: str = param("none", choices=MODES)
    threshold: float = param(0.5, low=0.0, high=1.0)


@register_policy
class DesignPolicy(ConstrainedThompsonSampling):
    """The original design's allocator; ``params={"mode": ..., "threshold": 0.5}``."""

    name = "design"
    follows_values = False  # its rule ignores the values: refuses max_reward_loss
    Params = DesignParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.fairness_config.mode != "none" or self.reward_family != "bernoulli":
            raise InvalidConfigError("design: its own mode replaces the fairness rule "
                                     "(fairness='none') and it learns Beta posteriors")

    def _learn(self, arms: np.ndarray, values: np.ndarray, are_flags: bool) -> None:
        flags = values if are_flags else (values > self.params.threshold).astype(float)
        self.posterior.update_success(arms, flags)

    def _decide(self, ctx, values, index) -> OracleResult:
        requests, budget, agent_slots = ctx.requests, ctx.budget, ctx.agent_slots
        mode = self.params.mode
        if mode == "maxmin":
            return _big_m_maxmin(index, requests, budget)
        if mode == "proportional":
            count = self.fairness.service(agent_slots)
            index = index / (count / max(self.round, 1) + 0.1)
        return solve(index, requests, budget, groups=agent_slots, method=self.oracle,
                     time_limit=self.time_limit)


def _big_m_maxmin(theta, requests, budget) -> OracleResult:
    """The design's ``_allocate_maxmin_fair`` model, solved by SCIP, then the float check."""
    n, k = requests.shape
    solver = pywraplp.Solver.CreateSolver("SCIP")
    x = [solver.BoolVar(f"x_{i}") for i in range(n)]
    m = solver.NumVar(0, solver.infinity(), "min_reward")
    objective = solver.Objective()
    objective.SetCoefficient(m, 1.0)
    objective.SetMaximization()
    for i in range(n):  # m ≤ θ_i x_i + M (1 − x_i)  ⇔  m + (M − θ_i) x_i ≤ M
        c = solver.Constraint(-solver.infinity(), BIG_M)
        c.SetCoefficient(m, 1.0)
        c.SetCoefficient(x[i], BIG_M - float(theta[i]))
    for j in range(k):
        c = solver.Constraint(0, float(budget[j]))
        for i in range(n):
            c.SetCoefficient(x[i], float(requests[i, j]))
    status = solver.Solve()
    selected = np.zeros(n, dtype=bool)
    if status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        selected = np.array([v.solution_value() > 0.5 for v in x], dtype=bool)
    for i in np.nonzero(selected)[0][::-1]:  # the library's float64 budget check
        if np.all(requests[selected].sum(axis=0) <= budget):
            break
        selected[i] = False
    obj = float(theta[selected].sum())
    # no bound: this is the design's model, not one of the library's certified oracles
    return OracleResult(selected, selected.astype(np.float64), obj, float("nan"), "feasible",
                        "design-maxmin", 0.0, {"scip_status": int(status)})
