"""Policies sharing the batch interface of :class:`~librex_alloc.policies.base.AllocationPolicy`.

Every policy is made by name: ``make_policy("constrained-ts", n_resources=3, oracle="fast")``
or from a :class:`~librex_alloc.config.PolicyConfig`: ``make_policy("constrained-ts",
config=cfg)``. :data:`POLICIES` lists the names, so experiments and sweeps can enumerate them.
"""

from __future__ import annotations

from librex_alloc.errors import InvalidConfigError
from librex_alloc.policies.base import Allocation, AllocationPolicy
from librex_alloc.policies.thompson import ConstrainedThompsonSampling

#: name -> policy class; each class's ``name`` attribute is its key.
POLICIES: dict[str, type[AllocationPolicy]] = {
    ConstrainedThompsonSampling.name: ConstrainedThompsonSampling,
}


def register_policy(cls: type[AllocationPolicy]) -> type[AllocationPolicy]:
    """Add a policy class to :data:`POLICIES` under ``cls.name`` (usable as a decorator)."""
    if cls.name in POLICIES and POLICIES[cls.name] is not cls:
        raise InvalidConfigError(f"a policy named {cls.name!r} is already registered")
    POLICIES[cls.name] = cls
    return cls


def make_policy(name: str, **kwargs) -> AllocationPolicy:
    """A policy by name; ``kwargs`` are those of :class:`AllocationPolicy` (or ``config=``)."""
    cls = POLICIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InvalidConfigError(f"policy: expected one of {sorted(POLICIES)}, got {name!r}")
    return cls(**kwargs)


__all__ = ["Allocation", "AllocationPolicy", "ConstrainedThompsonSampling", "POLICIES",
           "make_policy", "register_policy"]
