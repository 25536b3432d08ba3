"""Policy hyper-parameters: one frozen dataclass per policy, validated here and only here.

A policy declares its parameters as a frozen dataclass whose fields come from :func:`param`
(default and bounds) and names it in its class (``Params = UCBParams``);
:func:`check_params` turns ``PolicyConfig.params`` (a plain mapping: what sweeps, command lines
and saved states carry) into that dataclass, refusing unknown keys and values out of bounds
with one :class:`~librex_alloc.errors.InvalidConfigError` naming the policy::

    @dataclass(frozen=True)
    class UCBParams(Params):
        exploration: float = param(2.0, low=0.0, high=1e6)

Numbers are normalized (an int field holds an int, a float field a float).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from librex_alloc.errors import InvalidConfigError


@dataclass(frozen=True)
class Bounds:
    """What a parameter accepts: a finite number (an int when ``integer``) in [low, high]
    (``low_open``: low excluded), None when ``allow_none``, or one of ``choices`` (text)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    integer: bool = False
    allow_none: bool = False
    choices: tuple | None = None

    def check(self, v, key: str, policy: str):
        """``v`` normalized; :class:`InvalidConfigError` naming ``policy`` and ``key``."""
        if v is None and self.allow_none:
            return None
        if self.choices is not None:
            if not isinstance(v, str) or v not in self.choices:
                raise InvalidConfigError(f"{policy}: params[{key!r}] must be one of "
                                         f"{self.choices}, got {v!r}")
            return v
        kinds = (int, np.integer) if self.integer else (int, float, np.integer, np.floating)
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, kinds) or \
                not np.isfinite(float(v) if abs(v) < 2**1023 else np.inf):
            raise InvalidConfigError(f"{policy}: params[{key!r}] must be "
                                     f"{'an int' if self.integer else 'a finite number'}, "
                                     f"got {v!r}")
        low, high = self.low, self.high
        if (low is not None and (v < low or (self.low_open and v == low))) or \
                (high is not None and v > high):
            lo = "(" if self.low_open else "["
            raise InvalidConfigError(f"{policy}: params[{key!r}] must lie in {lo}{low}, "
                                     f"{high}], got {v!r}")
        return int(v) if self.integer else float(v)


def param(default, **bounds):
    """A dataclass field of a parameters class: its default and its :class:`Bounds`."""
    return field(default=default, metadata={"bounds": Bounds(**bounds)})


@dataclass(frozen=True)
class Params:
    """Base of every parameters class (and the parameters of a policy that has none)."""

    def to_dict(self) -> dict:
        """``{name: value}`` (what ``PolicyConfig.params`` holds)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, key: str):
        """``params["name"]``, as when parameters were a dict."""
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)


def defaults(params_cls: type[Params]) -> dict:
    """``{name: default}`` of a parameters class."""
    return {f.name: f.default for f in fields(params_cls)}


def check_params(params_cls: type[Params], params: Mapping, policy: str) -> Params:
    """``params`` (a mapping of some of the class's fields) validated and completed with the
    defaults, as an instance of ``params_cls``; :class:`InvalidConfigError` naming ``policy``
    for an unknown key or a value out of its bounds."""
    if not isinstance(params, Mapping):
        raise InvalidConfigError(f"{policy}: params must be a mapping, got {params!r}")
    names = [f.name for f in fields(params_cls)]
    unknown = set(params) - set(names)
    if unknown:
        raise InvalidConfigError(f"{policy}: unknown params {sorted(unknown)}; expected a "
                                 f"subset of {sorted(names)}")
    values = {}
    for f in fields(params_cls):
        v = params.get(f.name, f.default)
        bounds = f.metadata.get("bounds")
        values[f.name] = bounds.check(v, f.name, policy) if bounds is not None else v
    return params_cls(**values)


__all__ = ["Bounds", "Params", "check_params", "defaults", "param"]
