"""Tests of librex_alloc.checkpoint: exact round trips, atomic files, rejection of bad input."""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from pathlib import Path

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
from tests.conftest import assert_state_equal


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


def _restamp(table: pa.Table) -> pa.Table:
    """The table with a *valid* hash for its (possibly crafted) rows, to reach the decoder."""
    meta = {b"format": FORMAT.encode(), b"sha256": checkpoint.content_digest(table).encode()}
    return table.replace_schema_metadata(meta)


def _binary_as_string(values: list) -> pa.Array:
    """A string array holding arbitrary bytes (no UTF-8 validation), as a corrupt file would."""
    return pa.array(values, type=pa.binary()).view(pa.string())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace_schema_metadata(None),
        lambda t: t.replace_schema_metadata({"format": "librex-alloc-state/999"}),
        lambda t: t.replace_schema_metadata({"format": FORMAT}),  # no hash
        lambda t: t.replace_schema_metadata({"format": FORMAT, "sha256": "0" * 64}),
        lambda t: t.drop_columns(["json"]),
        lambda t: _restamp(t.select(["kind", "key", "dtype", "shape", "data", "json"])),
    ],
)
def test_corrupt_metadata_raises(mutate):
    with pytest.raises(StateError):
        table_to_state(mutate(_good_table()))


COLUMN_MUTATIONS = [
    lambda t: _replace(t, "data", [b"\x00" * 7, None, None]),
    lambda t: _replace(t, "dtype", ["|O", None, None]),
    lambda t: _replace(t, "dtype", ["<U3", None, None]),
    lambda t: _replace(t, "dtype", ["nonsense", None, None]),
    lambda t: _replace(t, "shape", [[-3], None, None]),
    lambda t: _replace(t, "shape", [[None], None, None]),
    lambda t: _replace(t, "kind", ["array", "blob", "dict"]),
    lambda t: _replace(t, "json", [None, '{"q": 1}', None]),
    lambda t: _replace(t, "json", [None, "not json", None]),
    lambda t: _replace(t, "json", [None, '{"i": "zz"}', None]),
    lambda t: _replace(t, "json", [None, '{"nan": "00"}', None]),  # struct.error
    lambda t: _replace(t, "json", [None, '{"f": "0x1p99999"}', None]),  # OverflowError
    lambda t: _replace(t, "json", [None, '{"np": ["<f8", "00"]}', None]),
    lambda t: _replace(t, "json", [None, "[" * 100_000 + "]" * 100_000, None]),  # recursion
    lambda t: _replace(t, "json", [None, '{"l": ' * 5000 + "[]" + "}" * 5000, None]),
    lambda t: _replace(t, "json", [None, None, None]),
    lambda t: _replace(t, "key", ["a", "a", "d"]),
    lambda t: _replace(t, "key", ["a", "a.c", "d"]),
    lambda t: _replace(t, "key", ["a", "d.c", "d"]),
    lambda t: _replace(t, "key", ["d.x", "b.c", "d"]),
    lambda t: t.set_column(5, t.schema.field(5), _binary_as_string([None, b'{"s":"\xff"}', None])),
    lambda t: t.set_column(0, t.schema.field(0), _binary_as_string([b"\xc3", b"b.c", b"d"])),
    lambda t: t.set_column(1, t.schema.field(1), _binary_as_string([b"arr\xffy", b"v", b"d"])),
]


@pytest.mark.parametrize("restamp", [False, True], ids=["stale-hash", "valid-hash"])
@pytest.mark.parametrize("mutate", COLUMN_MUTATIONS)
def test_corrupt_tables_raise(mutate, restamp):
    """Changed rows fail the hash; with a recomputed hash they fail in the decoder instead."""
    table = mutate(_good_table())
    if restamp:
        table = _restamp(table)
    with pytest.raises(StateError) as info:
        table_to_state(table)
    assert ("hash mismatch" in str(info.value)) is not restamp, str(info.value)


def test_table_carries_format_and_hash():
    table = _good_table()
    meta = table.schema.metadata
    assert meta[b"format"] == b"librex-alloc-state/2" == FORMAT.encode()
    assert meta[b"sha256"] == checkpoint.content_digest(table).encode()
    assert len(meta[b"sha256"]) == 64
    other = state_to_table({"a": np.arange(3.0), "b": {"c": [1, 3]}, "d": {}})
    assert other.schema.metadata[b"sha256"] != meta[b"sha256"]
    # nulls, empty values and field boundaries are all part of the serialization
    digest = checkpoint._digest
    row = [[b"ab"], [b"c"], [None], [None], [None], [None]]
    assert digest(row) != digest([[b"a"], [b"bc"], [None], [None], [None], [None]])
    assert digest(row) != digest([[b"ab"], [b"c"], [b""], [None], [None], [None]])
    assert digest(row) != digest([[b"ab"], [b"c"], [None], [[]], [None], [None]])
    assert digest([[b"k"], [b"array"], [b"<f8"], [[2, 3]], [b""], [None]]) != digest(
        [[b"k"], [b"array"], [b"<f8"], [[3, 2]], [b""], [None]])


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


def _rich_state() -> dict:
    """Nested dicts, float / int / bool / complex arrays, numpy scalars, strings, tuples,
    big ints, NaN and an RNG state: every kind of row a checkpoint holds."""
    rng = np.random.default_rng(7)
    return {
        "policy": {
            "posterior": {
                "alpha": rng.random(24),
                "beta": rng.random((4, 6)).astype(np.float32),
                "counts": rng.integers(0, 1000, 24),
                "active": rng.random(24) > 0.5,
                "phase": np.array([1 + 2j, complex(-0.0, math.inf)]),
            },
            "fairness": {"queues": np.zeros((0, 3)), "alpha": 1.0, "empty": {}},
            "round": np.int64(41),
        },
        "agent_ids": [("a", 1), ("b", (2, None)), "c"],
        "big": (2**200 + 7, -(2**70), True, -0.0, math.nan, "π . x"),
        "rng": np.random.default_rng(3).bit_generator.state,
    }


def _assert_same_state(a, b):
    assert_exact(a, b)  # bitwise, NaN payloads and types included
    assert_state_equal(a, b)


def _check_flips(raw: bytes, bits, path, original) -> tuple[int, int]:
    """Load ``raw`` with each bit in ``bits`` flipped: a StateError or the original state."""
    raised = same = 0
    for bit in bits:
        buf = bytearray(raw)
        buf[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(buf))
        try:
            back = load_state(path)
        except StateError as exc:
            assert str(path) in str(exc)
            raised += 1
            continue
        _assert_same_state(original, back)
        same += 1
    return raised, same


def test_single_bit_flips_raise_or_restore_exactly(tmp_path):
    """1,500 random bits of this 32,072-bit checkpoint plus its last 64 bytes (fixed seed,
    ~1.5 s). All 32,072 flips, checked once by a script: 20,212 raise, 11,860 restore the
    identical state, none differ. Before the content hash, 86 of 600 flips restored other
    counts."""
    state = _rich_state()
    good = tmp_path / "good.parquet"
    save_state(state, good)
    raw = good.read_bytes()
    bits = np.random.default_rng(2024).choice(8 * len(raw), size=1500, replace=False)
    tail = range(8 * len(raw) - 8 * 64, 8 * len(raw))  # footer length, magic, metadata end
    raised, same = _check_flips(raw, [*bits, *tail], tmp_path / "flipped.parquet", state)
    assert raised > 0 and same > 0  # both outcomes occur (footer statistics are not checked)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=states, where=st.floats(0.0, 1.0, exclude_max=True), bit=st.integers(0, 7))
def test_random_state_bit_flip_raises_or_restores(state, where, bit):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.parquet")
        save_state(state, path)
        with open(path, "rb") as f:
            raw = f.read()
        _check_flips(raw, [8 * int(where * len(raw)) + bit], Path(tmp) / "f.parquet", state)


def _v1_table(state: dict) -> pa.Table:
    return state_to_table(state).replace_schema_metadata({"format": "librex-alloc-state/1"})


def test_format_1_file_is_refused(tmp_path):
    path = tmp_path / "old.parquet"
    pq.write_table(_v1_table({"a": np.arange(3.0)}), path)
    with pytest.raises(StateError, match="librex-alloc-state/1.*no content hash") as info:
        load_state(path)
    assert str(path) in str(info.value) and "save it again" in str(info.value)
    with pytest.raises(StateError, match="no content hash"):
        table_to_state(_v1_table({"a": 1}))


def test_corrupt_and_foreign_files_raise(tmp_path):
    good = tmp_path / "good.parquet"
    save_state(_rich_state(), good)
    raw = good.read_bytes()

    files = {
        "empty": b"",
        "text": b"key,kind\na,array\n",
        "magic-only": b"PAR1",
        "garbage": b"PAR1" + np.random.default_rng(0).bytes(200) + b"PAR1",
        "appended": raw + b"trailing garbage",
        "appended-magic": raw + b"PAR1",
        "prepended": b"x" + raw,
    }
    for cut in (1, 4, 8, 100, len(raw) // 2, len(raw) - 9, len(raw) - 4, len(raw) - 1):
        files[f"truncated-{cut}"] = raw[:cut]
    for name, data in files.items():
        path = tmp_path / f"{name}.parquet"
        path.write_bytes(data)
        with pytest.raises(StateError) as info:
            load_state(path)
        assert str(path) in str(info.value), name

    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), foreign)
    no_meta = tmp_path / "no_meta.parquet"
    pq.write_table(state_to_table({"a": 1}).replace_schema_metadata(None), no_meta)
    stale = tmp_path / "stale.parquet"  # rows changed, hash kept
    pq.write_table(_replace(_good_table(), "data", [np.arange(3.0)[::-1].tobytes(), None, None])
                   .replace_schema_metadata(_good_table().schema.metadata), stale)
    for path in (foreign, no_meta, stale):
        with pytest.raises(StateError, match=str(path)):
            load_state(path)
    with pytest.raises(FileNotFoundError):
        load_state(tmp_path / "missing.parquet")
    with pytest.raises(StateError, match=str(tmp_path)):
        load_state(tmp_path)  # a directory is not a checkpoint file


@pytest.mark.parametrize(
    "column, values",
    [
        ("json", [None, b'{"s":"\xff"}', None]),
        ("json", [None, b'{"l":[{"s":"ok"},{"s":"\xed\xa0\x80"}]}', None]),  # surrogate
        ("key", [b"a", b"b.\xc3", b"d"]),
        ("dtype", [b"<f\x88", None, None]),
    ],
)
def test_invalid_utf8_with_valid_hash_raises(tmp_path, column, values):
    """A file whose hash matches but whose strings are not UTF-8 (crafted with pyarrow)."""
    table = _good_table()
    i = table.schema.get_field_index(column)
    table = _restamp(table.set_column(i, table.schema.field(i), _binary_as_string(values)))
    path = tmp_path / "bad-utf8.parquet"
    pq.write_table(table, path)
    with pytest.raises(StateError, match="UTF-8|UnicodeDecodeError") as info:
        load_state(path)
    assert str(path) in str(info.value)


def test_save_through_symlink_keeps_the_link(tmp_path):
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    target = real_dir / "ckpt.parquet"
    save_state({"v": 1}, target)
    target.chmod(0o600)
    link = link_dir / "latest.parquet"
    link.symlink_to(os.path.relpath(target, link_dir))
    chain = link_dir / "chain.parquet"
    chain.symlink_to(link)

    save_state({"v": 2}, link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert load_state(target) == {"v": 2} and load_state(link) == {"v": 2}
    save_state({"v": 3}, chain)
    assert chain.is_symlink() and link.is_symlink()
    assert load_state(target) == {"v": 3}
    assert target.stat().st_mode & 0o777 == 0o600  # the target's mode is kept
    assert sorted(os.listdir(real_dir)) == ["ckpt.parquet"]  # no temp file left anywhere
    assert sorted(os.listdir(link_dir)) == ["chain.parquet", "latest.parquet"]

    dangling = link_dir / "dangling.parquet"
    dangling.symlink_to(real_dir / "new.parquet")
    save_state({"v": 4}, dangling)
    assert dangling.is_symlink() and load_state(real_dir / "new.parquet") == {"v": 4}


def test_page_checksums_are_verified(tmp_path):
    """A flip inside a data page fails its Parquet CRC32 (pyarrow ≥ 15) or else the hash."""
    data = np.random.default_rng(0).random(1000)  # incompressible: stored verbatim by snappy
    path = tmp_path / "c.parquet"
    save_state({"a": data}, path)
    raw = bytearray(path.read_bytes())
    at = bytes(raw).find(data.tobytes()[800:832])
    assert at > 0
    raw[at] ^= 0x10
    path.write_bytes(bytes(raw))
    expected = "CRC|checksum" if checkpoint._READ_CHECKSUMS else "hash mismatch"
    with pytest.raises(StateError, match=expected):
        load_state(path)
