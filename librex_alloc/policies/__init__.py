"""Policies sharing the batch interface of :class:`~librex_alloc.policies.base.AllocationPolicy`."""

from librex_alloc.policies.base import Allocation, AllocationPolicy
from librex_alloc.policies.thompson import ConstrainedThompsonSampling

__all__ = ["Allocation", "AllocationPolicy", "ConstrainedThompsonSampling"]
