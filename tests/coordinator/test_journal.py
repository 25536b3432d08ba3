"""The journal's framing: a damaged record is found, reported and skipped, never truncated."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.journal import (
    Journal,
    JournalDamageError,
    cut_torn_tail,
    read_journal,
    scan_journal,
)


def _write(path, n=8):
    j = Journal(str(path), fsync=False)
    for i in range(n):
        j.append("OBS", {"round": i + 1, "kind": "reward"},
                 {"ids": np.arange(i + 3, dtype=np.int64), "values": np.full(i + 3, 0.5)})
        j.commit()
    j.close()
    return path.read_bytes()


def _same(rec, i):
    return rec.kind == "OBS" and rec.meta["round"] == i + 1 and rec.index == i and \
        np.array_equal(rec.arrays["ids"], np.arange(i + 3))


def test_clean_journal_reads_back_with_indexes(tmp_path):
    _write(tmp_path / "j.log")
    scan = scan_journal(str(tmp_path / "j.log"))
    assert not scan.damage and len(scan.records) == 8
    assert all(_same(r, i) for i, r in enumerate(scan.records))
    assert scan.next_index == 8
    assert scan_journal(str(tmp_path / "missing.log")) is None


@given(data=st.data())
def test_a_bit_flip_anywhere_loses_only_the_record_it_hits(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("j") / "j.log"
    raw = _write(path)
    clean = scan_journal(str(path)).records
    pos = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(raw)
    bad[pos] ^= 1 << bit
    path.write_bytes(bytes(bad))
    scan = scan_journal(str(path))
    hit = [i for i, r in enumerate(clean) if r.offset <= pos < r.end]
    # every other record is found again (resynchronised), the hit one is not returned
    assert [r.index for r in scan.records] == [i for i in range(8) if i not in hit]
    assert all(_same(r, r.index) for r in scan.records)
    (d,) = scan.damage
    assert d.offset <= pos < d.end and not d.torn  # a flip is never mistaken for a torn tail
    if hit[0] < 7:
        assert d.lost_records == 1
    with pytest.raises(JournalDamageError, match=f"byte {d.offset}"):
        list(read_journal(str(path), truncate=True))
    assert path.read_bytes() == bytes(bad)  # the reader changed nothing


@given(data=st.data())
def test_a_write_cut_anywhere_in_the_last_commit_is_a_torn_tail(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("j") / "j.log"
    raw = _write(path)
    last = scan_journal(str(path)).records[-1]
    cut = data.draw(st.integers(last.offset + 1, len(raw) - 1))
    if data.draw(st.booleans()):  # the file system extended the file, data never written
        path.write_bytes(raw[:last.offset] + b"\0" * (cut - last.offset))
    else:
        path.write_bytes(raw[:cut])
    scan = scan_journal(str(path))
    assert [r.index for r in scan.records] == list(range(7))
    assert scan.torn_tail is not None and not scan.harmful
    assert [k for k, _, _ in read_journal(str(path))] == ["OBS"] * 7
    assert cut_torn_tail(scan) > 0
    assert path.read_bytes() == raw[:last.offset]


def test_a_complete_last_record_with_a_bad_crc_is_not_torn(tmp_path):
    path = tmp_path / "j.log"
    raw = bytearray(_write(path))
    raw[-1] ^= 0x10
    path.write_bytes(bytes(raw))
    scan = scan_journal(str(path))
    assert len(scan.records) == 7 and scan.harmful and scan.torn_tail is None
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(JournalDamageError):
        list(read_journal(str(path), truncate=True))
    assert [k for k, _, _ in read_journal(str(path), accept_loss=True)] == ["OBS"] * 7
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_appending_continues_the_indexes(tmp_path):
    path = tmp_path / "j.log"
    _write(path, 3)
    j = Journal(str(path), fsync=False, next_index=scan_journal(str(path)).next_index)
    j.append("REJ", {"counter": "restarts", "n": 1})
    j.close()
    assert [r.index for r in scan_journal(str(path)).records] == [0, 1, 2, 3]
