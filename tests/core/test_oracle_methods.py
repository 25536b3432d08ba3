"""One list of oracle methods: the registry's names are those every entry point accepts."""

from __future__ import annotations

import pytest

from librex_alloc import InvalidConfigError, PolicyConfig, oracles
from librex_alloc.cli_args import oracle_choices
from librex_alloc.oracles.methods import CHEAPEST_FIRST, METHODS, check_method, describe


def test_registry_is_the_one_list():
    assert oracles.METHODS is METHODS
    assert oracle_choices() == METHODS
    assert sorted(CHEAPEST_FIRST) == sorted(METHODS)
    assert describe() == "'auto', 'exact' or 'fast'"
    assert describe(none=True) == "None, 'auto', 'exact' or 'fast'"


@pytest.mark.parametrize("bad", ["Fast", "lp", "", None, 3])
def test_unknown_methods_are_refused_everywhere(bad):
    with pytest.raises(InvalidConfigError, match="oracle: expected 'auto', 'exact' or 'fast'"):
        PolicyConfig(2, oracle=bad)
    with pytest.raises(InvalidConfigError, match="method: expected"):
        oracles.solve([1.0], [[1.0]], [1.0], method=bad)
    with pytest.raises(InvalidConfigError, match="ref: expected None"):
        check_method(bad if bad is not None else "none", "ref", allow_none=True)


def test_every_method_is_accepted():
    for m in METHODS:
        assert PolicyConfig(2, oracle=m).oracle == m
        assert oracles.solve([1.0], [[1.0]], [1.0], method=m).selected.tolist() == [True]
    assert check_method(None, allow_none=True) is None
