"""``RoundRequest.concat`` validates a round's rows once: parts made by ``build`` are joined
without checking their rows again, and the result equals ``build`` of the joined rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from librex_alloc import InvalidInputError, RoundRequest

K = 3


def _part(ids: list, rng: np.random.Generator) -> RoundRequest:
    rows = [a for a in ids for _ in range(int(rng.integers(1, 4)))]
    return RoundRequest.build(rows, rng.uniform(0, 5, (len(rows), K)), np.ones(K),
                              n_resources=K)


def _same(a: RoundRequest, b: RoundRequest) -> None:
    assert a.agent_ids == b.agent_ids and a.uniques == b.uniques
    for name in ("options", "requests", "budget", "codes"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.pace is None) == (b.pace is None)
    if a.pace is not None:
        assert np.array_equal(a.pace, b.pace)


@settings(max_examples=200, deadline=None)
@given(sizes=hs.lists(hs.integers(0, 90), min_size=1, max_size=5),
       text=hs.booleans(), seed=hs.integers(0, 2**32 - 1), paced=hs.booleans())
def test_joined_parts_equal_one_built_request(sizes, text, seed, paced):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(10_000)[:sum(sizes)].tolist()
    if text:
        ids = [f"agent-{a}" for a in ids]
    cuts = np.cumsum([0, *sizes])
    parts = [_part(ids[a:b], rng) for a, b in zip(cuts[:-1], cuts[1:])]
    budget = rng.uniform(0, 10, K)
    pace = budget / 7 if paced else None
    joined = RoundRequest.concat(parts, budget, n_resources=K, pace=pace)
    whole = RoundRequest.build([a for p in parts for a in p.agent_ids],
                               np.vstack([p.requests for p in parts]), budget,
                               np.concatenate([p.options for p in parts]), n_resources=K,
                               pace=pace)
    _same(joined, whole)


def test_an_agent_in_two_parts_is_checked_as_one_request():
    rng = np.random.default_rng(1)
    a = RoundRequest.build(["x", "y"], rng.uniform(0, 1, (2, K)), np.ones(K))
    b = RoundRequest.build(["x"], rng.uniform(0, 1, (1, K)), np.ones(K))  # x, option 0 again
    with pytest.raises(InvalidInputError, match="appears twice"):
        RoundRequest.concat([a, b], np.ones(K))
    c = RoundRequest.build(["x"], rng.uniform(0, 1, (1, K)), np.ones(K), [1])
    joined = RoundRequest.concat([a, c], np.ones(K))  # as before: x's options 0 and 1
    assert joined.uniques == ["x", "y"] and joined.codes.tolist() == [0, 1, 0]


@pytest.mark.parametrize("budget", [np.array([1.0, np.nan, 1.0]), np.ones(K + 1),
                                    np.array([1.0, -1.0, 1.0]), "1,1,1"])
def test_the_budget_is_still_validated(budget):
    part = RoundRequest.build([1, 2], np.ones((2, K)), np.ones(K))
    with pytest.raises(InvalidInputError):
        RoundRequest.concat([part], budget, n_resources=K)


def test_parts_with_another_width_are_refused():
    part = RoundRequest.build([1, 2], np.ones((2, K + 1)), np.ones(K + 1))
    with pytest.raises(InvalidInputError):
        RoundRequest.concat([part], np.ones(K), n_resources=K)
