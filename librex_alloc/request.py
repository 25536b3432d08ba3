"""The per-round request: what agents ask for in one round, and the budget that caps it.

:class:`RoundRequest` is the one type that environments produce, agent shards submit and the
coordinator hands to a policy: N option rows (agent id, option index, request vector) and a
budget. :meth:`RoundRequest.build` validates everything a policy needs before the policy
changes any state; :meth:`RoundRequest.concat` merges several submissions (one per shard)
into one round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from librex_alloc._validation import as_float_array, as_int_array
from librex_alloc.errors import InvalidInputError
from librex_alloc.registry import check_ids, check_options, factorize_ids


def default_options(codes: np.ndarray) -> np.ndarray:
    """Option index of each row by order of appearance within its agent: 0, 1, 2, ..."""
    n = len(codes)
    if not n:
        return np.zeros(0, np.int64)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    options = np.empty(n, dtype=np.int64)
    options[order] = np.arange(n) - first
    return options


def _budget_and_pace(budget, n_resources: int | None, pace):
    """The validated budget (K,), K, and pace (K,) or None."""
    budget = as_float_array(budget, "budget", ndim=1, nonnegative=True)
    k = budget.shape[0] if n_resources is None else n_resources
    if budget.shape != (k,):
        raise InvalidInputError(f"budget: expected shape ({k},), got {budget.shape}")
    if pace is not None:
        pace = as_float_array(pace, "pace", shape=(k,), nonnegative=True)
    return budget, k, pace


@dataclass(frozen=True)
class RoundRequest:
    """One round's option rows and budget.

    agent_ids: N hashable ids, one per option row (an id repeats for several options).
    options: (N,) int64 option index of each row (distinct per agent, 0 ≤ o < 1024).
    requests: (N, K) float64 ≥ 0, resource units. budget: (K,) float64 ≥ 0, same units: the
    hard cap of this round. pace: (K,) float64 ≥ 0 or None: in horizon-budget mode (one budget
    for a whole run), the spend per round that would exhaust it exactly at the horizon (the
    remaining budget over the remaining rounds); pacing policies steer their spend towards it,
    the others ignore it. Build it with :meth:`build`, which validates; ``codes``/``uniques``
    are the factorized ids.
    """

    agent_ids: list
    options: np.ndarray
    requests: np.ndarray
    budget: np.ndarray
    codes: np.ndarray = field(repr=False, compare=False, default=None)
    uniques: list = field(repr=False, compare=False, default=None)
    pace: np.ndarray | None = None

    @classmethod
    def build(cls, agent_ids, requests, budget, options=None, *,
              n_resources: int | None = None, pace=None) -> RoundRequest:
        """Validated request; raises :class:`InvalidInputError` (a ``LibrexError``).

        n_resources: K expected by the caller (default: the budget's length).
        """
        ids = check_ids(agent_ids)
        codes, uniques = factorize_ids(ids)
        n = len(ids)
        budget, k, pace = _budget_and_pace(budget, n_resources, pace)
        requests = as_float_array(requests, "requests", nonnegative=True,
                                  shape=(n, k)) if n else np.zeros((0, k))
        if options is None:
            options = default_options(codes)
        else:
            options = as_int_array(options, "options", length=n)
            check_options(options)
            if n and len(np.unique(codes * (int(options.max()) + 1) + options)) != n:
                raise InvalidInputError("options: an (agent, option) pair appears twice")
        return cls(ids, options, np.ascontiguousarray(requests), budget, codes, uniques, pace)

    @classmethod
    def concat(cls, parts: Sequence[RoundRequest], budget, *,
               n_resources: int | None = None, pace=None) -> RoundRequest:
        """One round from several submissions (e.g. one per shard) and the round's budget.

        An agent may appear in only one part (its options must arrive together). Parts made
        by :meth:`build` were validated there: their rows are not checked again, only the
        budget, and their factorized ids are joined (the result equals :meth:`build` of the
        joined rows). Otherwise (an agent in two parts, parts made another way) the joined
        rows are built and validated as one request."""
        parts = list(parts)
        k = n_resources if n_resources is not None else (
            parts[0].requests.shape[1] if parts else len(np.atleast_1d(budget)))
        if parts and all(type(p) is cls and p.codes is not None and p.uniques is not None
                         and p.requests.shape[1:] == (k,) for p in parts):
            uniques = [a for p in parts for a in p.uniques]
            if len(set(uniques)) == len(uniques):
                budget, k, pace = _budget_and_pace(budget, k, pace)
                sizes = np.array([len(p.uniques) for p in parts[:-1]], np.int64)
                offsets = np.concatenate([[0], np.cumsum(sizes)])
                codes = np.concatenate([p.codes + o for p, o in zip(parts, offsets)])
                return cls([a for p in parts for a in p.agent_ids],
                           np.concatenate([p.options for p in parts]),
                           np.ascontiguousarray(np.vstack([p.requests for p in parts])),
                           budget, codes, uniques, pace)
        ids = [a for p in parts for a in p.agent_ids]
        req = np.vstack([p.requests for p in parts]) if parts else np.zeros((0, k))
        opts = np.concatenate([p.options for p in parts]) if parts else np.zeros(0, np.int64)
        return cls.build(ids, req, budget, opts, n_resources=k, pace=pace)

    @property
    def n_rows(self) -> int:
        return len(self.agent_ids)

    @property
    def n_resources(self) -> int:
        return self.budget.shape[0]
