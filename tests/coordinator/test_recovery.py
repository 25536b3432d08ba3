"""Recovery never drops committed data silently (in-process, no Ray): a damaged or missing
journal is refused with the file, the offset and the rounds at stake, and changes nothing;
``accept_loss`` replays what is intact, counts what was dropped and keeps the damaged file."""

from __future__ import annotations

import glob
import hashlib
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_helpers import assert_state_equal, local_run, make_config, metrics_rounds

from coordinator import Coordinator
from librex_alloc import StateError


def _files(directory) -> dict:
    out = {}
    for root, _, names in os.walk(directory):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _crashed_run(env_n, tmp_path, rounds=25):
    """A run of ``rounds`` rounds (snapshots every 10) abandoned as a crash would."""
    from runtime_helpers import make_env

    env = make_env(env_n)
    coord, transport, _ = local_run(env, tmp_path / "ckpt", rounds=rounds, checkpoint_every=10)
    state = coord.policy_state()
    coord.abandon()
    return env, coord.config, transport, state


def _record_offsets(path) -> list[tuple[int, int, int | None]]:
    """(offset, end, round) of each record, parsed with the framing alone (old and new code)."""
    import struct

    data = open(path, "rb").read()
    out, pos = [], 0
    while pos + 12 <= len(data):
        _, length, _ = struct.unpack_from("<4sII", data, pos)
        out.append((pos, pos + 12 + length))
        pos += 12 + length
    return out


def _flip(path, offset, mask=0x04):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


@pytest.mark.parametrize("which", ["middle", "first"])
def test_a_damaged_journal_record_is_refused_and_nothing_changes(tmp_path, which):
    env, cfg, transport, _ = _crashed_run(200, tmp_path)
    journal = sorted(glob.glob(str(tmp_path / "ckpt" / "journal-*.log")))[-1]
    records = _record_offsets(journal)
    assert len(records) > 10
    start, end = records[len(records) // 2] if which == "middle" else records[0]
    _flip(journal, (start + end) // 2)
    before = _files(tmp_path / "ckpt")
    with pytest.raises(StateError) as err:
        Coordinator(cfg, transport)
    msg = str(err.value)
    assert "\n" not in msg and journal in msg and f"byte {start}" in msg
    assert re.search(r"rounds \d+-25 at stake", msg), msg
    assert "accept" in msg
    assert _files(tmp_path / "ckpt") == before  # nothing truncated, nothing written


def test_accepting_the_loss_replays_what_is_intact_and_keeps_the_damaged_file(tmp_path):
    env, cfg, transport, _ = _crashed_run(200, tmp_path)
    journal = sorted(glob.glob(str(tmp_path / "ckpt" / "journal-*.log")))[-1]
    records = _record_offsets(journal)
    start, end = records[len(records) // 2]
    _flip(journal, (start + end) // 2)
    damaged = open(journal, "rb").read()
    accepting = make_config(env, tmp_path / "ckpt", checkpoint_every=10, accept_loss=True)
    assert accepting.to_dict() == cfg.to_dict()  # not a setting: the checkpoint still fits
    coord = Coordinator(accepting, transport)
    lost = coord.counters["lost_records"]
    assert lost >= 1 and coord.recovery and journal in coord.recovery[0]
    assert 20 <= coord.round <= 25
    (kept,) = glob.glob(journal + ".damaged-*")
    assert open(kept, "rb").read() == damaged  # the damaged original, untouched
    after = coord.policy_state()
    coord.abandon()
    # the rewritten journal holds exactly what was replayed: a plain restore agrees
    again = Coordinator(cfg, transport)
    assert again.counters["lost_records"] == lost
    assert_state_equal(again.policy_state(), after)
    again.run(until_round=32)
    assert metrics_rounds(again)[-1] == 32


def test_a_missing_newest_journal_is_refused_then_accepted(tmp_path):
    env, cfg, transport, _ = _crashed_run(150, tmp_path)
    journal = sorted(glob.glob(str(tmp_path / "ckpt" / "journal-*.log")))[-1]
    os.unlink(journal)
    before = _files(tmp_path / "ckpt")
    with pytest.raises(StateError) as err:
        Coordinator(cfg, transport)
    msg = str(err.value)
    assert journal in msg and "missing" in msg and "after round 20" in msg
    assert _files(tmp_path / "ckpt") == before
    coord = Coordinator(make_config(env, tmp_path / "ckpt", checkpoint_every=10,
                                    accept_loss=True), transport)
    assert coord.round == 20 and coord.recovery
    coord.run(until_round=23)
    assert metrics_rounds(coord)[-3:] == [21, 22, 23]


def test_a_journal_is_created_before_its_snapshot(tmp_path, monkeypatch):
    from runtime_helpers import make_env

    env = make_env(60)
    coord, _, _ = local_run(env, tmp_path, rounds=3)
    seen = {}
    write = coord.store.write

    def spy(seq, state):
        seen["journal existed"] = os.path.exists(coord.store.journal_path(seq))
        return write(seq, state)

    monkeypatch.setattr(coord.store, "write", spy)
    coord.snapshot()
    assert seen == {"journal existed": True}
    coord.close()


def test_a_crash_between_journal_and_snapshot_loses_nothing(tmp_path):
    """The new journal exists, the snapshot does not (a crash in between): a plain restore."""
    from runtime_helpers import make_env

    env = make_env(100)
    coord, transport, _ = local_run(env, tmp_path, rounds=12, checkpoint_every=10)
    state = coord.policy_state()
    orphan = coord.store.journal_path(max(coord.store.journals()) + 1)
    open(orphan, "wb").close()
    coord.abandon()
    again = Coordinator(coord.config, transport)
    assert_state_equal(again.policy_state(), state)
    again.run(until_round=14)
    assert metrics_rounds(again)[-1] == 14


def test_a_history_without_a_snapshot_is_refused_for_another_configuration(tmp_path):
    """The first journal records the configuration: a journal-only checkpoint cannot be
    replayed by another coordinator (its decisions would diverge or, worse, not)."""
    from runtime_helpers import make_env

    from librex_alloc import PolicyConfig

    env = make_env(100)
    coord, transport, _ = local_run(env, tmp_path, rounds=5, checkpoint_every=1000,
                                    rows_per_part=2)
    coord.abandon()
    assert not coord.store.snapshots()
    before = _files(tmp_path)
    other = make_config(env, tmp_path, checkpoint_every=1000, rows_per_part=2,
                        policy=PolicyConfig(3, fairness="none", oracle="fast", seed=7,
                                            max_pending_rounds=20))
    with pytest.raises(StateError, match="another configuration"):
        Coordinator(other, transport)
    assert _files(tmp_path) == before  # the metrics parts too


@settings(max_examples=25, deadline=None)
@given(where=st.floats(0.0, 1.0, exclude_max=True), bit=st.integers(0, 7))
def test_no_bit_flip_in_the_newest_journal_restores_silently(tmp_path_factory, where, bit):
    """Anywhere in the newest journal, a flipped bit is refused (file and offset named), never
    restored silently to another state, and the files stay as they were."""
    from runtime_helpers import make_env

    tmp = tmp_path_factory.mktemp("flip")
    env = make_env(60)
    coord, transport, _ = local_run(env, tmp, rounds=14, checkpoint_every=10)
    coord.abandon()
    journal = coord.store.journal_path(max(coord.store.journals()))
    size = os.path.getsize(journal)
    _flip(journal, int(where * size), 1 << bit)
    before = _files(tmp)
    with pytest.raises(StateError, match="byte"):
        Coordinator(coord.config, transport)
    assert _files(tmp) == before
