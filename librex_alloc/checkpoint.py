"""Exact, Arrow-backed serialization of state dicts (as returned by ``get_state()``).

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
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from librex_alloc.errors import StateError

__all__ = ["FORMAT", "state_to_table", "table_to_state", "save_state", "load_state"]

FORMAT = "librex-alloc-state/1"
"""Value of the ``format`` key in the Arrow / Parquet schema metadata."""

_FORMAT_KEY = b"format"
_ARRAY_KINDS = "biufc"  # numpy dtype kinds stored as raw bytes

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


def state_to_table(state: dict) -> pa.Table:
    """One row per leaf of ``state``; columns ``key`` (dot-joined path), ``kind``
    (``array`` / ``scalar`` / ``value`` / ``dict``), ``dtype``, ``shape``, ``data`` (raw C-order
    bytes), ``json`` (type-tagged JSON). Schema metadata ``format = FORMAT``."""
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
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _insert(root: dict, sealed: set[int], key: str, value) -> None:
    parts = key.split(".")
    node = root
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if type(child) is not dict or id(child) in sealed:
            raise StateError(f"checkpoint: key {key!r} conflicts with another entry")
        node = child
    if parts[-1] in node:
        raise StateError(f"checkpoint: duplicate or conflicting key {key!r}")
    node[parts[-1]] = value


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


def table_to_state(table: pa.Table) -> dict:
    """Inverse of :func:`state_to_table`. :class:`StateError` on a foreign or corrupt table."""
    if not isinstance(table, pa.Table):
        raise StateError(f"expected a pyarrow.Table, got {type(table)!r}")
    meta = table.schema.metadata or {}
    if meta.get(_FORMAT_KEY) != FORMAT.encode():
        found = meta.get(_FORMAT_KEY)
        raise StateError(f"checkpoint: format {found!r}, expected {FORMAT!r}")
    missing = [name for name in SCHEMA.names if name not in table.column_names]
    if missing:
        raise StateError(f"checkpoint: missing columns {missing}")
    cols = [table.column(name).to_pylist() for name in SCHEMA.names]
    root: dict = {}
    sealed: set[int] = set()
    for key, kind, dtype, shape, data, text in zip(*cols, strict=True):
        if type(key) is not str:
            raise StateError(f"checkpoint: bad key {key!r}")
        try:
            value = _row_value(kind, dtype, shape, data, text)
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
            raise StateError(f"checkpoint: entry {key!r} is corrupt ({exc})") from None
        _insert(root, sealed, key, value)
        if kind == "dict":
            sealed.add(id(value))
    return root


# --------------------------------------------------------------------------- files
def save_state(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` to a Parquet file at ``path`` atomically (temp file in the same
    directory, fsync, ``os.replace``). A failure leaves any existing file untouched."""
    table = state_to_table(state)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
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


def load_state(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`save_state`. ``FileNotFoundError`` if ``path`` is missing;
    :class:`StateError` if it is not a librex-alloc checkpoint or is corrupt."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    try:
        table = pq.ParquetFile(path).read()
    except (pa.ArrowException, OSError) as exc:
        raise StateError(f"checkpoint {path!r}: not a readable Parquet file ({exc})") from None
    return table_to_state(table)
