"""The one vectorized batch interface shared by every policy of the project.

A round is one call of :meth:`AllocationPolicy.allocate_batch` with N option rows (agent id,
option index, request vector) and a budget; it returns an :class:`Allocation`. Outcomes come
back, possibly late, through :meth:`AllocationPolicy.observe` for (round, agent) pairs that
were allocated; a repeated report of the same (round, agent) is ignored, so retried calls are
applied once. Every public method validates all of its input before it changes anything.

Subclasses supply :meth:`AllocationPolicy._index` (the per-row value fed to the oracle: a
Thompson sample, a UCB index, a posterior mean...) and may override :meth:`_decide` (for
policies that do not use the knapsack oracle), :meth:`_after_round` (state that follows the
decision) or :meth:`_learn` (then ``observe_one`` routes through ``_learn`` too). Every round
hook receives the round's :class:`~librex_alloc.policies.context.RoundContext` (request,
slots, deadline); nothing about a round is kept on the policy between calls. Extra learned
state goes through ``_extra_state`` / ``_check_extra_state(extra, state)`` /
``_set_extra_state``; hyper-parameters are a frozen dataclass :attr:`AllocationPolicy.Params`
(:mod:`librex_alloc.policies.params`) read from ``config.params``.

Configuration and learned state are separate: ``policy.config`` is a frozen
:class:`~librex_alloc.config.PolicyConfig`; :meth:`get_state` / :meth:`set_state` carry the
learned state (registry, posteriors, fairness, outcome ledger, RNG, round counter) with the
configuration it was learned under. ``set_state`` validates the whole state and refuses a
state whose configuration differs from the policy's (:class:`StateError`);
:meth:`AllocationPolicy.from_state` builds a policy from a state's own configuration.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from librex_alloc import budget_check, oracles
from librex_alloc._validation import as_float_array, as_int_array, expect_keys, pcg64_state
from librex_alloc.config import PolicyConfig
from librex_alloc.errors import (
    InvalidConfigError,
    InvalidInputError,
    LibrexError,
    NotAllocatedError,
    StateError,
)
from librex_alloc.fairness import (
    MAX_WEIGHT,
    MIN_WEIGHT,
    FairnessConfig,
    FairnessState,
    rows_key,
)
from librex_alloc.ledger import OutcomeLedger
from librex_alloc.oracles.lagrangian import reference_bound
from librex_alloc.policies import outcomes
from librex_alloc.policies.context import RoundContext
from librex_alloc.policies.outcomes import OutcomeCheck, Reason
from librex_alloc.policies.params import Params, check_params
from librex_alloc.policies.params import defaults as param_defaults
from librex_alloc.posteriors import make_posterior
from librex_alloc.registry import AgentRegistry, check_ids, check_options, factorize_ids
from librex_alloc.request import RoundRequest


@dataclass(frozen=True)
class Allocation:
    """One round's decision. Row arrays are (N,), aligned with the request rows.

    round: round number; agent_ids: list of N ids; options: option index per row;
    selected: bool; fractions: share of the request granted (1.0 or 0.0 unless divisible);
    values: what the oracle maximized; oracle: the :class:`~librex_alloc.oracles.OracleResult`.
    """

    round: int
    agent_ids: list
    options: np.ndarray
    requests: np.ndarray
    budget: np.ndarray
    selected: np.ndarray
    fractions: np.ndarray
    values: np.ndarray
    oracle: oracles.OracleResult

    @property
    def granted(self) -> np.ndarray:
        """(N, K) resources granted per row: ``fractions[:, None] * requests``."""
        return self.fractions[:, None] * self.requests

    @property
    def usage(self) -> np.ndarray:
        """(K,) total resources granted, summed as the oracles' budget check sums them
        (``granted[rows].sum(axis=0)`` over the granted rows, in row order)."""
        rows = self.fractions > 0
        return self.granted[rows].sum(axis=0)

    def allocated_agents(self) -> list:
        return [self.agent_ids[i] for i in np.nonzero(self.selected)[0]]


class AllocationPolicy(ABC):
    """Base class: registry, posteriors, fairness, the oracle call and the outcome ledger.

    Keyword arguments are those of :class:`~librex_alloc.config.PolicyConfig` (n_resources:
    K; fairness: a :class:`FairnessConfig`, a preset name or a number α; oracle "auto" |
    "exact" | "fast"; time_limit; gap_tolerance; divisible; reward_family "bernoulli" |
    "gaussian"; prior; discount γ; max_pending_rounds; seed), or pass
    ``config=`` a ready PolicyConfig.
    """

    name = "policy"
    #: Whether the choice follows the per-row values (the fairness rule's output). The
    #: reward-loss bound steers a policy through its values, so a policy whose rule ignores
    #: them (DRF, round-robin, ...) refuses ``max_reward_loss`` at construction.
    follows_values: bool = True

    def __init__(self, n_resources: int | None = None, *,
                 fairness: FairnessConfig | str | float = "none", oracle: str = "auto",
                 time_limit: float | None = None, gap_tolerance: float | None = None,
                 divisible: bool = False, reward_family: str = "bernoulli",
                 prior: dict | None = None,
                 discount: float = 1.0, max_pending_rounds: int = 1000, seed: int | None = None,
                 params: dict | None = None, config: PolicyConfig | None = None,
                 round_deadline: float | None = None):
        if config is None:
            config = PolicyConfig(n_resources, fairness=fairness, oracle=oracle,
                                  time_limit=time_limit, gap_tolerance=gap_tolerance,
                                  divisible=divisible, reward_family=reward_family,
                                  prior=prior or {},
                                  discount=discount, max_pending_rounds=max_pending_rounds,
                                  seed=seed, params=params or {},
                                  round_deadline=round_deadline)
        elif not isinstance(config, PolicyConfig):
            raise InvalidConfigError(f"config: expected a PolicyConfig, got {type(config)!r}")
        elif n_resources is not None and n_resources != config.n_resources:
            raise InvalidConfigError("n_resources disagrees with config.n_resources")
        self.params = check_params(self.Params, config.params, self.name)
        if config.fairness.max_reward_loss is not None and not self.follows_values:
            raise InvalidConfigError(
                f"{self.name}: max_reward_loss cannot be honoured: this policy's rule ignores "
                f"the oracle values the bound steers, so it could not keep the promise; use a "
                f"policy that feeds its values to the oracle (e.g. constrained-ts) or leave "
                f"max_reward_loss unset")
        self.config = config
        self._reset_state()

    @classmethod
    def from_config(cls, config: PolicyConfig | dict) -> AllocationPolicy:
        """A fresh policy with this configuration (a dict is read by PolicyConfig.from_dict)."""
        if isinstance(config, dict):
            config = PolicyConfig.from_dict(config)
        return cls(config=config)

    @classmethod
    def from_state(cls, state: dict) -> AllocationPolicy:
        """A policy built with a state's own configuration, then restored from it."""
        if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
            raise StateError("state: expected a policy state dict with a 'config' entry")
        try:
            config = PolicyConfig.from_dict(state["config"], complete=True)
        except LibrexError as exc:
            raise StateError(f"state: invalid configuration ({exc})") from None
        policy = cls(config=config)
        policy.set_state(state)
        return policy

    #: Policy-specific hyper-parameters (``config.params``): a frozen dataclass of
    #: :mod:`librex_alloc.policies.params` (the base: none). ``self.params`` is an instance.
    Params: type[Params] = Params
    #: ``{name: default}`` of :attr:`Params` (set for every subclass; read-only).
    PARAMS: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.PARAMS = param_defaults(cls.Params)

    def _reset_state(self) -> None:
        self._slots_cache: tuple | None = None
        cfg = self.config
        self.posterior = make_posterior(cfg.reward_family, discount=cfg.discount, **cfg.prior)
        self.registry = AgentRegistry()
        self.fairness = FairnessState(cfg.fairness)
        self.ledger = OutcomeLedger(cfg.max_pending_rounds)
        self.rng = np.random.default_rng(cfg.seed)
        self.round = 0

    # -- configuration, read-only ----------------------------------------------------------
    n_resources = property(lambda self: self.config.n_resources)
    fairness_config = property(lambda self: self.config.fairness)
    oracle = property(lambda self: self.config.oracle)
    time_limit = property(lambda self: self.config.time_limit)
    gap_tolerance = property(lambda self: self.config.gap_tolerance)
    round_deadline = property(lambda self: self.config.round_deadline)
    divisible = property(lambda self: self.config.divisible)
    reward_family = property(lambda self: self.config.reward_family)
    discount = property(lambda self: self.config.discount)
    max_pending_rounds = property(lambda self: self.config.max_pending_rounds)
    seed = property(lambda self: self.config.seed)

    # -- the batch interface -----------------------------------------------------------------
    def allocate_batch(self, agent_ids, requests, budget, *, options=None) -> Allocation:
        """Decide one round.

        agent_ids: N hashable ids, one per option row (repeat an id for several options).
        requests: (N, K) float ≥ 0, resource units. budget: (K,) float ≥ 0.
        options: (N,) ints naming each row's option; default: order of appearance per agent.
        """
        return self.allocate(RoundRequest.build(agent_ids, requests, budget, options,
                                                n_resources=self.n_resources))

    def allocate(self, request: RoundRequest) -> Allocation:
        """Decide one round from a :class:`~librex_alloc.request.RoundRequest`.

        Validation happens first; if anything fails later (an oracle error), every change is
        rolled back, so a call that raises leaves the policy as it was."""
        if not isinstance(request, RoundRequest):
            raise InvalidInputError(f"request: expected a RoundRequest, got {type(request)!r}")
        if request.codes is None or request.n_resources != self.n_resources:
            request = RoundRequest.build(request.agent_ids, request.requests, request.budget,
                                         request.options, n_resources=self.n_resources,
                                         pace=request.pace)
        cached = self._slots_cache
        if cached is not None and cached[0] is request and cached[1] is self.registry \
                and cached[2] == self.registry.generation:
            agent_slots, arm_slots = cached[3], cached[4]  # the same request again
        else:
            agent_slots = self.registry.lookup(request.uniques)[request.codes]
            arm_slots = self.registry.arms_of(agent_slots, request.options)
        joining = bool(np.any(arm_slots < 0))  # new agents or new options
        undo = self._undo_point(joining)
        # the round's deadline covers every oracle call of the round (two under the
        # reward-loss bound): each gets the time left
        end = (time.perf_counter() + self.round_deadline
               if self.round_deadline is not None else None)
        try:
            if joining:
                agent_slots, arm_slots = self._register(request.agent_ids, request.options,
                                                        codes=request.codes,
                                                        uniques=request.uniques)
            ctx = RoundContext(self.round + 1, request, agent_slots, arm_slots, end)
            self.posterior.decay()
            index = self._index(ctx)
            values = self.fairness.values(index, agent_slots)
            r_star = self._reward_reference(ctx) \
                if self.fairness.needs_reference() else None  # (R̂*, key if solved, prices)
            values = self.fairness.mix_reward_loss(values, index)
            if not np.all(np.isfinite(values)):  # pragma: no cover - guarded by the configs
                raise InvalidInputError("oracle values are not finite")
            result = self._decide(ctx, values, index)
            result = within_budget(result, values, request.requests, request.budget,
                                   self.divisible)
        except BaseException:
            self._roll_back(undo)
            raise
        fractions = result.fractions
        self.round += 1
        rnd = self.round
        self.fairness.record_allocation(agent_slots, fractions, request.requests,
                                        request.budget)
        if r_star is not None:
            self.fairness.record_reward_loss(*r_star)
        rows = np.nonzero(fractions > 0)[0]
        self.ledger.record(rnd, agent_slots[rows], arm_slots[rows], fractions[rows])
        # a RoundRequest is immutable: a caller that passes the same one again (the
        # coordinator, while no shard changes its rows) skips the id look-ups
        agent_slots.flags.writeable = arm_slots.flags.writeable = False
        self._slots_cache = (request, self.registry, self.registry.generation, agent_slots,
                             arm_slots)
        out = Allocation(rnd, request.agent_ids, request.options, request.requests,
                         request.budget, result.selected, fractions, values, result)
        self._after_round(ctx, out)
        return out

    def _undo_point(self, joining: bool) -> dict:
        """What :meth:`allocate` may change before its decision, saved cheaply: the RNG state,
        the registry and array sizes when new agents or options join, the posterior's
        statistics when it decays."""
        undo = {"rng": self.rng.bit_generator.state}
        if joining:
            undo["registry"] = self.registry.get_state()
            undo["sizes"] = (self.posterior.n_slots, self.fairness.n_slots,
                             len(self.ledger.last_round))
        if self.config.discount != 1.0:
            undo["posterior"] = self.posterior.get_state()
        return undo

    def _roll_back(self, undo: dict) -> None:
        self.rng.bit_generator.state = undo["rng"]
        if "posterior" in undo:
            self.posterior.set_state(undo["posterior"])
        if "registry" in undo:
            self.registry.set_state(undo["registry"])
            n_arms, n_agents, n_ledger = undo["sizes"]
            self.posterior.truncate(n_arms)
            self.fairness.truncate(n_agents)
            self.ledger.truncate(n_ledger)

    def observe(self, round_id: int, agent_ids, rewards=None, *, successes=None) -> int:
        """Report outcomes of ``round_id`` for ``agent_ids`` (one each, no repeats in a call).

        rewards: (m,) floats (in [0, 1] for the Bernoulli family) or successes: (m,) 0/1 flags.
        Every agent must have been allocated in that round. Reports already applied for the
        same (round, agent) are skipped: the return value counts those newly applied.
        Everything is validated before anything changes (:meth:`check_outcomes`, then
        :meth:`observe_checked`); the first problem raises its error.
        """
        check = self.check_outcomes(round_id, agent_ids, rewards, successes=successes)
        error = check.first_error(ignore=(Reason.ALREADY_REPORTED,))
        if error is not None:
            raise error
        return self.observe_checked(check)

    def check_outcomes(self, round_id: int, agent_ids, rewards=None, *, successes=None
                       ) -> OutcomeCheck:
        """Whether each outcome row of this batch (the arguments of :meth:`observe`) would be
        accepted, and why not: an :class:`~librex_alloc.policies.outcomes.OutcomeCheck` with
        a mask of accepted rows, a :class:`~librex_alloc.policies.outcomes.Reason` per row
        (unknown agent, not allocated in that round, already reported, round not pending,
        value not finite or out of range for the reward family, wrong shape, repeated agent)
        and the errors ``observe`` would raise. Changes nothing; raises
        :class:`InvalidInputError` only for ids that are not a list of ids, or unless exactly
        one of rewards / successes is given."""
        return outcomes.check_outcomes(self, round_id, agent_ids, rewards, successes=successes)

    def observe_checked(self, checks) -> int:
        """Apply the accepted rows of one :meth:`check_outcomes` result or a sequence of them
        (one update per (round, kind), rows in the order given) without validating the rows
        again; returns how many were applied. :class:`StateError` (nothing applied) if a
        check no longer describes the policy's state (its round changed since, or its rows
        were applied already); :class:`InvalidInputError` if an item is not a check."""
        return outcomes.observe_checked(self, checks)

    def observe_one(self, round_id: int, agent_id, reward=None, *, success=None) -> bool:
        """:meth:`observe` for one agent (the per-agent API's path: dict look-ups, no arrays).

        Same validation, same effects and the same random draws as ``observe`` with one id;
        returns True if applied, False if this (round, agent) had already reported."""
        if (reward is None) == (success is None):
            raise InvalidInputError("observe: give exactly one of reward or success")
        if success is not None:
            if not isinstance(success, (bool, int, float, np.bool_, np.integer, np.floating)) \
                    or success not in (0, 1):
                raise InvalidInputError(f"success: expected a bool or 0/1, got {success!r}")
            value = float(success)
        else:
            value = self.posterior.check_reward(reward)
        slot = self.registry.slot_of(agent_id)
        pending = self.ledger.pending(round_id)
        pos = pending.find_one(slot)
        if pos < 0:
            raise NotAllocatedError(f"agent {agent_id!r} was not allocated in round {round_id}")
        if pending.reported[pos]:
            return False
        if type(self)._learn is not AllocationPolicy._learn:  # a subclass learns its own way
            self.ledger.mark(int(round_id), np.array([pos]))
            self._learn(pending.arms[pos:pos + 1], np.array([value]), success is not None)
        else:
            pending.reported[pos] = True
            arm = int(pending.arms[pos])
            if success is not None:
                self.posterior.update_success_one(arm, value)
            else:
                self.posterior.update_one(arm, value, self.rng)
        self.fairness.record_reward_one(slot, value, float(pending.fractions[pos]))
        return True

    def register(self, agent_ids, options=None) -> None:
        """Agents join without requesting (their fairness state starts counting from now).

        options: (N,) option index per id, default 0."""
        ids = check_ids(agent_ids)
        codes, uniques = factorize_ids(ids)
        opts = np.zeros(len(ids), np.int64) if options is None else \
            as_int_array(options, "options", length=len(ids))
        check_options(opts)
        self._register(ids, opts, codes=codes, uniques=uniques)

    def _register(self, ids, options, **factorized) -> tuple[np.ndarray, np.ndarray]:
        """Slots for the rows; new agents and arms start at the prior."""
        reg = self.registry
        agent_slots, arm_slots, new_agents, new_arms = reg.add(ids, options, **factorized)
        self.posterior.resize(reg.n_arm_slots)
        self.fairness.resize(reg.n_agent_slots)
        self.ledger.resize(reg.n_agent_slots)
        if len(new_arms):
            self.posterior.reset(new_arms)
        if len(new_agents):
            self.fairness.reset(new_agents)
        return agent_slots, arm_slots

    def _per_agent(self, agent_ids, values, name: str, low: float, high: float
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Validate per-agent settings, then register unknown ids; returns (slots, values)."""
        if isinstance(agent_ids, Mapping) and values is None:
            agent_ids, values = list(agent_ids), list(agent_ids.values())
        ids = check_ids(agent_ids)
        codes, uniques = factorize_ids(ids)
        if len(uniques) != len(ids):
            raise InvalidInputError(f"{name}: an agent appears twice")
        vals = as_float_array(values, name, shape=(len(ids),))
        if len(vals) and (np.any(vals < low) or np.any(vals > high)):
            raise InvalidInputError(f"{name}: values must lie in [{low:g}, {high:g}]")
        agent_slots, _ = self._register(ids, np.zeros(len(ids), np.int64), codes=codes,
                                        uniques=uniques)
        return agent_slots, vals

    def set_weights(self, agent_ids, weights=None) -> None:
        """Priority weights w_i ∈ [1e-6, 1e6] (the oracle values are multiplied by them).

        Either ``set_weights({id: w})`` or ``set_weights(ids, weights)``; unknown ids join."""
        slots, vals = self._per_agent(agent_ids, weights, "weights", MIN_WEIGHT, MAX_WEIGHT)
        self.fairness.weight[slots] = vals

    def set_min_share(self, agent_ids, min_share=None) -> None:
        """Minimum service fractions ρ_i ∈ [0, 1] (virtual queues); a mapping or ids + values."""
        slots, vals = self._per_agent(agent_ids, min_share, "min_share", 0.0, 1.0)
        self.fairness.min_share[slots] = vals

    def remove_agents(self, agent_ids) -> None:
        """Agents leave: their posteriors, fairness state and pending outcomes are dropped."""
        ids = check_ids(agent_ids)
        slots = self.registry.agent_slots(ids)  # raises before any change
        self.ledger.drop_agents(slots)
        _, arms = self.registry.remove(ids)
        self.posterior.reset(arms)
        self.fairness.reset(slots)

    def last_allocated_round(self, agent_id) -> int | None:
        """The newest round in which ``agent_id`` was allocated, if it is still pending
        (whether or not it has reported)."""
        return self.ledger.newest_round(self.registry.slot_of(agent_id))

    # -- hooks -------------------------------------------------------------------------------
    @abstractmethod
    def _index(self, ctx: RoundContext) -> np.ndarray:
        """Per-row value estimate (N,) of the rows ``ctx.arm_slots``, before fairness
        weighting."""

    def _decide(self, ctx: RoundContext, values: np.ndarray, index: np.ndarray
                ) -> oracles.OracleResult:
        """The round's selection from the oracle ``values`` (N,) (``index``: the rows'
        :meth:`_index` before fairness weighting)."""
        return oracles.solve(values, ctx.requests, ctx.budget, groups=ctx.agent_slots,
                             method=self.oracle, time_limit=self.time_limit,
                             gap_tolerance=self.gap_tolerance, divisible=self.divisible,
                             deadline=ctx.deadline_left())

    def _after_round(self, ctx: RoundContext, allocation: Allocation) -> None:
        """Called once a round is decided and recorded (not on a call that raised)."""

    def _estimate(self, ctx: RoundContext) -> np.ndarray:
        """Per-row reward estimate (N,) of the reward-loss reference: the posterior means."""
        return self.posterior.mean(ctx.arm_slots)

    #: Whether the reward-loss reference may be reused for a few rounds on the same rows (not
    #: with a discount, which moves every estimate every round).
    reuses_reference: bool = True
    #: Whether the Lagrangian bound may stand in for the oracle's between two oracle solves
    #: (:mod:`librex_alloc.fairness`); False (the cost benchmark's "before"): the oracle
    #: solves every round whose rows are not reused.
    cheap_reference: bool = True

    def _reward_reference(self, ctx: RoundContext
                          ) -> tuple[float, float | None, np.ndarray | None]:
        """``(R̂*_t, key, prices)`` of the reward-loss bound (:mod:`librex_alloc.fairness`): a
        proven upper bound on the utilitarian optimum of the estimates under the round's budget
        (its pace in horizon-budget mode), whatever the policy's own rule. It is the oracle's
        bound (``key``: the rows' fingerprint, -1 when they may not be reused), reused on the
        same rows, or between two oracle solves the Lagrangian bound at warm-started prices
        (``key`` None); ``prices``: the Lagrangian prices to keep (None: unchanged)."""
        request, arm_slots, agent_slots = ctx.request, ctx.arm_slots, ctx.agent_slots
        budget = request.budget if request.pace is None else \
            np.minimum(request.budget, request.pace)
        fair = self.fairness
        key = -1.0
        if self.reuses_reference and self.config.discount == 1.0:
            key = rows_key(arm_slots, request.requests, budget)
            reused = fair.reusable_reference(key)
            if reused is not None:
                return reused, None, None
        estimate = self._estimate(ctx)
        if not self.cheap_reference:
            res = oracles.solve(estimate, request.requests, budget, groups=agent_slots,
                                method="fast", divisible=self.divisible,
                                deadline=ctx.deadline_left())
            return float(res.bound), key, None
        warm = fair.warm_prices(request.requests.shape[1])
        if warm is not None and fair.cheap_reference_due():
            bound, prices = reference_bound(estimate, request.requests, budget, agent_slots,
                                            warm, sweeps=1)
            if fair.cheap_reference_close(bound):
                return bound, None, prices
        res = oracles.solve(estimate, request.requests, budget, groups=agent_slots,
                            method="fast", divisible=self.divisible,
                            deadline=ctx.deadline_left())
        _, prices = reference_bound(estimate, request.requests, budget, agent_slots, warm,
                                    sweeps=1 if warm is not None else 3)
        return float(res.bound), key, prices

    def _learn(self, arms: np.ndarray, values: np.ndarray, are_flags: bool) -> None:
        if are_flags:
            self.posterior.update_success(arms, values)
        else:
            self.posterior.update(arms, values, self.rng)

    # -- metrics ---------------------------------------------------------------------------------
    def utilities(self, kind: str = "service") -> tuple[list, np.ndarray]:
        """(live agent ids, cumulative utility per agent): ``reward``, ``service`` or
        ``utility`` (the vector the fairness rule is fair on)."""
        slots = self.registry.live_agent_slots()
        return self.registry.agents(), self.fairness.utility_vector(kind, slots)

    # -- state -----------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The configuration as a plain dict (:meth:`PolicyConfig.to_dict`)."""
        return self.config.to_dict()

    def get_state(self) -> dict:
        """Everything learned, with the configuration and the policy's name, as nested dicts of
        arrays and scalars (copies; ``librex_alloc.checkpoint.save_state`` writes it)."""
        return {
            "policy": self.name,
            "config": self.config.to_dict(),
            "round": self.round,
            "rng": self.rng.bit_generator.state,
            "registry": self.registry.get_state(),
            "posterior": self.posterior.get_state(),
            "fairness": self.fairness.get_state(),
            "pending": self.ledger.get_state(),
            "extra": self._extra_state(),
        }

    STATE_KEYS = ("policy", "config", "round", "rng", "registry", "posterior", "fairness",
                  "pending", "extra")

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output; the restored policy makes the same future draws.

        The whole state is validated first (keys, types, shapes consistent with each other,
        finite values, ranges, pending rounds within the registry and the round counter) and
        its configuration must equal this policy's; otherwise :class:`StateError` is raised
        and nothing changes. Every array is copied: the state dict is never shared."""
        state = expect_keys(state, self.STATE_KEYS, "policy state")
        if state["policy"] != self.name:
            raise StateError(f"state of policy {state['policy']!r} cannot be restored into "
                             f"{self.name!r}")
        try:
            config = PolicyConfig.from_dict(state["config"], complete=True)
        except LibrexError as exc:
            raise StateError(f"state: invalid configuration ({exc})") from None
        if config != self.config:
            mine, theirs = self.config.to_dict(), config.to_dict()
            diff = sorted(k for k in mine if mine[k] != theirs[k])
            raise StateError(f"state: its configuration differs from this policy's in {diff}; "
                             f"build the policy with {type(self).__name__}.from_state(state)")
        rnd = state["round"]
        if isinstance(rnd, (bool, np.bool_)) or not isinstance(rnd, (int, np.integer)) or \
                not 0 <= rnd < 2**62:
            raise StateError(f"state: round must be an int ≥ 0, got {rnd!r}")
        rng = _restore_rng(state["rng"])
        registry = AgentRegistry()
        registry.set_state(state["registry"])
        posterior = make_posterior(config.reward_family, discount=config.discount,
                                   **config.prior)
        posterior.set_state(state["posterior"], same_config=True)
        if posterior.n_slots != registry.n_arm_slots:
            raise StateError(f"state: {posterior.n_slots} posterior slots for "
                             f"{registry.n_arm_slots} arm slots")
        free_arms = np.nonzero(registry.arm_agent < 0)[0]
        if len(free_arms) and np.any(posterior.count(free_arms) != 0):
            raise StateError("state: a free arm slot holds observations")
        fairness = FairnessState(config.fairness)
        fairness.set_state(state["fairness"], n_slots=registry.n_agent_slots)
        if not fairness.is_reset(np.nonzero(~registry.live_mask())[0]):
            raise StateError("state: a free agent slot holds fairness state")
        ledger = OutcomeLedger.from_state(
            state["pending"], max_pending_rounds=config.max_pending_rounds,
            current_round=int(rnd), arm_agent=registry.arm_agent,
            agent_live=registry.live_mask())
        extra = self._check_extra_state(state["extra"], state)
        self.registry, self.posterior, self.fairness, self.rng = registry, posterior, fairness, rng
        self.ledger = ledger
        self.round = int(rnd)
        self._set_extra_state(extra)

    def _extra_state(self) -> dict:
        return {}

    def _check_extra_state(self, extra, state: dict) -> dict:
        """Validate a subclass's extra state (:class:`StateError`); returns what to apply.
        ``state``: the whole state being restored, everything but ``extra`` validated."""
        if extra != {}:
            raise StateError("state: unexpected extra state for this policy")
        return extra

    def _set_extra_state(self, extra: dict) -> None:
        pass


def within_budget(result: oracles.OracleResult, values: np.ndarray, requests: np.ndarray,
                  budget: np.ndarray, divisible: bool) -> oracles.OracleResult:
    """``result``, or a copy repaired so that ``fractions @ requests <= budget`` holds in every
    summation order (:mod:`librex_alloc.budget_check`): the hard invariant of SPEC §1 for
    every policy, whichever order a caller sums ``Allocation.usage`` in. A repair (a few ulps
    off a divisible answer, or the lowest-valued row of a 0/1 answer that met the budget only
    to the last ulp) is recorded in ``info["budget_repair"]``."""
    fractions = result.fractions
    if budget_check.fits_any_order(fractions, requests, budget).all():
        return result
    priority = np.argsort(-values, kind="stable")
    fixed = budget_check.repair(fractions, requests, budget, divisible=divisible,
                                priority=priority)
    selected = fixed > 0
    if not divisible:
        fixed = selected.astype(np.float64)
    objective = float(values @ fixed) if len(values) else 0.0
    status = result.status if objective >= result.objective else "feasible"
    return replace(result, selected=selected, fractions=fixed, objective=objective,
                   status=status, info={**result.info, "budget_repair": True})


def _restore_rng(state) -> np.random.Generator:
    """A Generator with the saved PCG64 state, checked exactly (:class:`StateError`)."""
    bg = np.random.PCG64()
    bg.state = pcg64_state(state)
    return np.random.Generator(bg)
