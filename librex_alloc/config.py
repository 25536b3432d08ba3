"""The policy configuration: one frozen, validated, serializable object.

A :class:`PolicyConfig` holds every hyper-parameter of a policy and nothing learned. Policies
are built from it (``ConstrainedThompsonSampling.from_config(cfg)``) and carry it unchanged
(``policy.config``); their checkpoints store it, and restoring a checkpoint into a policy
whose configuration differs is refused (use ``from_state`` to build a policy from a
checkpoint's own configuration). ``to_dict()`` is flat except for ``fairness`` and ``prior``,
so a sweep's search space maps one-to-one onto :meth:`PolicyConfig.from_dict` keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import numpy as np

from librex_alloc._validation import check_scalar
from librex_alloc.errors import InvalidConfigError
from librex_alloc.fairness import FairnessConfig
from librex_alloc.oracles.methods import METHODS, check_method
from librex_alloc.posteriors import make_posterior

ORACLES = METHODS  # the oracle registry's names (librex_alloc.oracles.methods)
REWARD_FAMILIES = ("bernoulli", "gaussian")
#: Largest ``max_pending_rounds``: the ledger keeps this many rounds of allocations.
MAX_PENDING_ROUNDS = 1_000_000


class FrozenMapping(Mapping):
    """A read-only mapping (``prior`` and ``params`` of :class:`PolicyConfig`).

    Unlike ``types.MappingProxyType`` it pickles and deep-copies (``__reduce__``), so a config,
    every policy and ``LibrexAlloc`` can cross process boundaries and be copied for what-if
    runs. Equal to any mapping with the same items; hashable when its values are.
    """

    __slots__ = ("_data",)

    def __init__(self, data=()):
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"

    def __setattr__(self, name, value):
        raise AttributeError("FrozenMapping is read-only")

    def __delattr__(self, name):
        raise AttributeError("FrozenMapping is read-only")

    def __reduce__(self):
        return (FrozenMapping, (dict(self._data),))

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))


#: Fields that checkpoints written before they existed lack (their defaults apply).
_ADDED_LATER = frozenset({"round_deadline"})


def _int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidConfigError(f"{name}: expected an int, got {value!r}")
    if not low <= value <= high:
        raise InvalidConfigError(f"{name}: expected {low} ≤ {name} ≤ {high}, got {value}")
    return int(value)


@dataclass(frozen=True)
class PolicyConfig:
    """Hyper-parameters of a policy (validated once, immutable).

    n_resources: K. fairness: a :class:`~librex_alloc.fairness.FairnessConfig` (a preset name
    or a number α is accepted and converted). oracle: one of
    :data:`~librex_alloc.oracles.methods.METHODS` ("auto" | "exact" | "fast"); time_limit:
    seconds of CP-SAT deterministic time (None: the oracle's default); gap_tolerance: relative
    certified gap at which the oracle's search stops (None: the oracle's default, 0.1 % for
    "auto", 0 for "exact"; see :func:`~librex_alloc.oracles.solve`). With both None, "auto"
    runs no CP-SAT (LP branching and local search only); setting either brings the CP-SAT
    search back. round_deadline: seconds
    of wall-clock time the oracle may take per round (None: no deadline); the oracle returns
    its best answer by then, with its certificate (the stated slack is in
    :func:`~librex_alloc.oracles.solve`). divisible: grant
    fractions. reward_family: "bernoulli" (rewards in [0, 1]) or "gaussian" ("beta" is an
    alias of "bernoulli"). prior: keyword arguments of the posterior (alpha_prior/beta_prior,
    or mu_prior/kappa_prior/a_prior/b_prior). discount: γ ∈ (0, 1] per round.
    max_pending_rounds: rounds whose outcomes are still accepted. seed: int ≥ 0 or None.
    params: policy-specific hyper-parameters (str keys; numbers, strings, bools or None),
    checked by the policy class that is built from the config.
    """

    n_resources: int
    fairness: FairnessConfig = FairnessConfig()
    oracle: str = "auto"
    time_limit: float | None = None
    gap_tolerance: float | None = None
    divisible: bool = False
    reward_family: str = "bernoulli"
    prior: Mapping = field(default_factory=FrozenMapping)
    discount: float = 1.0
    max_pending_rounds: int = 1000
    seed: int | None = None
    params: Mapping = field(default_factory=FrozenMapping)
    round_deadline: float | None = None

    def __post_init__(self):
        put = object.__setattr__
        put(self, "n_resources", _int(self.n_resources, "n_resources", 1, 10_000))
        fairness = self.fairness
        if isinstance(fairness, dict):
            fairness = FairnessConfig.from_dict(fairness)
        elif not isinstance(fairness, FairnessConfig):
            fairness = FairnessConfig(mode=fairness)
        put(self, "fairness", fairness)
        check_method(self.oracle, "oracle")
        if self.time_limit is not None:
            put(self, "time_limit", check_scalar(self.time_limit, "time_limit", low=0.0,
                                                 high=86_400.0, low_open=True))
        if self.gap_tolerance is not None:
            put(self, "gap_tolerance", check_scalar(self.gap_tolerance, "gap_tolerance",
                                                    low=0.0, high=1.0))
        if self.round_deadline is not None:
            from librex_alloc.oracles.solver import check_deadline

            put(self, "round_deadline", check_deadline(self.round_deadline, "round_deadline"))
        if not isinstance(self.divisible, (bool, np.bool_)):
            raise InvalidConfigError(f"divisible: expected a bool, got {self.divisible!r}")
        put(self, "divisible", bool(self.divisible))
        family = "bernoulli" if self.reward_family == "beta" else self.reward_family
        if not isinstance(family, str) or family not in REWARD_FAMILIES:
            raise InvalidConfigError(f"reward_family: expected one of {REWARD_FAMILIES}, got "
                                     f"{self.reward_family!r}")
        put(self, "reward_family", family)
        put(self, "discount", check_scalar(self.discount, "discount", low=0.0, high=1.0,
                                           low_open=True))
        prior = self.prior if self.prior is not None else {}
        if not hasattr(prior, "items") or not all(isinstance(k, str) for k in prior) or \
                "discount" in prior:
            raise InvalidConfigError(f"prior: expected a dict of the posterior's prior "
                                     f"parameters, got {prior!r}")
        # the posterior validates its own arguments; keep them as the floats it accepted
        post = make_posterior(family, discount=self.discount, **dict(prior))
        cfg = post.get_state()
        put(self, "prior", FrozenMapping({k: cfg[k] for k in prior}))
        put(self, "max_pending_rounds", _int(self.max_pending_rounds, "max_pending_rounds", 1,
                                             MAX_PENDING_ROUNDS))
        if self.seed is not None:
            put(self, "seed", _int(self.seed, "seed", 0, 2**63 - 1))
        params = self.params if self.params is not None else {}
        if hasattr(params, "items"):  # numpy scalars as the plain values they stand for
            params = {k: v.item() if isinstance(v, (np.integer, np.floating, np.bool_)) else v
                      for k, v in params.items()}
        if not hasattr(params, "items") or not all(
                isinstance(k, str) and (v is None or type(v) in (bool, int, float, str))
                for k, v in params.items()):
            raise InvalidConfigError(f"params: expected a dict of str keys and plain values "
                                     f"(numbers, strings, bools, None), got {params!r}")
        if any(type(v) in (int, float) and not _finite(v) for v in params.values()):
            raise InvalidConfigError("params: numbers must be finite (within float64)")
        put(self, "params", FrozenMapping(params))

    # -- conversions ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain nested dict (JSON-able, checkpoint-able); :meth:`from_dict` inverts it."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["fairness"] = self.fairness.to_dict()
        out["prior"] = dict(self.prior)
        out["params"] = dict(self.params)
        return out

    @classmethod
    def from_dict(cls, d: dict, *, complete: bool = False) -> PolicyConfig:
        """Validated config from a dict of this class's field names (missing keys take the
        defaults, unless ``complete``, as when restoring a checkpoint);
        :class:`InvalidConfigError` on unknown or missing keys or bad values."""
        if not isinstance(d, dict):
            raise InvalidConfigError(f"config: expected a dict, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InvalidConfigError(f"config: unknown keys {sorted(map(str, unknown))}")
        if complete and set(d) | _ADDED_LATER != names | _ADDED_LATER:
            raise InvalidConfigError(f"config: missing keys {sorted(names - set(d))}")
        if "n_resources" not in d:
            raise InvalidConfigError("config: n_resources is required")
        return cls(**d)

    def replace(self, **changes) -> PolicyConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def __eq__(self, other) -> bool:
        if not isinstance(other, PolicyConfig):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items(), key=lambda kv: kv[0])))


def _finite(v: int | float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond float64
        return False


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b
