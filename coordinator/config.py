"""The settings of one coordinator: :class:`CoordinatorConfig` (validated once, immutable,
stored in every snapshot so that a restart can tell that they changed)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

import numpy as np

from librex_alloc import (
    AllocationPolicy,
    ConstrainedThompsonSampling,
    InvalidConfigError,
    PolicyConfig,
)
from librex_alloc.oracles.methods import check_method


@dataclass(frozen=True)
class CoordinatorConfig:
    """Settings of one coordinator (validated once, immutable).

    policy: a PolicyConfig (or its dict). budget: (K,) per-round budget, resource units.

    The pending window (how late an outcome may arrive) is counted in rounds *and* in
    seconds: an outcome of round r is accepted while r is one of the last
    ``pending_window_rounds`` rounds (default: the policy's ``max_pending_rounds`` as given)
    **or** was decided less than ``pending_window_s`` seconds ago (default: three round
    deadlines, the longest a call stays in flight before it is abandoned), but never beyond
    ``pending_max_rounds`` rounds (default: max(window rounds, 1000); memory bound). The
    policy's ``max_pending_rounds`` is set to ``pending_max_rounds`` (its ledger must hold
    that many rounds); rounds outside the round window keep only their unreported rows.
    checkpoint_dir: where snapshots, the journal and the metrics parts live (a path that
    survives the coordinator's node on a cluster). round_deadline_s: how long a round waits for
    submitters. checkpoint_every: rounds between full snapshots (the journal covers the rest).
    fairness_every: rounds between Gini/Jain computations (NaN in between).
    reference_oracle: oracle method for the regret reference on true means (one of
    :data:`~librex_alloc.oracles.methods.METHODS`), or None for no regret. rows_per_part:
    metrics rows per Parquet part.
    fsync: False only to measure the journal's cost. policy_class: an AllocationPolicy class.
    resource_names: the K resources' names (e.g. ``env.resources`` of a trace environment):
    the metrics columns are then ``utilization_<name>``; default ``utilization_0`` ….
    accept_loss: resume even when records that may have been committed are lost (a damaged
    journal record followed by others, a missing journal): replay what is intact, drop and
    count the rest (``counters["lost_records"]``). Not part of :meth:`to_dict` (an operator's
    decision about one restore, not a setting of the coordinator); it holds for every restore
    of this coordinator, Ray's restarts of its actor included.
    """

    policy: PolicyConfig
    budget: tuple
    checkpoint_dir: str
    round_deadline_s: float = 5.0
    checkpoint_every: int = 100
    fairness_every: int = 1
    reference_oracle: str | None = "fast"
    rows_per_part: int = 1000
    fsync: bool = True
    policy_class: type = ConstrainedThompsonSampling
    pending_window_rounds: int | None = None
    pending_window_s: float | None = None
    pending_max_rounds: int | None = None
    accept_loss: bool = False
    resource_names: tuple | None = None

    def __post_init__(self):
        put = object.__setattr__
        policy = self.policy
        if isinstance(policy, dict):
            policy = PolicyConfig.from_dict(policy)
        if not isinstance(policy, PolicyConfig):
            raise InvalidConfigError("policy: expected a PolicyConfig or its dict")
        put(self, "policy", policy)
        budget = np.asarray(self.budget, dtype=np.float64)
        if budget.shape != (policy.n_resources,) or not np.all(np.isfinite(budget)) or \
                np.any(budget < 0):
            raise InvalidConfigError(f"budget: expected {policy.n_resources} finite values "
                                     f"≥ 0, got {self.budget!r}")
        put(self, "budget", tuple(float(b) for b in budget))
        if not isinstance(self.checkpoint_dir, (str, os.PathLike)) or not str(
                self.checkpoint_dir):
            raise InvalidConfigError("checkpoint_dir: expected a path")
        put(self, "checkpoint_dir", os.fspath(self.checkpoint_dir))
        if not (isinstance(self.round_deadline_s, (int, float)) and
                0 < self.round_deadline_s < math.inf):
            raise InvalidConfigError("round_deadline_s: expected a finite number > 0")
        for name in ("checkpoint_every", "fairness_every", "rows_per_part"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfigError(f"{name}: expected an int ≥ 1, got {value!r}")
        check_method(self.reference_oracle, "reference_oracle", allow_none=True)
        if not (isinstance(self.policy_class, type) and
                issubclass(self.policy_class, AllocationPolicy)):
            raise InvalidConfigError("policy_class: expected an AllocationPolicy subclass")
        rounds = policy.max_pending_rounds if self.pending_window_rounds is None else \
            self.pending_window_rounds
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise InvalidConfigError(f"pending_window_rounds: expected an int ≥ 1, got "
                                     f"{rounds!r}")
        window_s = 3.0 * self.round_deadline_s if self.pending_window_s is None else \
            self.pending_window_s
        if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or \
                not 0 <= window_s < math.inf:
            raise InvalidConfigError(f"pending_window_s: expected a finite number ≥ 0, got "
                                     f"{window_s!r}")
        cap = self.pending_max_rounds
        if cap is None:
            cap = max(rounds, 1000) if window_s > 0 else rounds
        if isinstance(cap, bool) or not isinstance(cap, int) or not rounds <= cap <= 1_000_000:
            raise InvalidConfigError(f"pending_max_rounds: expected an int in "
                                     f"[pending_window_rounds, 1000000], got {cap!r}")
        put(self, "pending_window_rounds", rounds)
        put(self, "pending_window_s", float(window_s))
        put(self, "pending_max_rounds", cap)
        if policy.max_pending_rounds != cap:
            put(self, "policy", policy.replace(max_pending_rounds=cap))
        names = self.resource_names
        if names is not None:
            names = tuple(names) if isinstance(names, (list, tuple)) else None
            if names is None or len(names) != policy.n_resources or len(set(names)) != \
                    len(names) or not all(isinstance(n, str) and n.isidentifier()
                                          for n in names):
                raise InvalidConfigError(f"resource_names: expected {policy.n_resources} "
                                         f"distinct names (letters, digits, _), got "
                                         f"{self.resource_names!r}")
            put(self, "resource_names", names)
        if not isinstance(self.accept_loss, bool):
            raise InvalidConfigError(f"accept_loss: expected a bool, got {self.accept_loss!r}")

    def to_dict(self) -> dict:
        """JSON-able form (stored in snapshots; a restart checks that it has not changed)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "accept_loss"}
        out["policy"] = self.policy.to_dict()
        out["budget"] = list(self.budget)
        out["policy_class"] = f"{self.policy_class.__module__}.{self.policy_class.__name__}"
        return out
