"""The one vectorized batch interface shared by every policy of the project.

A round is one call of :meth:`AllocationPolicy.allocate_batch` with N option rows (agent id,
option index, request vector) and a budget; it returns an :class:`Allocation`. Outcomes come
back, possibly late, through :meth:`AllocationPolicy.observe` for (round, agent) pairs that
were allocated; a repeated report of the same (round, agent) is ignored, so retried calls are
applied once. Every public method validates all of its input before it changes anything.

Subclasses supply :meth:`AllocationPolicy._index` (the per-row value fed to the oracle: a
Thompson sample, a UCB index, a posterior mean...) and may override :meth:`_decide` (for
policies that do not use the knapsack oracle) or :meth:`_learn`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from librex_alloc import oracles
from librex_alloc._validation import as_float_array, as_int_array, check_scalar
from librex_alloc.errors import (
    InvalidConfigError,
    InvalidInputError,
    NotAllocatedError,
    StateError,
)
from librex_alloc.fairness import FairnessConfig, FairnessState
from librex_alloc.posteriors import make_posterior
from librex_alloc.registry import AgentRegistry, check_ids, factorize_ids


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
        """(K,) total resources granted."""
        return self.fractions @ self.requests

    def allocated_agents(self) -> list:
        return [self.agent_ids[i] for i in np.nonzero(self.selected)[0]]


@dataclass
class _Pending:
    """Allocated (agent slot, arm slot, fraction) of one round, and which have reported."""

    agents: np.ndarray
    arms: np.ndarray
    fractions: np.ndarray
    reported: np.ndarray

    def index(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted agent slots, their positions) for vectorized lookups."""
        order = np.argsort(self.agents, kind="stable")
        return self.agents[order], order

    @staticmethod
    def find(index: tuple[np.ndarray, np.ndarray], slots: np.ndarray) -> np.ndarray:
        """Positions of agent ``slots`` in this round's allocation, -1 where absent."""
        keys, order = index
        if not len(keys):
            return np.full(len(slots), -1, dtype=np.int64)
        i = np.minimum(np.searchsorted(keys, slots), len(keys) - 1)
        return np.where(keys[i] == slots, order[i], -1)


class AllocationPolicy(ABC):
    """Base class: registry, posteriors, fairness, the oracle call and the outcome ledger.

    n_resources: K. fairness: a :class:`FairnessConfig` (or its mode string). oracle: "auto",
    "exact" or "fast"; time_limit: seconds for exact solves. divisible: grant fractions.
    reward_family: "bernoulli" (rewards in [0, 1], Bernoulli trick) or "gaussian".
    prior: keyword arguments of the posterior. discount: γ ∈ (0, 1] per round.
    max_pending_rounds: rounds whose outcomes are still accepted. seed: of the one Generator.
    """

    name = "policy"

    def __init__(self, n_resources: int, *, fairness: FairnessConfig | str = "none",
                 oracle: str = "auto", time_limit: float | None = None, divisible: bool = False,
                 reward_family: str = "bernoulli", prior: dict | None = None,
                 discount: float = 1.0, max_pending_rounds: int = 1000, seed=None):
        if not isinstance(n_resources, (int, np.integer)) or n_resources < 1:
            raise InvalidConfigError(f"n_resources: expected an int ≥ 1, got {n_resources!r}")
        if oracle not in oracles.METHODS:
            raise InvalidConfigError(f"oracle: expected one of {oracles.METHODS}, got {oracle!r}")
        if time_limit is not None:
            check_scalar(time_limit, "time_limit", low=0.0, low_open=True)
        if not isinstance(max_pending_rounds, (int, np.integer)) or max_pending_rounds < 1:
            raise InvalidConfigError("max_pending_rounds: expected an int ≥ 1")
        self.n_resources = int(n_resources)
        self.fairness_config = fairness if isinstance(fairness, FairnessConfig) else \
            FairnessConfig(mode=fairness)
        self.oracle = oracle
        self.time_limit = time_limit
        self.divisible = bool(divisible)
        self.reward_family = reward_family
        self.prior = dict(prior or {})
        self.discount = discount
        self.max_pending_rounds = int(max_pending_rounds)
        self.seed = seed
        # learned state
        self.posterior = make_posterior(reward_family, discount=discount, **self.prior)
        self.registry = AgentRegistry()
        self.fairness = FairnessState(self.fairness_config)
        self.rng = np.random.default_rng(seed)
        self.round = 0
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._pending_index: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # -- the batch interface -----------------------------------------------------------------
    def allocate_batch(self, agent_ids, requests, budget, *, options=None) -> Allocation:
        """Decide one round.

        agent_ids: N hashable ids, one per option row (repeat an id for several options).
        requests: (N, K) float ≥ 0, resource units. budget: (K,) float ≥ 0.
        options: (N,) ints naming each row's option; default: order of appearance per agent.
        """
        ids, options, requests, budget, codes, uniques = self._check_batch(
            agent_ids, requests, budget, options)
        reg = self.registry
        agent_slots, arm_slots = self._register(ids, options, codes=codes, uniques=uniques)
        self.posterior.decay()
        index = self._index(arm_slots)
        values = self.fairness.values(index, agent_slots)
        # the group of a row is its agent: at most one option per agent
        result = self._decide(values, requests, budget, agent_slots, index)
        fractions = result.fractions
        selected = result.selected
        self.round += 1
        rnd = self.round
        # fairness bookkeeping, once per requesting agent
        uniq = np.unique(agent_slots)
        per_agent = np.zeros(reg.n_agent_slots)
        share = np.zeros(reg.n_agent_slots)
        np.add.at(per_agent, agent_slots, fractions)
        safe_b = np.where(budget > 0, budget, np.inf)
        row_share = (fractions[:, None] * requests / safe_b).max(axis=1) if len(ids) else \
            np.zeros(0)
        np.add.at(share, agent_slots, row_share)
        self.fairness.record_round(uniq, per_agent[uniq], share[uniq])
        rows = np.nonzero(fractions > 0)[0]
        self._remember(rnd, agent_slots[rows], arm_slots[rows], fractions[rows])
        return Allocation(rnd, ids, options, requests, budget, selected, fractions, values,
                          result)

    def observe(self, round_id: int, agent_ids, rewards=None, *, successes=None) -> int:
        """Report outcomes of ``round_id`` for ``agent_ids`` (one each, no repeats in a call).

        rewards: (m,) floats (in [0, 1] for the Bernoulli family) or successes: (m,) 0/1 flags.
        Every agent must have been allocated in that round. Reports already applied for the
        same (round, agent) are skipped: the return value counts those newly applied.
        """
        ids = check_ids(agent_ids)
        codes, uniques = factorize_ids(ids)
        if (rewards is None) == (successes is None):
            raise InvalidInputError("observe: give exactly one of rewards or successes")
        if len(uniques) != len(ids):
            raise InvalidInputError("observe: an agent appears twice in one call")
        pending = self._pending.get(int(round_id)) if isinstance(round_id, (int, np.integer)) \
            else None
        if pending is None:
            raise NotAllocatedError(
                f"round {round_id!r} has no pending allocations (unknown, or older than the "
                f"last {self.max_pending_rounds} rounds)"
            )
        slots = self.registry.slots_of(codes, uniques)
        index = self._pending_index[int(round_id)]
        pos = _Pending.find(index, slots)
        if np.any(pos < 0):
            bad = ids[int(np.argmax(pos < 0))]
            raise NotAllocatedError(f"agent {bad!r} was not allocated in round {round_id}")
        if successes is not None:
            flags = as_float_array(successes, "successes", shape=(len(ids),))
            if np.any((flags != 0) & (flags != 1)):
                raise InvalidInputError("successes: expected 0/1 flags")
            values = flags
        else:
            values = as_float_array(rewards, "rewards", shape=(len(ids),))
            values = self.posterior.validate_rewards(values)
        fresh = ~pending.reported[pos]
        pos, values = pos[fresh], values[fresh]
        if not len(pos):
            return 0
        pending.reported[pos] = True
        self._learn(pending.arms[pos], values, successes is not None)
        self.fairness.record_rewards(pending.agents[pos], values)
        return int(len(pos))

    def register(self, agent_ids, options=None) -> None:
        """Agents join without requesting (their fairness state starts counting from now).

        options: (N,) option index per id, default 0."""
        ids = check_ids(agent_ids)
        opts = np.zeros(len(ids), np.int64) if options is None else \
            as_int_array(options, "options", length=len(ids))
        if np.any(opts < 0):
            raise InvalidInputError("options: must be ≥ 0")
        self._register(ids, opts)

    def _register(self, ids, options, **factorized) -> tuple[np.ndarray, np.ndarray]:
        """Slots for the rows; new agents and arms start at the prior."""
        reg = self.registry
        agent_slots, arm_slots, new_agents, new_arms = reg.add(ids, options, **factorized)
        self.posterior.resize(reg.n_arm_slots)
        self.fairness.resize(reg.n_agent_slots)
        if len(new_arms):
            self.posterior.reset(new_arms)
        if len(new_agents):
            self.fairness.reset(new_agents)
        return agent_slots, arm_slots

    def remove_agents(self, agent_ids) -> None:
        """Agents leave: their posteriors, fairness state and pending outcomes are dropped."""
        ids = check_ids(agent_ids)
        slots = self.registry.agent_slots(ids)
        for rnd, p in self._pending.items():
            keep = ~np.isin(p.agents, slots)
            if not keep.all():
                self._pending[rnd] = _Pending(p.agents[keep], p.arms[keep], p.fractions[keep],
                                              p.reported[keep])
                self._pending_index[rnd] = self._pending[rnd].index()
        _, arms = self.registry.remove(ids)
        self.posterior.reset(arms)
        self.fairness.reset(slots)

    def last_allocated_round(self, agent_id) -> int | None:
        """The newest pending round in which ``agent_id`` was allocated and has not reported."""
        s = int(self.registry.agent_slots([agent_id])[0])
        for rnd in reversed(self._pending):
            i = int(_Pending.find(self._pending_index[rnd], np.array([s]))[0])
            if i >= 0 and not self._pending[rnd].reported[i]:
                return rnd
        return None

    # -- hooks -------------------------------------------------------------------------------
    @abstractmethod
    def _index(self, arm_slots: np.ndarray) -> np.ndarray:
        """Per-row value estimate (N,) before fairness weighting."""

    def _decide(self, values, requests, budget, agent_slots, index) -> oracles.OracleResult:
        return oracles.solve(values, requests, budget, groups=agent_slots, method=self.oracle,
                             time_limit=self.time_limit, divisible=self.divisible)

    def _learn(self, arms: np.ndarray, values: np.ndarray, are_flags: bool) -> None:
        if are_flags:
            self.posterior.update_success(arms, values)
        else:
            self.posterior.update(arms, values, self.rng)

    # -- validation ----------------------------------------------------------------------------
    def _check_batch(self, agent_ids, requests, budget, options):
        ids = check_ids(agent_ids)
        codes, uniques = factorize_ids(ids)
        n, k = len(ids), self.n_resources
        budget = as_float_array(budget, "budget", shape=(k,), nonnegative=True)
        requests = as_float_array(requests, "requests", nonnegative=True,
                                  shape=(n, k)) if n else np.zeros((0, k))
        if options is None:  # order of appearance within each agent: 0, 1, 2, ...
            order = np.argsort(codes, kind="stable")
            sorted_codes = codes[order]
            starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1] if n else \
                np.zeros(0, np.int64)
            first = np.repeat(starts, np.diff(np.r_[starts, n]))
            options = np.empty(n, dtype=np.int64)
            options[order] = np.arange(n) - first
        else:
            options = as_int_array(options, "options", length=n)
            if np.any(options < 0):
                raise InvalidInputError("options: must be ≥ 0")
            if n and len(np.unique(codes * (int(options.max()) + 1) + options)) != n:
                raise InvalidInputError("options: an (agent, option) pair appears twice")
        return ids, options, requests, budget, codes, uniques

    # -- outcome ledger ------------------------------------------------------------------------
    def _remember(self, rnd, agents, arms, fractions) -> None:
        p = _Pending(agents.copy(), arms.copy(), fractions.copy(), np.zeros(len(agents), bool))
        self._pending[rnd] = p
        self._pending_index[rnd] = p.index()
        while len(self._pending) > self.max_pending_rounds:
            old, _ = self._pending.popitem(last=False)
            del self._pending_index[old]

    # -- metrics ---------------------------------------------------------------------------------
    def utilities(self, kind: str = "service") -> tuple[list, np.ndarray]:
        """(live agent ids, cumulative utility per agent): ``reward``, ``service`` or
        ``utility`` (the vector the fairness rule is fair on)."""
        slots = self.registry.live_agent_slots()
        return self.registry.agents(), self.fairness.utility_vector(kind, slots)

    # -- state -----------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "n_resources": self.n_resources,
            "fairness": self.fairness_config.to_dict(),
            "oracle": self.oracle,
            "time_limit": self.time_limit,
            "divisible": self.divisible,
            "reward_family": self.reward_family,
            "prior": dict(self.prior),
            "discount": self.discount,
            "max_pending_rounds": self.max_pending_rounds,
        }

    def get_state(self) -> dict:
        """Everything learned, as nested dicts of arrays and scalars (see ``checkpoint``)."""
        rounds = list(self._pending)
        parts = [self._pending[r] for r in rounds]
        def cat(field: str, dtype) -> np.ndarray:
            if not parts:
                return np.zeros(0, dtype)
            return np.concatenate([getattr(p, field) for p in parts]).astype(dtype)

        return {
            "config": self.get_config(),
            "round": self.round,
            "rng": self.rng.bit_generator.state,
            "registry": self.registry.get_state(),
            "posterior": self.posterior.get_state(),
            "fairness": self.fairness.get_state(),
            "pending": {
                "rounds": np.asarray(rounds, dtype=np.int64),
                "sizes": np.asarray([len(p.agents) for p in parts], dtype=np.int64),
                "agents": cat("agents", np.int64),
                "arms": cat("arms", np.int64),
                "fractions": cat("fractions", np.float64),
                "reported": cat("reported", bool),
            },
            "extra": self._extra_state(),
        }

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output; the restored policy makes the same future draws.
        Raises :class:`StateError` (and changes nothing) when the state does not fit."""
        try:
            cfg = state["config"]
            if cfg["name"] != self.name or cfg["n_resources"] != self.n_resources:
                raise StateError(f"state of {cfg['name']!r} with K={cfg['n_resources']} cannot be "
                                 f"restored into {self.name!r} with K={self.n_resources}")
            registry = AgentRegistry()
            registry.set_state(state["registry"])
            posterior = make_posterior(cfg["reward_family"], discount=cfg["discount"],
                                       **cfg["prior"])
            posterior.set_state(state["posterior"])
            fairness = FairnessState(FairnessConfig(**cfg["fairness"]))
            fairness.set_state(state["fairness"])
            rng = np.random.default_rng()
            rng.bit_generator.state = state["rng"]
            pend = state["pending"]
            bounds = np.concatenate([[0], np.cumsum(pend["sizes"])]).astype(np.int64)
            pending: OrderedDict[int, _Pending] = OrderedDict()
            for j, r in enumerate(np.asarray(pend["rounds"]).tolist()):
                sl = slice(bounds[j], bounds[j + 1])
                pending[int(r)] = _Pending(np.asarray(pend["agents"][sl], np.int64),
                                           np.asarray(pend["arms"][sl], np.int64),
                                           np.asarray(pend["fractions"][sl], np.float64),
                                           np.asarray(pend["reported"][sl], bool))
            rnd = int(state["round"])
        except StateError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StateError(f"cannot restore policy state: {exc!r}") from None
        # the checkpoint's configuration comes back with its learned state
        self.fairness_config = fairness.config
        self.oracle, self.time_limit = cfg["oracle"], cfg["time_limit"]
        self.divisible, self.reward_family = bool(cfg["divisible"]), cfg["reward_family"]
        self.prior, self.discount = dict(cfg["prior"]), cfg["discount"]
        self.max_pending_rounds = int(cfg["max_pending_rounds"])
        self.registry, self.posterior, self.fairness, self.rng = registry, posterior, fairness, rng
        self._pending = pending
        self._pending_index = {r: p.index() for r, p in pending.items()}
        self.round = rnd
        self._set_extra_state(state.get("extra", {}))

    def _extra_state(self) -> dict:
        return {}

    def _set_extra_state(self, extra: dict) -> None:
        pass
