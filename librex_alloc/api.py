"""The original design's public API: ``LibrexAlloc``, ``ResourceManager``, ``BudgetTracker``.

``LibrexAlloc`` keeps the design's constructor arguments and methods (``allocate``,
``update``, ``compute_fairness_metrics``) on top of the vectorized
:class:`~librex_alloc.policies.ConstrainedThompsonSampling`, with the corrected maths of
SPEC §2–4 (Bernoulli trick, α-fair gradient rule, a real knapsack oracle).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from librex_alloc import metrics
from librex_alloc._validation import as_float_array, expect_keys
from librex_alloc.errors import InvalidConfigError, InvalidInputError, NotAllocatedError, StateError
from librex_alloc.fairness import FairnessConfig
from librex_alloc.policies import Allocation, ConstrainedThompsonSampling
from librex_alloc.registry import check_id

#: Agents registered up front by ``LibrexAlloc(n_agents=...)`` (more may join by requesting).
MAX_INITIAL_AGENTS = 10_000_000


class LibrexAlloc:
    """Constrained Thompson sampling for multi-agent resource allocation.

    n_agents: agents ``0 .. n_agents-1`` registered up front (others join on first request).
    n_resource_types: K. fairness_mode: "none", "proportional", "maxmin", "alpha" (with
    ``fairness_alpha``) or a number α ≥ 0. alpha_prior, beta_prior: the Beta prior.
    use_gurobi: kept for API compatibility; Gurobi is not a dependency, so True is an error.

    Keyword-only extensions: oracle ("auto" | "exact" | "fast"), time_limit, utility
    ("reward" | "service" | "share"), fairness_horizon, epsilon, min_share (ρ for every
    agent, or a mapping id → ρ), eta, weights (mapping id → priority), reward_family
    ("bernoulli" | "gaussian"), gaussian_prior (dict), discount γ, divisible, seed,
    max_reward_loss ε ∈ [0, 1] (keep ≥ 1 − ε of the utilitarian reward: see
    :mod:`librex_alloc.fairness`), gap_tolerance (the oracle's relative gap), round_deadline
    (seconds of wall-clock time the oracle may take per round; None: none).
    """

    def __init__(self, n_agents: int = 0, n_resource_types: int = 1,
                 fairness_mode: str | float = "proportional", alpha_prior: float = 1.0,
                 beta_prior: float = 1.0, use_gurobi: bool = False, *, oracle: str = "auto",
                 time_limit: float | None = None, fairness_alpha: float | None = None,
                 utility: str = "reward", fairness_horizon: float | None = None,
                 epsilon: float = 1e-3, min_share: float | Mapping = 0.0, eta: float = 1.0,
                 weights: Mapping | None = None, reward_family: str = "bernoulli",
                 gaussian_prior: dict | None = None, discount: float = 1.0,
                 divisible: bool = False, max_pending_rounds: int = 1000, seed=None,
                 max_reward_loss: float | None = None, gap_tolerance: float | None = None,
                 round_deadline: float | None = None):
        if use_gurobi:
            raise InvalidConfigError("use_gurobi=True: Gurobi is not a dependency of "
                                     "librex-alloc; use oracle='exact' (OR-Tools CP-SAT)")
        if isinstance(n_agents, bool) or not isinstance(n_agents, (int, np.integer)) or \
                not 0 <= n_agents <= MAX_INITIAL_AGENTS:
            raise InvalidConfigError(f"n_agents: expected an int in [0, {MAX_INITIAL_AGENTS}], "
                                     f"got {n_agents!r}")
        default_share = 0.0 if isinstance(min_share, Mapping) else min_share
        fairness = FairnessConfig(mode=fairness_mode, alpha=fairness_alpha, utility=utility,
                                  horizon=fairness_horizon, epsilon=epsilon,
                                  min_share=default_share, eta=eta,
                                  max_reward_loss=max_reward_loss)
        if reward_family in ("bernoulli", "beta"):
            prior = {"alpha_prior": alpha_prior, "beta_prior": beta_prior}
        elif reward_family == "gaussian":
            prior = dict(gaussian_prior or {})
        else:
            raise InvalidConfigError(f"reward_family: expected 'bernoulli' or 'gaussian', got "
                                     f"{reward_family!r}")
        policy = ConstrainedThompsonSampling(
            n_resource_types, fairness=fairness, oracle=oracle, time_limit=time_limit,
            gap_tolerance=gap_tolerance, divisible=divisible, reward_family=reward_family,
            prior=prior, discount=discount, max_pending_rounds=max_pending_rounds, seed=seed,
            round_deadline=round_deadline)
        self._attach(policy, int(n_agents))
        if self.n_agents:
            self.policy.register(list(range(self.n_agents)))
        if isinstance(min_share, Mapping):
            self.set_min_share(min_share)
        if weights:
            self.set_weights(weights)

    def _attach(self, policy: ConstrainedThompsonSampling, n_agents: int) -> None:
        self.policy = policy
        self.n_agents = n_agents
        self.n_resource_types = policy.n_resources
        self.fairness_mode = policy.fairness_config.mode
        self.use_gurobi = False
        self.last_allocation: Allocation | None = None

    @property
    def config(self):
        """The policy's :class:`~librex_alloc.config.PolicyConfig`."""
        return self.policy.config

    @property
    def name(self) -> str:
        return "LibrexAlloc"

    @property
    def round(self) -> int:
        return self.policy.round

    def set_weights(self, weights: Mapping) -> None:
        """Priority weights w_i ∈ [1e-6, 1e6] per agent id (values are multiplied by them)."""
        if not isinstance(weights, Mapping):
            raise InvalidInputError("weights: expected a mapping {agent_id: weight}")
        self.policy.set_weights(weights)

    def set_min_share(self, min_share: Mapping) -> None:
        """Minimum service fractions ρ_i ∈ [0, 1] per agent id (virtual queues)."""
        if not isinstance(min_share, Mapping):
            raise InvalidInputError("min_share: expected a mapping {agent_id: share}")
        self.policy.set_min_share(min_share)

    # -- the design's API ----------------------------------------------------------------------
    def allocate(self, agent_requests: Mapping, budget) -> dict:
        """Allocate one round.

        agent_requests: {agent_id: (K,) request} or {agent_id: (m, K) options}.
        budget: (K,) available resources this round.
        Returns {agent_id: (K,) allocated resources} for every requesting agent (zeros when
        not allocated; the chosen option's request, times the fraction in divisible mode).
        """
        if not isinstance(agent_requests, Mapping):
            raise InvalidInputError("agent_requests: expected a dict {agent_id: request}")
        k = self.policy.n_resources
        keys = list(agent_requests)
        try:  # the common case, one (K,) vector per agent: one array, no per-agent work
            requests = as_float_array(list(agent_requests.values()), "requests", nonnegative=True,
                                      shape=(len(keys), k))
        except InvalidInputError:
            requests = None
        if requests is not None and len(keys):
            alloc = self.policy.allocate_batch(keys, requests, budget,
                                               options=np.zeros(len(keys), np.int64))
            self.last_allocation = alloc
            return dict(zip(keys, alloc.granted))
        ids, rows, opts = [], [], []
        for a, req in agent_requests.items():
            r = as_float_array(req, f"request of agent {a!r}")
            if r.ndim == 1:
                r = r[None, :]
            if r.ndim != 2 or r.shape[1] != k or r.shape[0] == 0:
                raise InvalidInputError(f"request of agent {a!r}: expected shape ({k},) or "
                                        f"(m, {k}), got {np.shape(req)}")
            ids.extend([a] * r.shape[0])
            opts.extend(range(r.shape[0]))
            rows.append(r)
        requests = np.vstack(rows) if rows else np.zeros((0, k))
        alloc = self.policy.allocate_batch(ids, requests, budget, options=np.asarray(opts,
                                                                                     np.int64))
        self.last_allocation = alloc
        out = {a: np.zeros(k) for a in agent_requests}
        granted = alloc.granted
        for i in np.nonzero(alloc.fractions > 0)[0]:
            out[ids[i]] = out[ids[i]] + granted[i]  # divisible mode may mix options
        return out

    def update(self, agent_id, outcome: Mapping) -> bool:
        """Report one allocated agent's outcome.

        outcome: {"success": bool} or {"reward": float} (in [0, 1] for the Bernoulli family,
        learned with the Bernoulli trick, not thresholded), optionally {"round": t}; by default
        the newest round in which the agent was allocated and has not reported yet.
        Returns True if applied, False if this (round, agent) had already been applied: a
        retried call without a round is recognized as a duplicate (it is never applied to an
        older round of the agent).
        """
        check_id(agent_id)  # None, NaN, unhashable: InvalidInputError, as in the batch API
        if not isinstance(outcome, Mapping):
            raise InvalidInputError("outcome: expected a dict with 'success' or 'reward'")
        has_s, has_r = "success" in outcome, "reward" in outcome
        if has_s == has_r:
            raise InvalidInputError("outcome must contain exactly one of 'success' or 'reward'")
        rnd = outcome.get("round")
        if rnd is None:
            rnd = self.policy.last_allocated_round(agent_id)
            if rnd is None:
                raise NotAllocatedError(f"agent {agent_id!r} has no pending allocated round "
                                        f"(never allocated, or its newest round expired)")
        if has_s:  # a bool or 0/1 (also 0.0/1.0), checked as the batch API checks flags
            return self.policy.observe_one(rnd, agent_id, success=outcome["success"])
        return self.policy.observe_one(rnd, agent_id, outcome["reward"])

    def compute_fairness_metrics(self, utility: str | None = None) -> dict:
        """Fairness of a cumulative utility vector over all registered agents.

        utility: None (default) measures the vector the fairness rule equalizes (its
        ``utility`` setting: realized reward unless configured otherwise), so the preset and
        the metric agree; or "service" (rounds allocated, the design's allocation counts),
        "reward" (realized reward, negatives counted as 0) or "utility".
        Returns gini, jain, allocation_variance, min_allocation_ratio, sum_log_utility,
        max_min_share_violation, rounds, and the utility measured.
        """
        if utility is None:
            rule = self.policy.fairness_config.utility
            utility = "utility" if rule == "share" else rule
        _, x = self.policy.utilities(utility)
        if utility != "service":
            x = np.maximum(x, 0.0)
        f = self.policy.fairness
        slots = self.policy.registry.live_agent_slots()
        return {
            "gini": metrics.gini(x),
            "jain": metrics.jain(x) if len(x) else float("nan"),
            "allocation_variance": metrics.variance(x) if len(x) else float("nan"),
            "min_allocation_ratio": metrics.min_max_ratio(x) if len(x) else float("nan"),
            "sum_log_utility": metrics.sum_log_utility(x / max(self.policy.round, 1)),
            "max_min_share_violation": metrics.max_min_share_violation(
                f.min_share[slots], f.active[slots], f.served[slots]),
            "rounds": self.policy.round,
            "utility": utility,
        }

    def remove_agents(self, agent_ids) -> None:
        """Agents leave; their state is dropped."""
        self.policy.remove_agents(agent_ids)

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """The learned state with its configuration (see ``AllocationPolicy.get_state``)."""
        return {"api": self.name, "n_agents": self.n_agents, "policy": self.policy.get_state()}

    @staticmethod
    def _check_state(state) -> dict:
        if isinstance(state, dict) and "api" not in state and "policy" in state and \
                "config" in state:
            raise StateError("this is a policy-level state (AllocationPolicy.get_state), not a "
                             "LibrexAlloc one: restore it with "
                             "ConstrainedThompsonSampling.from_state")
        state = expect_keys(state, ("api", "n_agents", "policy"), "LibrexAlloc state")
        if state["api"] != "LibrexAlloc":
            raise StateError(f"state: api {state['api']!r}, expected 'LibrexAlloc'")
        n = state["n_agents"]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise StateError(f"state: n_agents must be an int ≥ 0, got {n!r}")
        return state

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output into this object; its configuration (and
        ``n_agents``) must equal this object's, else :class:`StateError` and nothing changes."""
        state = self._check_state(state)
        if int(state["n_agents"]) != self.n_agents:
            raise StateError(f"state: n_agents {state['n_agents']} differs from this object's "
                             f"{self.n_agents}; use LibrexAlloc.from_state(state)")
        self.policy.set_state(state["policy"])
        self.last_allocation = None

    @classmethod
    def from_state(cls, state: dict) -> LibrexAlloc:
        """A ``LibrexAlloc`` built with the state's own configuration, then restored."""
        state = cls._check_state(state)
        obj = cls.__new__(cls)
        obj._attach(ConstrainedThompsonSampling.from_state(state["policy"]),
                    int(state["n_agents"]))
        return obj

    def save(self, path) -> None:
        """Atomic Parquet checkpoint of the learned state and its configuration."""
        from librex_alloc.checkpoint import save_state  # pyarrow: only where tables are built

        save_state(self.get_state(), path)

    def load(self, path) -> None:
        """Restore a checkpoint written by :meth:`save` into this object (same configuration)."""
        from librex_alloc.checkpoint import load_state

        self.set_state(load_state(path))

    @classmethod
    def from_checkpoint(cls, path) -> LibrexAlloc:
        """A ``LibrexAlloc`` rebuilt from a checkpoint file, with its configuration."""
        from librex_alloc.checkpoint import load_state

        return cls.from_state(load_state(path))


class BudgetTracker:
    """Track budget consumption over time.

    Every round has the same K (fixed by the first recorded round). Allocations and budgets
    are finite and ≥ 0; a bad call raises :class:`InvalidInputError` and records nothing.
    """

    def __init__(self):
        self.history: list[np.ndarray] = []
        self.budgets: list[np.ndarray] = []

    @property
    def n_resources(self) -> int | None:
        """K of the recorded rounds (None before the first)."""
        return len(self.history[0]) if self.history else None

    def record_allocation(self, allocated, budget=None) -> None:
        """Record one round's total allocation (K,), and optionally that round's budget."""
        k = self.n_resources
        allocated = as_float_array(allocated, "allocated", ndim=1 if k is None else None,
                                   shape=None if k is None else (k,), nonnegative=True)
        if budget is not None:
            budget = as_float_array(budget, "budget", shape=allocated.shape, nonnegative=True)
        elif self.budgets:
            raise InvalidInputError("budget: the earlier rounds recorded theirs; pass this "
                                    "round's too")
        if budget is not None and len(self.budgets) != len(self.history):
            raise InvalidInputError("budget: the earlier rounds were recorded without one; "
                                    "pass the budget to get_utilization instead")
        self.history.append(allocated.copy())
        if budget is not None:
            self.budgets.append(budget.copy())

    def get_utilization(self, budget=None) -> np.ndarray:
        """Average utilization per resource: Σ allocated / Σ budget over the recorded rounds.

        budget: (K,) per-round budget; default: the budgets recorded with each round.
        """
        if not self.history:
            if budget is None:
                return np.zeros(0)
            budget = as_float_array(budget, "budget", ndim=1, nonnegative=True)
            return np.zeros(len(budget))
        used = np.vstack(self.history)
        if budget is None:
            if len(self.budgets) != len(self.history):
                raise InvalidInputError("get_utilization: pass the budget (not recorded)")
            return metrics.utilization(used, np.vstack(self.budgets))
        budget = as_float_array(budget, "budget", shape=(used.shape[1],), nonnegative=True)
        return metrics.utilization(used, budget)


class ResourceManager:
    """High-level resource manager using :class:`LibrexAlloc`."""

    def __init__(self, alloc_solver: LibrexAlloc):
        self.alloc_solver = alloc_solver
        self.budget_tracker = BudgetTracker()

    def manage_resources(self, agent_requests: Mapping, total_budget) -> dict:
        """Allocate one round and record its consumption."""
        allocation = self.alloc_solver.allocate(agent_requests, total_budget)
        k = self.alloc_solver.policy.n_resources
        total = np.sum(list(allocation.values()), axis=0) if allocation else np.zeros(k)
        self.budget_tracker.record_allocation(total, total_budget)
        return allocation

    def report_outcome(self, agent_id, outcome: Mapping) -> bool:
        return self.alloc_solver.update(agent_id, outcome)
