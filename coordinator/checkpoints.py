"""Snapshot and journal files of one coordinator, in a directory given by the user.

``snapshot-<seq>.parquet``: a full state (``librex_alloc.save_state``: atomic, hashed);
``journal-<seq>.log``: every state change after snapshot ``seq`` (seq 0: the empty start).
A restart loads the newest snapshot that reads back (an unreadable one falls back to the
previous) and replays the journals from its seq on, in order. The two newest snapshots and the
journals after the older of them are kept; older files are deleted.

Snapshots and journals come in pairs: journal ``seq`` is created (and its directory entry
made durable) *before* snapshot ``seq`` is written, so a snapshot without its journal means
that journal was lost, with every change after the snapshot (:meth:`CheckpointStore.plan`
reports it; the coordinator refuses to resume unless the loss is accepted).
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import time
from dataclasses import dataclass, field

from coordinator.journal import JournalScan, config_diff, scan_journal
from librex_alloc import StateError, load_state, save_state

_SNAP = re.compile(r"snapshot-(\d{8})\.parquet$")
_JOUR = re.compile(r"journal-(\d{8})\.log$")


class CheckpointStore:
    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)

    def acquire(self, timeout: float = 60.0) -> None:
        """Take the directory's exclusive lock (``flock`` on ``LOCK``), waiting up to
        ``timeout`` s for a previous coordinator process to die: two incarnations never write
        the same journal (a node being removed may still run the old one for a moment).
        :class:`StateError` if it stays taken."""
        fd = os.open(os.path.join(self.directory, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                return
            except BlockingIOError:
                if time.monotonic() >= end:
                    os.close(fd)
                    raise StateError(f"{self.directory}: in use by another coordinator "
                                     f"(its lock is held)") from None
                time.sleep(0.05)

    def release(self) -> None:
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock
            self._lock_fd = None

    def snapshot_path(self, seq: int) -> str:
        return os.path.join(self.directory, f"snapshot-{seq:08d}.parquet")

    def journal_path(self, seq: int) -> str:
        return os.path.join(self.directory, f"journal-{seq:08d}.log")

    def _seqs(self, pattern: re.Pattern, glob_pat: str) -> list[int]:
        out = []
        for path in glob.glob(os.path.join(self.directory, glob_pat)):
            m = pattern.search(path)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def snapshots(self) -> list[int]:
        return self._seqs(_SNAP, "snapshot-*.parquet")

    def journals(self) -> list[int]:
        return self._seqs(_JOUR, "journal-*.log")

    def is_empty(self) -> bool:
        return not self.snapshots() and not self.journals()

    def load_latest(self) -> tuple[int, dict | None, list[str]]:
        """(seq, state or None, errors): the newest snapshot that loads; seq 0 / None when
        there is none (then journal-00000000 must be the start of the history)."""
        errors = []
        for seq in reversed(self.snapshots()):
            try:
                return seq, load_state(self.snapshot_path(seq)), errors
            except (StateError, OSError) as exc:
                errors.append(f"snapshot {seq}: {exc}")
        if (errors or self.journals()) and 0 not in self.journals():
            raise StateError(f"{self.directory}: no readable snapshot and the journal does not "
                             f"start at the beginning ({'; '.join(errors)})")
        return 0, None, errors

    def sync_dir(self) -> None:
        """Make the directory's entries (new, renamed files) durable."""
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def plan(self) -> RecoveryPlan:
        """What a restart would restore, read-only: the newest readable snapshot, the journals
        to replay (scanned) and what is missing or damaged (:class:`StateError` when nothing
        readable is left). See :meth:`RecoveryPlan.problems`."""
        seq, state, errors = self.load_latest()
        journals = [s for s in self.journals() if s >= seq]
        missing = [s for s in self.snapshots() if s >= seq and s not in journals]
        chain = sorted(set(journals) | set(missing))
        scans = {s: scan_journal(self.journal_path(s)) for s in journals}
        return RecoveryPlan(self, seq, state, errors, chain,
                            {s: scans[s] for s in journals if scans[s] is not None},
                            missing + [s for s in journals if scans[s] is None])

    def set_aside(self, path: str, label: str) -> str:
        """Keep a copy of ``path`` as ``<path>.<label>-<UTC time>`` (a hard link when the file
        system allows, else a copy); the original is left in place. Returns the copy's path."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = f"{path}.{label}-{stamp}"
        n = 1
        while os.path.exists(target):
            n += 1
            target = f"{path}.{label}-{stamp}-{n}"
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        return target

    def replace_journal(self, seq: int, content: bytes) -> None:
        """Atomically give journal ``seq`` the bytes ``content`` (temp file + fsync +
        ``os.replace``)."""
        path = self.journal_path(seq)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.sync_dir()

    def write(self, seq: int, state: dict) -> str:
        path = self.snapshot_path(seq)
        save_state(state, path)
        return path

    def prune(self, keep_from: int) -> None:
        """Delete snapshots and journals with seq < ``keep_from``."""
        for seq in self.snapshots():
            if seq < keep_from:
                os.unlink(self.snapshot_path(seq))
        for seq in self.journals():
            if seq < keep_from:
                os.unlink(self.journal_path(seq))


@dataclass
class Problem:
    """Something between the restored snapshot and the newest journal record that is lost:
    a missing journal (``offset`` None) or damaged bytes; ``position``: (journal seq, byte
    offset) where it sits in the replay order."""

    seq: int
    path: str
    offset: int | None
    length: int
    reason: str
    lost_records: int | None

    def where(self) -> str:
        if self.offset is None:
            return f"journal {self.path} is missing"
        return (f"journal {self.path} is damaged at byte {self.offset} ({self.reason}, "
                f"{self.length} bytes unreadable"
                + (f", {self.lost_records} record(s) lost" if self.lost_records else "") + ")")


@dataclass
class RecoveryPlan:
    """The restore a restart would do (see :meth:`CheckpointStore.plan`)."""

    store: CheckpointStore
    seq: int
    state: dict | None
    snapshot_errors: list
    chain: list[int]  # journal seqs to replay, in order (missing ones included)
    scans: dict[int, JournalScan]
    missing: list[int]
    _problems: list | None = field(default=None, repr=False)

    def config(self) -> dict | None:
        """The configuration (``CoordinatorConfig.to_dict()``, as JSON gives it back) of the
        coordinator whose checkpoint this is: from the snapshot, else from the first journal's
        first record; None when neither says."""
        if self.state is not None:
            return self.state["coordinator"]["config"]
        first = self.scans.get(self.chain[0]) if self.chain else None
        if first is not None and first.records and first.records[0].kind == "CONFIG":
            return first.records[0].meta["config"]
        return None

    def config_diff(self, mine: dict) -> list[str] | None:
        """Keys in which the checkpoint's configuration differs from ``mine`` (a
        ``to_dict()``), compared as the coordinator's restore compares them; None when the
        checkpoint does not record it."""
        theirs = self.config()
        if theirs is None:
            return None
        if self.state is None:  # from the journal: as JSON gives it back
            return config_diff(theirs, mine)
        return sorted(k for k in mine if theirs.get(k) != mine[k])

    @property
    def base_round(self) -> int:
        return int(self.state["coordinator"]["round"]) if self.state is not None else 0

    def problems(self) -> list[Problem]:
        """Missing journals and damage that may hold committed records, in replay order. A
        torn tail (see :mod:`coordinator.journal`) of the last journal is not one."""
        if self._problems is not None:
            return self._problems
        out = []
        for i, seq in enumerate(self.chain):
            path = self.store.journal_path(seq)
            scan = self.scans.get(seq)
            if scan is None:
                out.append(Problem(seq, path, None, 0, "missing", None))
                continue
            last = i == len(self.chain) - 1
            for d in scan.damage:
                if d.torn and last:
                    continue
                out.append(Problem(seq, path, d.offset, d.end - d.offset, d.reason,
                                   d.lost_records))
        self._problems = out
        return out

    def rounds_around(self, p: Problem) -> tuple[int, int | None, int]:
        """(last round committed before ``p``, newest round named after it or None, intact
        records after it)."""
        before, after, n_after = self.base_round, None, 0
        for seq in self.chain:
            scan = self.scans.get(seq)
            for r in (scan.records if scan is not None else []):
                rnd = r.round()
                if seq < p.seq or (seq == p.seq and p.offset is not None and
                                   r.offset < p.offset):
                    if r.kind == "METRICS":
                        before = max(before, rnd)
                else:
                    n_after += 1
                    if rnd is not None:
                        after = rnd if after is None else max(after, rnd)
        return before, after, n_after

    def describe(self, p: Problem) -> str:
        """One line: the file, the offset and the rounds at stake."""
        before, after, n_after = self.rounds_around(p)
        if after is not None and after > before:
            stake = f"rounds {before + 1}-{after} at stake"
        else:
            stake = f"changes after round {before} at stake"
        return (f"{p.where()}; {n_after} intact record(s) after it; {stake}")
