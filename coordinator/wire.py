"""Checks of what callers send to the coordinator (replies, reports, registrations): only
exact builtin and numpy types are accepted, so that a hostile object's own methods (``__eq__``,
``__len__``, ``__array__``, ...) never run inside the coordinator; every text that reaches a
log or a notice is cut short and never raises."""

from __future__ import annotations

import hashlib

import numpy as np

from agents.protocol import Submission
from coordinator.errors import OwnershipError
from librex_alloc import InvalidInputError, RoundRequest

#: largest number of reports one reply may carry (a submitter's outbox holds 10,000)
MAX_REPORTS_PER_REPLY = 100_000
#: longest report id or submission version accepted (characters)
MAX_ID_CHARS = 256
#: largest resource request accepted in a submission (resource units), and the largest
#: |expected reward| (the oracles work in float64: larger values lose every row's precision)
MAX_REQUEST = 1e15
MAX_EXPECTED = 1e12


def hash_token(token) -> str:
    return hashlib.sha256(str(token).encode("utf-8", "surrogatepass")).hexdigest()


def safe_str(obj, limit: int = 500) -> str:
    """``type: str(obj)`` cut to ``limit`` characters, never raising (a caller's object may
    raise on any access)."""
    try:
        text = f"{type(obj).__name__}: {obj}"
    except Exception:  # noqa: BLE001 - whatever a hostile object raises
        text = f"{type(obj).__name__}: (unprintable)"
    return text[:limit]


def plain_int(x) -> int | None:
    """``x`` as an int if it is exactly an int or a numpy integer (not bool, no subclass
    that could run code), else None."""
    if type(x) is int:
        return x
    if issubclass(type(x), np.integer) and type(x).__module__ == "numpy":
        return int(x)
    return None


def plain_str(x) -> str | None:
    """``x`` if it is exactly a str of 1..MAX_ID_CHARS characters that UTF-8 can encode
    (it is journaled and stored in Arrow files), else None."""
    if type(x) is not str or not 0 < len(x) <= MAX_ID_CHARS:
        return None
    try:
        x.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return x


def plain_array(x, kinds: str) -> bool:
    """Is ``x`` a plain 1-D numpy array (not a subclass) of one of the dtype ``kinds``?"""
    return type(x) is np.ndarray and x.ndim == 1 and x.dtype.kind in kinds


def plain_values(x) -> np.ndarray:
    """Outcome values as a float64 array: a plain numeric 1-D array, or a list/tuple of
    plain ints and floats; ``InvalidInputError`` otherwise (no object is converted by its
    own methods)."""
    if type(x) is np.ndarray:
        if x.ndim != 1 or x.dtype.kind not in "iuf":
            raise InvalidInputError("values: expected a 1-D numeric array")
        return x.astype(np.float64)
    if type(x) in (list, tuple) and all(type(v) in (int, float) for v in x):
        return np.asarray(x, dtype=np.float64)
    raise InvalidInputError("values: expected a 1-D numeric array or a list of numbers")


ID_TYPES = frozenset((int, str, np.str_, np.int64, np.int32, np.int16, np.int8, np.uint64,
                       np.uint32, np.uint16, np.uint8))


def plain_ids(x) -> list | np.ndarray:
    """Agent ids exactly as :func:`check_ids` accepts them, without running a caller's
    code: a plain 1-D int/str array, or a list/tuple of exact ints and strs."""
    if type(x) is np.ndarray:
        return x
    if type(x) in (list, tuple) and all(type(a) in ID_TYPES for a in x):
        return x
    raise InvalidInputError("agent_ids: expected a list of ints or strs or a 1-D array")


def check_ids(agent_ids, *, distinct: bool = True) -> list:
    """Runtime agent ids: a list of ints or strs, distinct unless not ``distinct`` (a 1-D int
    or str array is accepted and checked without a Python loop)."""
    if isinstance(agent_ids, np.ndarray):
        if agent_ids.dtype.kind not in "iuU" or agent_ids.ndim != 1:
            raise InvalidInputError("agent_ids: expected a 1-D array of ints or strs")
        if distinct and len(agent_ids) > 1:
            ordered = np.sort(agent_ids)  # ~5x faster than np.unique's hash table here
            if bool(np.any(ordered[1:] == ordered[:-1])):
                raise InvalidInputError("agent_ids: an id appears twice")
        return agent_ids.tolist()
    if not isinstance(agent_ids, (list, tuple)):
        raise InvalidInputError("agent_ids: expected a list of ids")
    ids = list(agent_ids)
    for a in ids:
        if type(a) not in (int, str) and not isinstance(a, np.integer):
            raise InvalidInputError(f"agent ids must be int or str, got {a!r}")
    ids = [int(a) if isinstance(a, np.integer) else a for a in ids]
    if distinct and len(set(ids)) != len(ids):
        raise InvalidInputError("agent_ids: an id appears twice")
    return ids


def reply_parts(reply) -> tuple:
    """``(proof, reports, submission)`` of a :class:`~agents.protocol.Reply`;
    ``InvalidInputError`` unless its reports are a list of at most
    ``MAX_REPORTS_PER_REPLY`` and its submission a ``Submission`` or None (a hostile reply may
    raise anything else: the caller catches all)."""
    proof, reports, submission = reply.proof, reply.reports, reply.submission
    if type(reports) is not list or len(reports) > MAX_REPORTS_PER_REPLY:
        raise InvalidInputError(f"reports: expected a list of at most "
                                f"{MAX_REPORTS_PER_REPLY:,} Reports")
    if submission is not None and type(submission) is not Submission:
        raise InvalidInputError(f"submission: expected a Submission or None, got "
                                f"{type(submission).__name__}")
    return proof, reports, submission


def submission_rows(s: Submission, name: str, owned, budget, n_resources: int) -> tuple:
    """``(part, expected)``: a submission's rows as a validated :class:`RoundRequest` (its
    one validation) and its expected values (or None). ``owned``: a ``pandas.Index`` of the
    submitter's agents; naming another agent is an :class:`OwnershipError`, anything
    malformed an ``InvalidInputError``."""
    raw = plain_ids(s.agent_ids)
    ids = check_ids(raw, distinct=False)  # an id repeats per option
    arr = raw if isinstance(raw, np.ndarray) else ids
    if np.any(owned.get_indexer(arr) < 0):
        raise OwnershipError(f"submission of {name!r} names agents it does not own")
    requests = s.requests
    if type(requests) is not np.ndarray or requests.ndim != 2 or \
            requests.dtype.kind not in "iuf":
        raise InvalidInputError("requests: expected an (N, K) numeric array")
    requests = requests.astype(np.float64)
    if requests.size and not np.all(requests <= MAX_REQUEST):
        raise InvalidInputError(f"requests: values above {MAX_REQUEST:g} (or NaN)")
    options = s.options
    if options is not None and not plain_array(options, "iu"):
        raise InvalidInputError("options: expected a 1-D int array or None")
    part = RoundRequest.build(ids, requests, budget, options, n_resources=n_resources)
    expected = None
    if s.expected is not None:
        expected = plain_values(s.expected)
        if expected.shape != (len(ids),) or not np.all(np.abs(expected) <= MAX_EXPECTED):
            raise InvalidInputError("submission: expected values do not match its rows (one "
                                    f"finite value per row, |x| ≤ {MAX_EXPECTED:g})")
    return part, expected
