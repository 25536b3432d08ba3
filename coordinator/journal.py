"""An append-only, fsynced log of what changed the coordinator's state since its last snapshot.

Each record is ``b"LXJ1"`` + payload length (u32 LE) + CRC-32 of the payload (u32 LE) +
payload. The payload is a JSON header (u32 length + UTF-8: the record kind, its scalar fields
and the names of its arrays) followed by its numpy arrays, each as u64 length + ``np.save``
bytes (``allow_pickle=False``: reading a journal never runs code).

Records are buffered by :meth:`Journal.append` and written with one ``write`` + ``fsync`` by
:meth:`Journal.commit`; the coordinator acknowledges nothing before the commit that holds it.
:func:`read_journal` returns the valid records in order and truncates a torn or corrupt tail
(a crash in the middle of a write): what was never committed is not replayed.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Iterator

import numpy as np

MAGIC = b"LXJ1"
_HEAD = struct.Struct("<4sII")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def encode_ids(ids) -> tuple[dict, dict]:
    """Agent ids (int or str) as (json fields, arrays): an int64 array when all are ints."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        return {}, {"ids": ids.astype(np.int64, copy=False)}
    ids = list(ids)
    if all(type(a) is int for a in ids):
        return {}, {"ids": np.asarray(ids, dtype=np.int64).reshape(len(ids))}
    return {"ids": ids}, {}


def decode_ids(meta: dict, arrays: dict) -> list:
    return arrays["ids"].tolist() if "ids" in arrays else list(meta["ids"])


def encode(kind: str, meta: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """One framed record (see the module docstring)."""
    arrays = arrays or {}
    head = {"_record": kind, "_arrays": list(arrays), "meta": meta}
    text = json.dumps(head, separators=(",", ":"), allow_nan=True).encode()
    parts = [_U32.pack(len(text)), text]
    for name in arrays:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
        raw = buf.getvalue()
        parts += [_U64.pack(len(raw)), raw]
    payload = b"".join(parts)
    return _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> tuple[str, dict, dict[str, np.ndarray]]:
    (n,) = _U32.unpack_from(payload, 0)
    head = json.loads(payload[4:4 + n])
    pos = 4 + n
    arrays = {}
    for name in head["_arrays"]:
        (m,) = _U64.unpack_from(payload, pos)
        pos += 8
        arrays[name] = np.load(io.BytesIO(payload[pos:pos + m]), allow_pickle=False)
        pos += m
    if pos != len(payload):
        raise ValueError("trailing bytes in a journal record")
    return head["_record"], head["meta"], arrays


def read_journal(path: str, *, truncate: bool = True
                 ) -> Iterator[tuple[str, dict, dict[str, np.ndarray]]]:
    """Valid records of the journal at ``path``, in order; a missing file has none.

    At the first torn or corrupt record the rest is ignored and (``truncate``) cut off."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    pos = 0
    while pos + _HEAD.size <= len(data):
        magic, length, crc = _HEAD.unpack_from(data, pos)
        start, end = pos + _HEAD.size, pos + _HEAD.size + length
        if magic != MAGIC or end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        try:
            record = decode(data[start:end])
        except Exception:  # a CRC-consistent but malformed record: stop here as well
            break
        yield record
        pos = end
    if pos < len(data) and truncate:
        with open(path, "r+b") as f:
            f.truncate(pos)
            f.flush()
            os.fsync(f.fileno())


class Journal:
    """Append-only journal file; ``fsync=False`` only for benchmarks of its cost."""

    def __init__(self, path: str, *, fsync: bool = True):
        self.path = path
        self.fsync = fsync
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._buffer: list[bytes] = []
        self.bytes_written = os.fstat(self._fd).st_size
        self.records = 0

    def append(self, kind: str, meta: dict, arrays: dict | None = None) -> None:
        """Buffer one record (durable after the next :meth:`commit`)."""
        self._buffer.append(encode(kind, meta, arrays))
        self.records += 1

    @property
    def dirty(self) -> bool:
        return bool(self._buffer)

    def commit(self) -> int:
        """Write the buffered records and fsync; returns the bytes written."""
        if not self._buffer:
            return 0
        data = b"".join(self._buffer)
        self._buffer.clear()
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        if self.fsync:
            os.fsync(self._fd)
        self.bytes_written += len(data)
        return len(data)

    def discard(self) -> None:
        """Drop buffered records (their content went into a snapshot instead)."""
        self._buffer.clear()

    def close(self) -> None:
        if self._fd >= 0:
            self.commit()
            os.close(self._fd)
            self._fd = -1
