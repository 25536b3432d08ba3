"""The :class:`Environment` protocol and what every environment of the package shares.

:func:`~librex_alloc.simulation.simulate` needs of an environment: ``n_agents``,
``n_resources``, ``reward_family``; ``requests(t)`` (an :class:`EnvironmentRound`: the
:class:`~librex_alloc.request.RoundRequest` of round t and each row's index into the
environment's agents); ``expected`` (true means of rows) and ``sample`` (realized rewards);
``get_state`` / ``set_state``.

Optional capabilities, used by the simulator when present:

- ``EnvironmentRound.left`` / ``left_ids``: agents that left since the previous round (churn);
  the simulator calls ``policy.remove_agents(left_ids)``.
- ``feedback_delays(agent_index, options, rng) -> (m,) int``: rounds until each outcome
  arrives (0: in the round it belongs to), -1 when it never arrives.
- ``expected(..., t=None)`` / ``sample(..., t=None)``: ``t=None`` means the round of the latest
  ``requests(t)`` call (means may drift).
- ``is_static``: True when every round has the same rows, budget and means (a caller may then
  compute them once).

Data files are never shipped with the package; :func:`~librex_alloc.datasets.find_data` looks
them up (an explicit path, then ``$LIBREX_DATA``, then ``shared/data`` beside the checkout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from librex_alloc.datasets import (  # noqa: F401  (the data lookup, re-exported)
    DATA_ENV_VAR,
    SHARED_DATA,
    find_data,
)
from librex_alloc.errors import InvalidConfigError, StateError
from librex_alloc.request import RoundRequest

FAMILIES = ("bernoulli", "beta", "gaussian")

def _no_ids() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class EnvironmentRound:
    """One round of an environment.

    request: the :class:`RoundRequest` the policy sees. agent_index: (N,) int, each row's
    index into the environment's own agent arrays. left: (L,) int, agents (indices) that were
    active in the previous round and are not any more; left_ids: their ids as the policy knows
    them (call ``policy.remove_agents(left_ids)``). joined: (J,) int, agents new this round.
    """

    request: RoundRequest
    agent_index: np.ndarray
    left: np.ndarray = field(default_factory=_no_ids)
    left_ids: list = field(default_factory=list)
    joined: np.ndarray = field(default_factory=_no_ids)


@runtime_checkable
class Environment(Protocol):
    """What :func:`~librex_alloc.simulation.simulate` needs of an environment."""

    n_agents: int
    n_resources: int
    reward_family: str  # "bernoulli" / "beta" (rewards in [0, 1]) or "gaussian"

    def requests(self, t: int) -> EnvironmentRound:
        """Round ``t``'s option rows and budget."""

    def expected(self, agent_index: np.ndarray, options: np.ndarray) -> np.ndarray:
        """True mean reward (N,) of rows."""

    def sample(self, agent_index: np.ndarray, options: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """Realized rewards (N,) of rows, drawn with ``rng``."""

    def get_state(self) -> dict:
        """Everything that defines the environment, as a state dict."""

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output; :class:`StateError` on a bad state."""


# -- rewards ------------------------------------------------------------------------------------
def sample_rewards(family: str, mu: np.ndarray, rng: np.random.Generator, *,
                   noise_std: float = 1.0, beta_concentration: float = 10.0) -> np.ndarray:
    """Rewards (m,) of rows with true means ``mu`` (m,): Bernoulli(μ) as 0/1 floats, Beta with
    mean μ and concentration c (α = μc, β = (1 − μ)c), or Gaussian(μ, noise_std²)."""
    if family == "bernoulli":
        return (rng.random(mu.shape) < mu).astype(np.float64)
    if family == "beta":
        c = beta_concentration
        m = np.clip(mu, 1e-6, 1 - 1e-6)
        return rng.beta(m * c, (1 - m) * c)
    return mu + noise_std * rng.standard_normal(mu.shape)


def draw_delays(m: int, delay: tuple[int, int], missing_prob: float,
                rng: np.random.Generator) -> np.ndarray:
    """(m,) int64 feedback delays in rounds, uniform on ``delay`` = (low, high) inclusive;
    -1 (never arrives) with probability ``missing_prob``. Draws nothing when both are off."""
    lo, hi = delay
    d = np.full(m, lo, dtype=np.int64) if lo == hi else rng.integers(lo, hi + 1, size=m)
    if missing_prob > 0:
        d[rng.random(m) < missing_prob] = -1
    return d


# -- validation ---------------------------------------------------------------------------------
#: Largest feedback delay, in rounds.
MAX_DELAY = 10**9

def check_int(value, name: str, low: int = 0, high: int | None = None) -> int:
    """An int (Python or numpy, not bool) in [``low``, ``high``]; :class:`InvalidConfigError`
    otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < low:
        raise InvalidConfigError(f"{name}: expected an int ≥ {low}, got {value!r}")
    if high is not None and value > high:
        raise InvalidConfigError(f"{name}: expected an int ≤ {high}, got {value!r}")
    return int(value)


def check_delay(value) -> tuple[int, int]:
    """``delay``: an int d ≥ 0 (every outcome d rounds late) or a (low, high) pair of ints,
    0 ≤ low ≤ high (uniform per outcome); returns (low, high)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise InvalidConfigError(f"delay: expected an int or a (low, high) pair, got "
                                     f"{value!r}")
        lo, hi = (check_int(v, "delay", high=MAX_DELAY) for v in value)
        if lo > hi:
            raise InvalidConfigError(f"delay: expected low ≤ high, got {value!r}")
        return lo, hi
    d = check_int(value, "delay", high=MAX_DELAY)
    return d, d


def check_choice(value, name: str, choices: tuple) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidConfigError(f"{name}: expected one of {choices}, got {value!r}")
    return value


def check_config(state: dict, mine: dict, name: str) -> None:
    """The state's configuration must equal this environment's (:class:`StateError`)."""
    theirs = state.get("config")
    if not isinstance(theirs, dict):
        raise StateError(f"{name}: the state's configuration is not a dict")
    if theirs != mine:
        diff = sorted(str(k) for k in set(mine) | set(theirs)
                      if mine.get(k, object()) != theirs.get(k, object()))
        raise StateError(f"{name}: the state's configuration differs from this one's in {diff}")


def check_round(value, name: str) -> int:
    """A state's round cursor: an int ≥ 0 (:class:`StateError`)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not 0 <= value < 2**62:
        raise StateError(f"{name}.round: expected an int ≥ 0, got {value!r}")
    return int(value)


def as_round(t) -> int:
    """A round number from ``requests(t)``: an int ≥ 0."""
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or t < 0:
        raise InvalidConfigError(f"t: expected a round number (int ≥ 0), got {t!r}")
    return int(t)
