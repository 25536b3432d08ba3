"""A round's decision as the coordinator keeps it until the round's metrics row closes it."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from librex_alloc import RoundRequest


@dataclass
class Decided:
    """Round ``round``'s request, the policy's allocation, which rows are whose (``layout``:
    (name, version, start, stop) per submitter part), the submitters' true means when they
    sent them, and the key of the parts (reuse of an unchanged request)."""

    round: int
    request: RoundRequest
    allocation: object
    layout: list  # (name, version, start, stop)
    expected: np.ndarray | None
    key: tuple


def digest(alloc) -> int:
    """CRC of an allocation's fractions: a replayed decision must reproduce it."""
    return zlib.crc32(np.ascontiguousarray(alloc.fractions, dtype=np.float64).tobytes())
