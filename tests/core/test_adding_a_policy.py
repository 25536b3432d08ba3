"""README "Adding a policy": one module and one registration give a working policy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from librex_alloc import InvalidConfigError
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.policies.context import RoundContext
from librex_alloc.policies.params import Params, param
from librex_alloc.registry import POLICIES, make_policy, register_policy


@dataclass(frozen=True)
class OptimistParams(Params):
    bonus: float = param(0.1, low=0.0, high=1.0)


class Optimist(AllocationPolicy):
    """Posterior means plus a constant bonus (the README's example)."""

    name = "test-optimist"
    Params = OptimistParams

    def _index(self, ctx: RoundContext) -> np.ndarray:
        assert isinstance(ctx, RoundContext) and ctx.round == self.round + 1
        assert ctx.requests.shape == (len(ctx.arm_slots), 1)
        return self.posterior.mean(ctx.arm_slots) + self.params.bonus


def test_one_module_one_registration():
    register_policy(Optimist)
    try:
        p = make_policy("test-optimist", n_resources=1, params={"bonus": 0.25}, seed=0)
        assert p.params == OptimistParams(bonus=0.25) and p.PARAMS == {"bonus": 0.1}
        a = p.allocate_batch(["a", "b"], [[1.0], [1.0]], [1.0])
        assert np.allclose(a.values, 0.75) and a.selected.sum() == 1
        assert p.observe(1, a.allocated_agents(), rewards=[1.0]) == 1
        twin = Optimist.from_state(p.get_state())
        assert twin.params == p.params and twin.round == 1
        with pytest.raises(InvalidConfigError, match="test-optimist.*bonus"):
            make_policy("test-optimist", n_resources=1, params={"bonus": 2.0})
        with pytest.raises(InvalidConfigError, match="unknown params"):
            make_policy("test-optimist", n_resources=1, params={"malus": 0.0})
    finally:
        POLICIES.pop("test-optimist", None)
