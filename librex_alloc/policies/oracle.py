"""The oracle baseline: the true mean rewards, fed to the same oracle and fairness rule.

It learns nothing: its per-row index is the true mean μ_ij of each (agent, option), given
through :meth:`OraclePolicy.set_true_means` (a simulator knows them; call it again when
they drift). Everything else is the shared machinery, so with the same oracle and
``fairness="none"`` its choice is the utilitarian optimum of the true means and its
pseudo-regret is zero on a static instance; with a fairness rule it is the rule's choice
under perfect knowledge (its regret is then the price of fairness).
"""

from __future__ import annotations

import numpy as np

from librex_alloc._validation import as_float_array, as_int_array, expect_keys, state_array
from librex_alloc.errors import InvalidInputError, StateError
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.context import RoundContext
from librex_alloc.posteriors import MAX_GAUSSIAN_REWARD
from librex_alloc.registry import MAX_OPTIONS, check_ids, check_options, factorize_ids


class OraclePolicy(AllocationPolicy):
    """Index = the true mean of each row (set with :meth:`set_true_means`); no params."""

    name = "oracle"
    #: Simulators that see this flag pass the true means before every round.
    needs_true_means = True
    #: its estimates (the true means) may change without an outcome: no reuse
    reuses_reference = False

    def _reset_state(self) -> None:
        super()._reset_state()
        self._means = np.zeros(0)
        self._known = np.zeros(0, dtype=bool)

    # -- the true means ------------------------------------------------------------------
    def set_true_means(self, agent_ids, means, *, options=None) -> None:
        """True mean rewards of (agent, option) pairs; unknown agents and options join.

        agent_ids: m ids; means: (m,) floats (in [0, 1] for the Bernoulli family);
        options: (m,) option indices (default 0). Pairs must be distinct. Validated first.
        """
        ids = check_ids(agent_ids)
        codes, uniques = factorize_ids(ids)
        opts = np.zeros(len(ids), np.int64) if options is None else \
            as_int_array(options, "options", length=len(ids))
        check_options(opts)
        if len(ids) and len(np.unique(codes * MAX_OPTIONS + opts)) != len(ids):
            raise InvalidInputError("set_true_means: an (agent, option) pair appears twice")
        mu = as_float_array(means, "means", shape=(len(ids),))
        if self.reward_family == "bernoulli":
            if len(mu) and (mu.min() < 0 or mu.max() > 1):
                raise InvalidInputError("means: must lie in [0, 1] for the Bernoulli family")
        elif len(mu) and np.abs(mu).max() > MAX_GAUSSIAN_REWARD:
            raise InvalidInputError(f"means: magnitude above {MAX_GAUSSIAN_REWARD:g}")
        _, arms = self._register(ids, opts, codes=codes, uniques=uniques)
        self._grow()
        self._means[arms] = mu
        self._known[arms] = True

    def _grow(self) -> None:
        n = self.registry.n_arm_slots
        if len(self._means) < n:
            pad = n - len(self._means)
            self._means = np.concatenate([self._means, np.zeros(pad)])
            self._known = np.concatenate([self._known, np.zeros(pad, dtype=bool)])

    def remove_agents(self, agent_ids) -> None:
        ids = check_ids(agent_ids)
        slots = self.registry.agent_slots(ids)  # raises before any change
        arms = self.registry.arms_of_agents(slots)
        super().remove_agents(ids)
        self._grow()
        self._means[arms] = 0.0
        self._known[arms] = False

    def _index(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        self._grow()
        missing = ~self._known[arm_slots]
        if np.any(missing):
            i = int(np.argmax(missing))
            req = ctx.request
            who = (req.agent_ids[i], int(req.options[i]))
            raise InvalidInputError(f"oracle: no true mean for (agent, option) {who!r}; call "
                                    f"set_true_means first")
        return self._means[arm_slots].copy()

    def _estimate(self, ctx: RoundContext) -> np.ndarray:
        arm_slots = ctx.arm_slots
        """The reward-loss reference uses the true means too (it knows them)."""
        return self._means[arm_slots].copy()

    # -- state -----------------------------------------------------------------------------
    def _extra_state(self) -> dict:
        self._grow()
        n = self.registry.n_arm_slots
        return {"means": self._means[:n].copy(), "known": self._known[:n].copy()}

    def _check_extra_state(self, extra, state: dict) -> dict:
        extra = expect_keys(extra, ("means", "known"), "extra")
        reg = state["registry"]  # validated by the base before this call
        arm_agent = reg["arm_agent"] if isinstance(reg, dict) else None
        if not isinstance(arm_agent, np.ndarray):  # pragma: no cover - base validated it
            raise StateError("extra: the state's registry is not available")
        n = len(arm_agent)
        means = state_array(extra["means"], "extra.means", length=n)
        known = state_array(extra["known"], "extra.known", kinds="b", length=n)
        if np.any(known & (arm_agent < 0)) or np.any(means[~known] != 0):
            raise StateError("extra: a true mean on a free arm slot, or a value without "
                             "its 'known' flag")
        if self.reward_family == "bernoulli" and np.any((means < 0) | (means > 1)):
            raise StateError("extra.means: must lie in [0, 1] for the Bernoulli family")
        if np.any(np.abs(means) > MAX_GAUSSIAN_REWARD):
            raise StateError("extra.means: magnitude out of range")
        return {"means": means, "known": known}

    def _set_extra_state(self, extra: dict) -> None:
        self._means, self._known = extra["means"], extra["known"]
