"""Tests of librex_alloc.checkpoint: exact round trips, atomic files, rejection of bad input."""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from librex_alloc import checkpoint
from librex_alloc.checkpoint import (
    FORMAT,
    load_state,
    save_state,
    state_to_table,
    table_to_state,
)
from librex_alloc.errors import StateError
from librex_alloc.posteriors import BetaPosterior, GaussianPosterior


def assert_exact(a, b, path="<root>"):
    """Same nesting, same types, arrays bitwise equal, floats bit-identical."""
    assert type(a) is type(b), f"{path}: {type(a)} vs {type(b)}"
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), path
        for k in a:
            assert_exact(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_exact(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray | np.generic):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert a.tobytes() == b.tobytes(), path
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{path}: {a!r} vs {b!r}"
    else:
        assert a == b, path


# ----------------------------------------------------------------------------- strategies
DTYPES = [
    "?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
    "f2", "f4", "f8", "c16", ">f8", ">i4", "<u2", ">c8",
]  # fmt: skip

keys = st.text(
    alphabet=st.characters(blacklist_characters=".", blacklist_categories=("Cs",)), max_size=6
)
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(
        np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    )
)
np_scalars = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(np.dtype(dt), ()).map(lambda a: a[()])
)
atoms = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**130), 2**130)
    | st.floats()
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
)
agent_ids = st.recursive(atoms, lambda c: st.lists(c, max_size=3).map(tuple), max_leaves=6)
values = agent_ids | st.lists(agent_ids, max_size=5) | st.lists(atoms, max_size=4).map(tuple)
leaves = arrays | np_scalars | values
states = st.recursive(
    st.dictionaries(keys, leaves, max_size=4),
    lambda children: st.dictionaries(keys, children | leaves, max_size=4),
    max_leaves=12,
)

BIT_GENERATORS = [
    np.random.PCG64,
    np.random.PCG64DXSM,
    np.random.MT19937,
    np.random.SFC64,
    np.random.Philox,
]


# ----------------------------------------------------------------------------- round trips
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states)
def test_table_round_trip_is_exact(state):
    table = state_to_table(state)
    assert table.schema.metadata[b"format"] == FORMAT.encode()
    assert_exact(state, table_to_state(table))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states)
def test_file_round_trip_is_exact(state):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.parquet")
        save_state(state, path)
        assert_exact(state, load_state(path))
        assert os.listdir(tmp) == ["state.parquet"]


@pytest.mark.parametrize("bitgen", BIT_GENERATORS)
def test_generator_state_round_trip_restores_stream(tmp_path, bitgen):
    rng = np.random.Generator(bitgen(12345))
    rng.random(7)
    rng.integers(0, 10, dtype=np.uint32)  # may leave a buffered uint32
    state = {"rng": rng.bit_generator.state, "step": 7}
    path = tmp_path / "rng.parquet"
    save_state(state, path)
    back = load_state(path)
    assert_exact(state, back)
    clone = np.random.Generator(bitgen())
    clone.bit_generator.state = back["rng"]
    np.testing.assert_array_equal(rng.random(100), clone.random(100))
    np.testing.assert_array_equal(
        rng.integers(0, 2**32, size=9, dtype=np.uint32),
        clone.integers(0, 2**32, size=9, dtype=np.uint32),
    )


@pytest.mark.parametrize("cls", [BetaPosterior, GaussianPosterior])
def test_posterior_state_through_checkpoint(tmp_path, cls):
    post = cls(discount=0.9)
    post.resize(5)
    rng = np.random.default_rng(1)
    post.update(rng.integers(0, 5, 100), rng.random(100), rng)
    post.decay()
    save_state({"posterior": post.get_state(), "rng": rng.bit_generator.state}, tmp_path / "p")
    back = load_state(tmp_path / "p")
    clone = cls()
    clone.set_state(back["posterior"])
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = back["rng"]
    slots = np.arange(5)
    np.testing.assert_array_equal(post.sample(slots, rng), clone.sample(slots, rng2))


def test_special_values_exact():
    payload_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_DEAD_BEEF))[0]
    state = {
        "floats": [0.0, -0.0, math.inf, -math.inf, math.nan, payload_nan, 5e-324, 0.1],
        "ints": (0, -1, 2**63, -(2**200), 10**5000, True, False),
        "ids": [("a", 1), ("a", (2, None)), (), ("", 1.5, ((True,),))],
        "empty": {},
        "nested": {"empty_list": [], "empty_tuple": (), "none": None, "s": "π . x"},
        "zero_d": np.array(3.5),
        "empty_arr": np.zeros((0, 3), dtype=np.int16),
        "cube": np.arange(24, dtype=np.uint64).reshape(2, 3, 4) * np.uint64(2**60),
        "nan_arr": np.array([np.nan, -np.nan, np.inf, -0.0]),
        "np_scalars": {"i": np.int64(-5), "b": np.bool_(True), "f": np.float32(0.1)},
        "np_in_list": [np.uint8(3), np.float64(2.5)],
        "dict_in_list": [{"k": 1, (1, 2): "v"}],
    }
    back = table_to_state(state_to_table(state))
    assert_exact(state, back)
    assert type(back["ints"][5]) is bool and type(back["ints"][2]) is int
    assert type(back["np_scalars"]["i"]) is np.int64


def test_arrays_are_c_order_writable_copies():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    state = {"f": np.asfortranarray(base), "view": base[:, ::2]}
    back = table_to_state(state_to_table(state))
    np.testing.assert_array_equal(back["f"], base)
    np.testing.assert_array_equal(back["view"], base[:, ::2])
    assert back["f"].flags.c_contiguous and back["f"].flags.writeable
    back["view"][0, 0] = 99.0
    assert base[0, 0] == 0.0


def test_table_layout():
    table = state_to_table({"a": {"b": np.array([1, 2], dtype=np.int32)}, "c": (1, "x")})
    assert table.column_names == ["key", "kind", "dtype", "shape", "data", "json"]
    rows = table.to_pylist()
    assert [r["key"] for r in rows] == ["a.b", "c"]
    assert rows[0]["kind"] == "array" and rows[0]["shape"] == [2]
    assert rows[0]["data"] == np.array([1, 2], dtype=np.int32).tobytes()
    assert rows[0]["json"] is None
    assert json.loads(rows[1]["json"]) == {"t": [{"i": "0x1"}, {"s": "x"}]}
    assert table_to_state(state_to_table({})) == {}


# ----------------------------------------------------------------------------- bad states
@pytest.mark.parametrize(
    "state",
    [
        {"a.b": 1},
        {"a": {"x.y": 1}},
        {1: 2},
        {"a": {(1, 2): 3}},
        {"a": np.array([1, "x"], dtype=object)},
        {"a": np.array(["x"])},
        {"a": np.zeros(2, dtype="datetime64[s]")},
        {"a": {1, 2}},
        {"a": object()},
        {"a": [np.zeros(2)]},
        {"a": [{1, 2}]},
        {"a": bytes(3)},
        {"a": np.str_("x")},
        "not a dict",
        [("a", 1)],
    ],
)
def test_unsupported_states_raise(state, tmp_path):
    with pytest.raises(StateError):
        state_to_table(state)
    path = tmp_path / "s.parquet"
    path.write_bytes(b"previous")
    with pytest.raises(StateError):
        save_state(state, path)
    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["s.parquet"]


def _good_table() -> pa.Table:
    return state_to_table({"a": np.arange(3.0), "b": {"c": [1, 2]}, "d": {}})


def _replace(table: pa.Table, name: str, values: list) -> pa.Table:
    i = table.schema.get_field_index(name)
    field = table.schema.field(i)
    return table.set_column(i, field, pa.array(values, type=field.type))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace_schema_metadata(None),
        lambda t: t.replace_schema_metadata({"format": "librex-alloc-state/999"}),
        lambda t: t.drop_columns(["json"]),
        lambda t: _replace(t, "data", [b"\x00" * 7, None, None]),
        lambda t: _replace(t, "dtype", ["|O", None, None]),
        lambda t: _replace(t, "dtype", ["<U3", None, None]),
        lambda t: _replace(t, "dtype", ["nonsense", None, None]),
        lambda t: _replace(t, "shape", [[-3], None, None]),
        lambda t: _replace(t, "kind", ["array", "blob", "dict"]),
        lambda t: _replace(t, "json", [None, '{"q": 1}', None]),
        lambda t: _replace(t, "json", [None, "not json", None]),
        lambda t: _replace(t, "json", [None, '{"i": "zz"}', None]),
        lambda t: _replace(t, "json", [None, None, None]),
        lambda t: _replace(t, "key", ["a", "a", "d"]),
        lambda t: _replace(t, "key", ["a", "a.c", "d"]),
        lambda t: _replace(t, "key", ["a", "d.c", "d"]),
        lambda t: _replace(t, "key", ["d.x", "b.c", "d"]),
    ],
)
def test_corrupt_tables_raise(mutate):
    table = mutate(_good_table())
    with pytest.raises(StateError):
        table_to_state(table)


def test_table_to_state_rejects_non_tables():
    with pytest.raises(StateError):
        table_to_state({"a": 1})


# ----------------------------------------------------------------------------- files
def test_save_overwrites_atomically_and_cleans_up(tmp_path):
    path = tmp_path / "ckpt.parquet"
    save_state({"v": 1}, path)
    save_state({"v": 2, "arr": np.ones(3)}, str(path))
    assert load_state(path)["v"] == 2
    assert os.listdir(tmp_path) == ["ckpt.parquet"]
    assert pq.read_schema(path).metadata[b"format"] == FORMAT.encode()


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.parquet"
    save_state({"v": 1}, path)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        save_state({"v": 2}, path)
    monkeypatch.undo()
    assert load_state(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["ckpt.parquet"]


def test_corrupt_and_foreign_files_raise(tmp_path):
    good = tmp_path / "good.parquet"
    save_state({"a": np.arange(100.0), "b": "text"}, good)
    raw = good.read_bytes()

    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(raw[: len(raw) // 2])
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1" + os.urandom(200) + b"PAR1")
    text = tmp_path / "text.csv"
    text.write_text("key,kind\na,array\n")
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), foreign)
    no_meta = tmp_path / "no_meta.parquet"
    pq.write_table(state_to_table({"a": 1}).replace_schema_metadata(None), no_meta)

    for path in (truncated, garbage, text, empty, foreign, no_meta):
        with pytest.raises(StateError):
            load_state(path)
    with pytest.raises(FileNotFoundError):
        load_state(tmp_path / "missing.parquet")
    with pytest.raises(StateError):
        load_state(tmp_path)  # a directory is not a checkpoint file
