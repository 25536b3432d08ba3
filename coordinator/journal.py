"""An append-only, fsynced log of what changed the coordinator's state since its last snapshot.

Each record is ``b"LXJ1"`` + payload length (u32 LE) + CRC-32 of the payload (u32 LE) +
payload. The payload is a JSON header (u32 length + UTF-8: the record kind, its index in the
file ``_i``, its scalar fields and the names of its arrays) followed by its numpy arrays, each
as u64 length + ``np.save`` bytes (``allow_pickle=False``: reading a journal never runs code).

Records are buffered by :meth:`Journal.append` and written with one ``write`` + ``fsync`` by
:meth:`Journal.commit`; the coordinator acknowledges nothing before the commit that holds it.

Reading (:func:`scan_journal`) never stops silently at a bad record: the framing lets it
resynchronise on the next valid record (the next ``MAGIC`` whose length, CRC and content check
out, with a larger ``_i``), and it reports every unreadable byte range as a :class:`Damage`.
Only a **torn tail** is harmless: unreadable bytes that reach the end of the file, with no
valid record after them, and that look like an interrupted write, i.e.

* fewer bytes than a record header, and those bytes begin like ``MAGIC``; or
* a header with the right ``MAGIC`` whose length runs past the end of the file; or
* only zero bytes (a file system extended the file but never wrote the commit's data).

A record that is partly written and partly zeros is *not* counted as torn (a bit flip in a
record that ends in zero bytes looks the same): it is reported as damage, so the worst case
after a power cut is a refusal the operator can override, never a silent loss.

A crash during :meth:`Journal.commit` (the process killed in ``write``, the machine losing
power before ``fsync`` returned) leaves exactly such a tail, and the records in it were never
acknowledged (acknowledgements wait for ``fsync``), so cutting it off loses nothing anyone was
told about. Anything else — a record with a bad CRC or bad content in the middle, at the start
or at the end of the file with its full length present — may be a committed, acknowledged
record damaged on disk: it is :attr:`Damage.torn` ``False`` and the caller must refuse to
resume or accept the loss explicitly (see ``Coordinator._restore``). This module never
changes a damaged file; :func:`cut_torn_tail` truncates only a torn tail.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from librex_alloc import StateError

MAGIC = b"LXJ1"
_HEAD = struct.Struct("<4sII")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class JournalDamageError(StateError):
    """A journal holds damaged records that may have been committed (the message is one line
    naming the file, the byte offset and what is at stake)."""


def config_diff(recorded: dict, mine: dict) -> list[str]:
    """Keys of ``mine`` whose values differ from ``recorded`` (a configuration read back from a
    journal record), compared as JSON text: NaN equals NaN, a tuple its list."""
    def text(v):
        return json.dumps(v, sort_keys=True, default=str)

    return sorted(k for k in mine if text(recorded.get(k)) != text(mine[k]))


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


def encode(kind: str, meta: dict, arrays: dict[str, np.ndarray] | None = None,
           index: int | None = None) -> bytes:
    """One framed record (see the module docstring); ``index``: its position in the file."""
    arrays = arrays or {}
    head = {"_record": kind, "_arrays": list(arrays), "meta": meta}
    if index is not None:
        head["_i"] = int(index)
    text = json.dumps(head, separators=(",", ":"), allow_nan=True).encode()
    parts = [_U32.pack(len(text)), text]
    for name in arrays:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
        raw = buf.getvalue()
        parts += [_U64.pack(len(raw)), raw]
    payload = b"".join(parts)
    return _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode_head(payload: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    (n,) = _U32.unpack_from(payload, 0)
    head = json.loads(payload[4:4 + n])
    pos = 4 + n
    arrays = {}
    for name in head["_arrays"]:
        (m,) = _U64.unpack_from(payload, pos)
        pos += 8
        if pos + m > len(payload):
            raise ValueError("an array runs past its record")
        arrays[name] = np.load(io.BytesIO(payload[pos:pos + m]), allow_pickle=False)
        pos += m
    if pos != len(payload):
        raise ValueError("trailing bytes in a journal record")
    if not isinstance(head["_record"], str) or not isinstance(head["meta"], dict):
        raise ValueError("malformed record header")
    return head, arrays


def decode(payload: bytes) -> tuple[str, dict, dict[str, np.ndarray]]:
    head, arrays = _decode_head(payload)
    return head["_record"], head["meta"], arrays


@dataclass
class Record:
    """One valid record: kind, fields, arrays, its byte range [offset, end) and index."""

    kind: str
    meta: dict
    arrays: dict
    offset: int
    end: int
    index: int | None

    def round(self) -> int | None:
        """The round this record belongs to, when it names one."""
        if self.kind in ("ALLOC", "OBS"):
            return int(self.meta["round"])
        if self.kind == "METRICS":
            return int(self.meta["row"]["round"])
        return None


@dataclass
class Damage:
    """Unreadable bytes [offset, end) of a journal (end: the next valid record, or EOF)."""

    offset: int
    end: int
    reason: str
    torn: bool = False
    lost_records: int | None = None  # from the indexes around it, when both are known


@dataclass
class JournalScan:
    """What :func:`scan_journal` found in one file."""

    path: str
    size: int
    records: list[Record] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)

    @property
    def torn_tail(self) -> Damage | None:
        return self.damage[-1] if self.damage and self.damage[-1].torn else None

    @property
    def harmful(self) -> list[Damage]:
        """Damage that may hold committed records (everything but a torn tail)."""
        return [d for d in self.damage if not d.torn]

    @property
    def next_index(self) -> int:
        """The index the next appended record gets."""
        known = [r.index for r in self.records if r.index is not None]
        return (max(known) + 1) if known else len(self.records)


def _record_at(data: bytes, pos: int, after_index: int | None
               ) -> tuple[Record | None, str]:
    """The valid record starting at ``pos``, or (None, why not)."""
    if len(data) - pos < _HEAD.size:
        return None, "incomplete record header"
    magic, length, crc = _HEAD.unpack_from(data, pos)
    start, end = pos + _HEAD.size, pos + _HEAD.size + length
    if magic != MAGIC:
        return None, "no record marker"
    if end > len(data):
        return None, "record runs past the end of the file"
    payload = data[start:end]
    if zlib.crc32(payload) != crc:
        return None, "CRC mismatch"
    try:
        head, arrays = _decode_head(payload)
    except Exception as exc:  # a CRC-consistent but malformed record
        return None, f"malformed record ({type(exc).__name__})"
    index = head.get("_i")
    if index is not None and (not isinstance(index, int) or
                              (after_index is not None and index <= after_index)):
        return None, "record out of sequence"
    return Record(head["_record"], head["meta"], arrays, pos, end, index), ""


def _is_torn(tail: bytes) -> bool:
    if not tail.strip(b"\0"):
        return True  # size extended, data never written
    if len(tail) < _HEAD.size:
        return MAGIC.startswith(tail[:4])
    magic, length, crc = _HEAD.unpack_from(tail, 0)
    if magic != MAGIC or _HEAD.size + length <= len(tail):
        return False
    # a complete record whose length field was damaged is not torn: its bytes check out
    return zlib.crc32(tail[_HEAD.size:]) != crc


def scan_journal(path: str) -> JournalScan | None:
    """Every valid record of the journal at ``path`` and every damaged byte range (see the
    module docstring); None when the file does not exist. Reads only."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    scan = JournalScan(path, len(data))
    pos, last = 0, None
    while pos < len(data):
        rec, why = _record_at(data, pos, last)
        if rec is not None:
            scan.records.append(rec)
            last = rec.index if rec.index is not None else last
            pos = rec.end
            continue
        nxt = data.find(MAGIC, pos + 1)  # resynchronise on the next valid record
        while nxt >= 0:
            rec, _ = _record_at(data, nxt, last)
            if rec is not None:
                break
            nxt = data.find(MAGIC, nxt + 1)
        end = nxt if nxt >= 0 else len(data)
        torn = nxt < 0 and _is_torn(data[pos:])
        lost = None
        if rec is not None and rec.index is not None and last is not None:
            lost = rec.index - last - 1
        elif rec is not None and rec.index is not None and not scan.records:
            lost = rec.index
        scan.damage.append(Damage(pos, end, why, torn, lost))
        pos = end
    return scan


def cut_torn_tail(scan: JournalScan) -> int:
    """Truncate ``scan``'s file at its torn tail (only a torn tail: see the module
    docstring); returns the bytes cut."""
    tail = scan.torn_tail
    if tail is None:
        return 0
    with open(scan.path, "r+b") as f:
        f.truncate(tail.offset)
        f.flush()
        os.fsync(f.fileno())
    return scan.size - tail.offset


def read_journal(path: str, *, truncate: bool = False, accept_loss: bool = False
                 ) -> Iterator[tuple[str, dict, dict[str, np.ndarray]]]:
    """Valid records of the journal at ``path``, in order; a missing file has none.

    A torn tail is skipped (and cut off when ``truncate``). Any other damage raises
    :class:`JournalDamageError` before the first record is returned, unless ``accept_loss``:
    then the valid records around it are returned. The damaged file is never changed."""
    scan = scan_journal(path)
    if scan is None:
        return
    if scan.harmful and not accept_loss:
        d = scan.harmful[0]
        raise JournalDamageError(f"{path}: damaged record at byte {d.offset} ({d.reason}; "
                                 f"{d.end - d.offset} bytes unreadable)")
    if truncate:
        cut_torn_tail(scan)
    for r in scan.records:
        yield r.kind, r.meta, r.arrays


class Journal:
    """Append-only journal file; ``fsync=False`` only for benchmarks of its cost.
    ``next_index``: the index of the next record (the count of records already in the file)."""

    def __init__(self, path: str, *, fsync: bool = True, next_index: int = 0):
        self.path = path
        self.fsync = fsync
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._buffer: list[bytes] = []
        self.bytes_written = os.fstat(self._fd).st_size
        self.records = 0
        self.next_index = int(next_index)

    def append(self, kind: str, meta: dict, arrays: dict | None = None) -> None:
        """Buffer one record (durable after the next :meth:`commit`)."""
        self._buffer.append(encode(kind, meta, arrays, self.next_index))
        self.next_index += 1
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
        self.next_index -= len(self._buffer)
        self._buffer.clear()

    def close(self) -> None:
        if self._fd >= 0:
            self.commit()
            os.close(self._fd)
            self._fd = -1
