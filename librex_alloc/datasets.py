"""Readers for public benchmark instances, and where their files are found.

No data ships with the package: pass a path, or let :func:`find_data` look in
``$LIBREX_DATA`` and then in ``shared/data`` beside the checkout (only when the package runs
from a source checkout; an installed wheel has no such folder). Both layouts of a data folder
are accepted: the full data (``<root>/<dataset>/<file>``, as in ``shared/data``) and the
committed test excerpts (``<root>/<dataset>_excerpt/<file>``, and ``<root>/<file>``, as in
``tests/data``), so ``LIBREX_DATA=tests/data`` works.

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
from pathlib import Path

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


# -- where data files are -------------------------------------------------------------------------
#: Environment variable naming a data folder (either layout, see the module docstring).
DATA_ENV_VAR = "LIBREX_DATA"
#: The source checkout holding this package, when it runs from one (None from a wheel).
CHECKOUT = Path(__file__).resolve().parents[1]
if not (CHECKOUT / "pyproject.toml").is_file():
    CHECKOUT = None
#: ``shared/data`` beside the checkout (read only when the package runs from a checkout).
SHARED_DATA = (CHECKOUT if CHECKOUT is not None else Path(__file__).resolve().parents[1]) \
    .parent / "shared" / "data"
#: A dataset's display name in messages.
DATASET_NAMES = {"orlib_mknap": "OR-Library mknap1", "alibaba_gpu_v2023":
                 "Alibaba GPU trace v2023", "bitbrains_rnd": "Bitbrains GWA-T-12 Rnd"}


class DataNotFoundError(FileNotFoundError):
    """A data file that is in none of the places :func:`find_data` looks; the message is one
    line saying which data is missing and how to point at it."""


def data_roots() -> list[Path]:
    """The folders :func:`find_data` searches, in order: ``$LIBREX_DATA``, then
    ``shared/data`` beside the checkout (when running from one and it exists)."""
    roots = []
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        roots.append(Path(env))
    if CHECKOUT is not None and SHARED_DATA.is_dir():
        roots.append(SHARED_DATA)
    return roots


def _candidates(root: Path, dataset: str, filename: str) -> list[Path]:
    """The full layout, then the excerpts' layout (a ``_excerpt`` folder, or flat)."""
    return [root / dataset / filename, root / f"{dataset}_excerpt" / filename, root / filename]


def find_data(path, dataset: str, filename: str) -> Path:
    """Where to read ``filename`` (may hold a sub-folder, e.g. ``"2013-7/1.csv"``) of
    ``dataset`` (``"orlib_mknap"``, ``"alibaba_gpu_v2023"``, ``"bitbrains_rnd"``).

    ``path`` when given: the file itself, or a folder holding ``filename`` (it must exist).
    Else the first that exists, for each root of :func:`data_roots`:
    ``<root>/<dataset>/<filename>``, ``<root>/<dataset>_excerpt/<filename>``,
    ``<root>/<filename>``. Raises :class:`DataNotFoundError` (a :class:`FileNotFoundError`)
    with a one-line message naming the data and the ``LIBREX_DATA`` setting that finds it.
    """
    name = DATASET_NAMES.get(dataset, dataset)
    if path is not None:
        p = Path(os.fspath(path))
        if p.is_dir():
            p = p / filename
        if not p.is_file():
            raise DataNotFoundError(f"{name} data: {p} does not exist")
        return p
    for root in data_roots():
        for p in _candidates(root, dataset, filename):
            if p.is_file():
                return p
    env = os.environ.get(DATA_ENV_VAR)
    where = (f"{DATA_ENV_VAR}={env} holds neither {dataset}/{filename} nor "
             f"{dataset}_excerpt/{filename}" if env else f"{DATA_ENV_VAR} is not set")
    if CHECKOUT is not None and not SHARED_DATA.is_dir():
        where += f" and {SHARED_DATA} does not exist"
    hint = (f"{CHECKOUT / 'tests' / 'data'}" if CHECKOUT is not None
            else "<checkout>/tests/data")
    raise DataNotFoundError(
        f"{name} data not found ({dataset}/{filename}): {where}; set {DATA_ENV_VAR} to a "
        f"folder holding {dataset}/ (the full data) or to the committed excerpts "
        f"({DATA_ENV_VAR}={hint}), or pass path=")


__all__ = ["MknapInstance", "parse_mknap", "load_mknap", "find_data", "data_roots",
           "DataNotFoundError", "DATA_ENV_VAR"]
