"""Readers for public benchmark instances. No data ships with the package: pass a path.

OR-Library multidimensional knapsack files (Beasley 1990, e.g. ``mknap1.txt``) are
whitespace-separated numbers, read as one token stream (line breaks carry no meaning)::

    K                                   number of instances
    repeat K times:
      n m opt                           items, resources, optimum (0 = not given)
      p_1 ... p_n                       profits
      m rows of n weights               resource use, one row per resource
      b_1 ... b_m                       capacities

:func:`parse_mknap` returns the weights transposed to items × resources, so an instance can
be passed straight to :func:`librex_alloc.oracles.solve`::

    inst = load_mknap("mknap1.txt")[0]
    solve(inst.profits, inst.weights, inst.capacities)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from librex_alloc.errors import InvalidInputError


@dataclass(frozen=True, eq=False)
class MknapInstance:
    """One multidimensional 0/1 knapsack instance (arrays are read-only float64).

    profits: (n,); weights: (n, m), items × resources; capacities: (m,);
    optimum: the optimal (or best-known) objective given in the file, 0.0 when not given.
    """

    profits: np.ndarray
    weights: np.ndarray
    capacities: np.ndarray
    optimum: float

    @property
    def n(self) -> int:
        """Number of items."""
        return int(self.profits.shape[0])

    @property
    def m(self) -> int:
        """Number of resources (constraints)."""
        return int(self.capacities.shape[0])


class _Tokens:
    """A cursor over the whitespace tokens of a file, with located error messages."""

    def __init__(self, text: str) -> None:
        self.tokens = text.split()
        self.pos = 0

    def _take(self, count: int, what: str) -> list[str]:
        end = self.pos + count
        if end > len(self.tokens):
            raise InvalidInputError(
                f"mknap: truncated input: expected {count} number(s) for {what} at token "
                f"{self.pos + 1}, but only {len(self.tokens) - self.pos} remain"
            )
        out = self.tokens[self.pos:end]
        self.pos = end
        return out

    def floats(self, count: int, what: str) -> np.ndarray:
        start = self.pos
        toks = self._take(count, what)
        try:
            arr = np.array([float(t) for t in toks], dtype=np.float64)
        except ValueError:
            bad = next(i for i, t in enumerate(toks) if not _is_float(t))
            raise InvalidInputError(
                f"mknap: {what}: token {start + bad + 1} ({toks[bad]!r}) is not a number"
            ) from None
        if arr.size and not np.all(np.isfinite(arr)):
            bad = int(np.argmin(np.isfinite(arr)))
            raise InvalidInputError(
                f"mknap: {what}: token {start + bad + 1} ({toks[bad]!r}) is not finite"
            )
        return arr

    def integer(self, what: str, minimum: int) -> int:
        start = self.pos
        (tok,) = self._take(1, what)
        try:
            value = float(tok)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value != round(value) or value < minimum:
            raise InvalidInputError(
                f"mknap: {what}: token {start + 1} ({tok!r}) is not an integer >= {minimum}"
            )
        return int(value)


def _is_float(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def parse_mknap(text: str) -> list[MknapInstance]:
    """Parse an OR-Library ``mknap`` file's text into its instances.

    Raises :class:`~librex_alloc.errors.InvalidInputError` on truncated input, a token that is
    not a (finite) number, a non-integer or non-positive count, negative weights, capacities
    or optimum, or tokens left over after the last instance.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"mknap: expected the file's text (str), got {type(text).__name__}")
    tok = _Tokens(text)
    if not tok.tokens:
        raise InvalidInputError("mknap: empty input")
    count = tok.integer("number of instances K", 1)
    instances = []
    for j in range(1, count + 1):
        where = f"instance {j}/{count}"
        n = tok.integer(f"{where}: number of items n", 1)
        m = tok.integer(f"{where}: number of constraints m", 1)
        (optimum,) = tok.floats(1, f"{where}: optimum")
        profits = tok.floats(n, f"{where}: profits")
        weights = tok.floats(n * m, f"{where}: weights").reshape(m, n).T
        capacities = tok.floats(m, f"{where}: capacities")
        if optimum < 0:
            raise InvalidInputError(f"mknap: {where}: negative optimum {optimum}")
        if np.any(weights < 0):
            raise InvalidInputError(f"mknap: {where}: negative weight")
        if np.any(capacities < 0):
            raise InvalidInputError(f"mknap: {where}: negative capacity")
        instances.append(
            MknapInstance(_readonly(profits), _readonly(weights), _readonly(capacities),
                          float(optimum))
        )
    if tok.pos != len(tok.tokens):
        raise InvalidInputError(
            f"mknap: {len(tok.tokens) - tok.pos} unexpected token(s) after the {count} "
            f"declared instance(s), starting with {tok.tokens[tok.pos]!r}"
        )
    return instances


def load_mknap(path: str | os.PathLike) -> list[MknapInstance]:
    """Read and parse an OR-Library ``mknap`` file (see :func:`parse_mknap`).

    A missing file raises the usual :class:`OSError`; undecodable or malformed content raises
    :class:`~librex_alloc.errors.InvalidInputError`.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"mknap: {os.fspath(path)!r} is not ASCII text ({exc})") from None
    return parse_mknap(text)


__all__ = ["MknapInstance", "parse_mknap", "load_mknap"]
