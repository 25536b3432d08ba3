"""Exact, Arrow-backed serialization of state dicts (as returned by ``get_state()``), with a
content hash that every load verifies.

A state is a dict with ``str`` keys (no ``"."``) whose values are nested state dicts or leaves:

* numpy arrays of a bool / int / uint / float / complex dtype (any shape, 0-D and empty
  included) and numpy scalars of those dtypes — stored as raw C-order bytes;
* Python ``None``, ``bool``, ``int`` (any size), ``float`` (NaN / inf / -0.0 included),
  ``str``, and lists / tuples / dicts of those (recursively, e.g. tuple agent ids) — stored
  as type-tagged JSON.

:func:`state_to_table` makes one row per leaf (an empty nested dict is a leaf of kind
``"dict"``); :func:`table_to_state` inverts it exactly: same nesting and key order, arrays
bitwise equal with the same dtype and shape, scalars equal with the same type.
Anything else is a :class:`StateError`.

Integrity (format ``librex-alloc-state/2``): the schema metadata holds ``format`` and
``sha256``, the SHA-256 of a canonical byte serialization of the rows (:func:`content_digest`):
``FORMAT`` + ``b"\\0"`` + row count (u64 LE), then per row, per column in the order key, kind,
dtype, shape, data, json: ``b"\\0"`` for null, else ``b"\\1"`` + length (u64 LE) + the value's
bytes (strings as their stored UTF-8 bytes; a shape as its int64 LE elements, each tagged
null / not null). Every load recomputes it over the decoded columns and refuses a mismatch, so
a corrupted file either raises :class:`StateError` or restores exactly the state that was
saved. Parquet page CRC32 checksums are written and verified as well, where pyarrow supports
them. Files of format ``librex-alloc-state/1`` (no hash) are refused.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import struct
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from librex_alloc.errors import StateError

__all__ = [
    "FORMAT",
    "state_to_table",
    "table_to_state",
    "content_digest",
    "save_state",
    "load_state",
]

FORMAT = "librex-alloc-state/2"
"""Value of the ``format`` key in the Arrow / Parquet schema metadata."""

_FORMAT_KEY = b"format"
_DIGEST_KEY = b"sha256"
_UNHASHED_FORMATS = (b"librex-alloc-state/1",)
_ARRAY_KINDS = "biufc"  # numpy dtype kinds stored as raw bytes
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")

SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("dtype", pa.string()),
        pa.field("shape", pa.list_(pa.int64())),
        pa.field("data", pa.large_binary()),
        pa.field("json", pa.string()),
    ],
    metadata={_FORMAT_KEY: FORMAT.encode()},
)

# Parquet page CRC32s (pyarrow ≥ 15); the SHA-256 above does not depend on them.
_WRITE_CHECKSUMS = "write_page_checksum" in inspect.signature(pq.write_table).parameters
_READ_CHECKSUMS = "page_checksum_verification" in inspect.signature(pq.ParquetFile).parameters


# --------------------------------------------------------------------------- JSON leaves
def _encode(value):
    """Type-tagged JSON-able form of a non-array leaf value."""
    if value is None:
        return None
    t = type(value)
    if t is bool:
        return {"b": value}
    if t is int:
        return {"i": hex(value)}  # hex: exact for any size, no str-digit limit
    if t is float:
        if math.isnan(value):
            return {"nan": struct.pack(">d", value).hex()}  # keep sign and payload
        return {"f": value.hex()}
    if t is str:
        return {"s": value}
    if t is list:
        return {"l": [_encode(v) for v in value]}
    if t is tuple:
        return {"t": [_encode(v) for v in value]}
    if t is dict:
        return {"d": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, np.generic) and value.dtype.kind in _ARRAY_KINDS:
        return {"np": [value.dtype.str, value.tobytes().hex()]}
    raise StateError(f"unsupported value of type {t.__module__}.{t.__qualname__}")


def _decode(obj):
    """Inverse of :func:`_encode`; raises ``ValueError`` / ``TypeError`` on malformed input."""
    if obj is None:
        return None
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ValueError(f"malformed tagged value {obj!r}")
    ((tag, payload),) = obj.items()
    if tag == "b" and type(payload) is bool:
        return payload
    if tag == "i" and type(payload) is str:
        return int(payload, 16)
    if tag == "f" and type(payload) is str:
        return float.fromhex(payload)
    if tag == "nan" and type(payload) is str:
        return struct.unpack(">d", bytes.fromhex(payload))[0]
    if tag == "s" and type(payload) is str:
        return payload
    if tag == "l" and type(payload) is list:
        return [_decode(v) for v in payload]
    if tag == "t" and type(payload) is list:
        return tuple(_decode(v) for v in payload)
    if tag == "d" and type(payload) is list:
        out = {}
        for pair in payload:
            if type(pair) is not list or len(pair) != 2:
                raise ValueError("malformed dict entry")
            out[_decode(pair[0])] = _decode(pair[1])
        return out
    if tag == "np" and type(payload) is list and len(payload) == 2:
        dt = _dtype(payload[0])
        raw = bytes.fromhex(payload[1])
        if len(raw) != dt.itemsize:
            raise ValueError("numpy scalar: wrong byte count")
        return np.frombuffer(raw, dtype=dt)[0]
    raise ValueError(f"unknown tag {tag!r}")


def _dtype(text) -> np.dtype:
    if type(text) is not str:
        raise ValueError("dtype must be a string")
    dt = np.dtype(text)
    if dt.kind not in _ARRAY_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise ValueError(f"unsupported dtype {text!r}")
    return dt


# --------------------------------------------------------------------------- state <-> table
def _flatten(state: dict, prefix: str | None, rows: list[tuple]) -> None:
    for key, value in state.items():
        if type(key) is not str:
            raise StateError(f"state keys must be str, got {key!r} under {prefix!r}")
        if "." in key:
            raise StateError(f"state key {key!r} contains '.'")
        path = key if prefix is None else f"{prefix}.{key}"
        if type(value) is dict:
            if value:
                _flatten(value, path, rows)
            else:
                rows.append((path, "dict", None, None, None, None))
        elif isinstance(value, np.ndarray):
            dt = value.dtype
            if dt.kind not in _ARRAY_KINDS or dt.fields is not None:
                raise StateError(f"state[{path!r}]: unsupported array dtype {dt}")
            data = np.ascontiguousarray(value).tobytes(order="C")
            rows.append((path, "array", dt.str, list(value.shape), data, None))
        elif isinstance(value, np.generic):
            if value.dtype.kind not in _ARRAY_KINDS:
                raise StateError(f"state[{path!r}]: unsupported numpy scalar {value.dtype}")
            rows.append((path, "scalar", value.dtype.str, [], value.tobytes(), None))
        else:
            try:
                text = json.dumps(_encode(value), separators=(",", ":"), allow_nan=False)
            except RecursionError:
                raise StateError(f"state[{path!r}]: nested too deeply") from None
            except StateError as exc:
                raise StateError(f"state[{path!r}]: {exc}") from None
            rows.append((path, "value", None, None, None, text))


def _columns(table: pa.Table) -> list[list]:
    """The six columns as Python lists, string columns as their raw ``bytes`` (not decoded)."""
    cols = []
    for field in SCHEMA:
        col = table.column(field.name)
        if pa.types.is_string(field.type):
            col = col.cast(pa.binary())  # no UTF-8 validation: decoded (and checked) later
        cols.append(col.to_pylist())
    return cols


def _digest(cols: list[list]) -> str:
    """SHA-256 (hex) of the canonical serialization of the rows described in the module doc."""
    h = hashlib.sha256()
    h.update(FORMAT.encode() + b"\0" + _U64.pack(len(cols[0])))
    for row in zip(*cols, strict=True):
        for i, value in enumerate(row):
            if value is None:
                h.update(b"\0")
            elif i == 3:  # shape: list of int64 (elements may be null in a foreign table)
                h.update(b"\1" + _U64.pack(len(value)))
                h.update(b"".join(b"\0" if s is None else b"\1" + _I64.pack(s) for s in value))
            else:
                h.update(b"\1" + _U64.pack(len(value)))
                h.update(value)
    return h.hexdigest()


def content_digest(table: pa.Table) -> str:
    """SHA-256 (64 hex digits) of a state table's rows, as stored under ``sha256`` in its
    schema metadata. The table must have the columns of :func:`state_to_table`."""
    try:
        _check_schema(table, "table")
        return _digest(_columns(table))
    except StateError:
        raise
    except Exception as exc:
        raise StateError(f"table: cannot hash ({type(exc).__name__}: {exc})") from None


def state_to_table(state: dict) -> pa.Table:
    """One row per leaf of ``state``; columns ``key`` (dot-joined path), ``kind``
    (``array`` / ``scalar`` / ``value`` / ``dict``), ``dtype``, ``shape``, ``data`` (raw C-order
    bytes), ``json`` (type-tagged JSON). Schema metadata ``format = FORMAT`` and ``sha256`` =
    :func:`content_digest` of the rows."""
    if type(state) is not dict:
        raise StateError(f"state: expected a dict, got {type(state)!r}")
    rows: list[tuple] = []
    _flatten(state, None, rows)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(SCHEMA)
    try:
        arrays = [
            pa.array(col, type=field.type) for col, field in zip(columns, SCHEMA, strict=True)
        ]
    except (pa.ArrowException, UnicodeError) as exc:
        raise StateError(f"state: cannot convert to Arrow ({exc})") from None
    table = pa.Table.from_arrays(arrays, schema=SCHEMA)
    meta = {_FORMAT_KEY: FORMAT.encode(), _DIGEST_KEY: _digest(_columns(table)).encode()}
    return table.replace_schema_metadata(meta)


def _insert(root: dict, sealed: set[int], key: str, value, where: str) -> None:
    parts = key.split(".")
    node = root
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if type(child) is not dict or id(child) in sealed:
            raise StateError(f"{where}: key {key!r} conflicts with another entry")
        node = child
    if parts[-1] in node:
        raise StateError(f"{where}: duplicate or conflicting key {key!r}")
    node[parts[-1]] = value


def _text(raw) -> str | None:
    """Strict UTF-8 decoding of a string cell (``UnicodeDecodeError`` on invalid bytes)."""
    return None if raw is None else raw.decode("utf-8")


def _row_value(kind, dtype, shape, data, text):
    if kind == "array" or kind == "scalar":
        dt = _dtype(dtype)
        if type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape):
            raise ValueError(f"bad shape {shape!r}")
        if kind == "scalar" and shape:
            raise ValueError("scalar with a non-empty shape")
        if type(data) is not bytes or len(data) != math.prod(shape) * dt.itemsize:
            raise ValueError("data length does not match dtype and shape")
        arr = np.frombuffer(data, dtype=dt).reshape(shape)
        return arr[()] if kind == "scalar" else arr.copy()
    if kind == "value":
        if type(text) is not str:
            raise ValueError("missing json")
        return _decode(json.loads(text))
    if kind == "dict":
        return {}
    raise ValueError(f"unknown kind {kind!r}")


def _check_schema(table: pa.Table, where: str) -> None:
    names = table.schema.names
    if names != SCHEMA.names:
        raise StateError(f"{where}: columns {names}, expected {SCHEMA.names}")
    for field, want in zip(table.schema, SCHEMA, strict=True):
        if not field.type.equals(want.type):
            raise StateError(f"{where}: column {field.name!r} has type {field.type}, "
                             f"expected {want.type}")


def _check_header(table: pa.Table, where: str) -> bytes:
    """Format and schema checks; returns the stored digest (hex, as bytes)."""
    meta = table.schema.metadata or {}
    found = meta.get(_FORMAT_KEY)
    if found in _UNHASHED_FORMATS:
        raise StateError(
            f"{where}: format {found.decode()!r} has no content hash and is no longer read "
            f"(this version reads {FORMAT!r} only); load it with the librex-alloc version "
            "that wrote it and save it again with this one")
    if found != FORMAT.encode():
        raise StateError(f"{where}: format {found!r}, expected {FORMAT!r}")
    digest = meta.get(_DIGEST_KEY)
    if digest is None:
        raise StateError(f"{where}: no content hash ({_DIGEST_KEY.decode()!r}) in the metadata")
    _check_schema(table, where)
    return digest


def _table_to_state(table: pa.Table, where: str) -> dict:
    digest = _check_header(table, where)
    cols = _columns(table)
    if _digest(cols).encode() != digest:
        raise StateError(f"{where}: content hash mismatch (corrupted or modified)")
    root: dict = {}
    sealed: set[int] = set()
    for raw_key, kind, dtype, shape, data, text in zip(*cols, strict=True):
        try:
            key = _text(raw_key)
        except UnicodeDecodeError:
            raise StateError(f"{where}: key {raw_key!r} is not valid UTF-8") from None
        if type(key) is not str:
            raise StateError(f"{where}: bad key {key!r}")
        try:
            value = _row_value(_text(kind), _text(dtype), shape, data, _text(text))
        except Exception as exc:  # any decoding failure of a (hash-consistent) crafted row
            raise StateError(
                f"{where}: entry {key!r} is corrupt ({type(exc).__name__}: {exc})") from None
        _insert(root, sealed, key, value, where)
        if kind == b"dict":
            sealed.add(id(value))
    return root


def _guarded(fn, table, where: str) -> dict:
    try:
        return fn(table, where)
    except StateError:
        raise
    except Exception as exc:  # Arrow, Unicode, struct, Memory, Recursion, ... errors
        raise StateError(f"{where}: cannot decode ({type(exc).__name__}: {exc})") from None


def table_to_state(table: pa.Table) -> dict:
    """Inverse of :func:`state_to_table`. :class:`StateError` on a foreign or corrupt table,
    including one whose rows do not match its ``sha256``."""
    if not isinstance(table, pa.Table):
        raise StateError(f"expected a pyarrow.Table, got {type(table)!r}")
    return _guarded(_table_to_state, table, "checkpoint")


# --------------------------------------------------------------------------- files
def save_state(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` to a Parquet file at ``path`` atomically: temp file in the target's
    directory, fsync, ``os.replace``; a failure leaves any existing file untouched.

    If ``path`` is a symbolic link (or a chain of them), the file it resolves to is replaced
    and the link is kept (a dangling link gets its target created). The existing file's
    permission bits are kept (new files: 0o644)."""
    table = state_to_table(state)
    target = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        if _WRITE_CHECKSUMS:
            pq.write_table(table, tmp, write_page_checksum=True)
        else:  # pragma: no cover - pyarrow < 15
            pq.write_table(table, tmp)
        try:
            mode = os.stat(target).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename durable; not supported everywhere
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _read_table(raw: bytes, where: str) -> pa.Table:
    try:
        kwargs = {"page_checksum_verification": True} if _READ_CHECKSUMS else {}
        return pq.ParquetFile(pa.BufferReader(raw), **kwargs).read()
    except Exception as exc:
        raise StateError(
            f"{where}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None


def load_state(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`save_state`. ``FileNotFoundError`` if ``path`` is missing;
    :class:`StateError` (naming ``path``) if it is not a librex-alloc checkpoint of this format,
    is corrupt or fails its content hash — any decoding failure is a ``StateError``."""
    path = os.fspath(path)
    where = f"checkpoint {path!r}"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise
    except (OSError, MemoryError) as exc:  # a directory, no permission, I/O error
        raise StateError(f"{where}: cannot read ({type(exc).__name__}: {exc})") from None
    return _guarded(_table_to_state, _read_table(raw, where), where)
