"""Snapshot and journal files of one coordinator, in a directory given by the user.

``snapshot-<seq>.parquet``: a full state (``librex_alloc.save_state``: atomic, hashed);
``journal-<seq>.log``: every state change after snapshot ``seq`` (seq 0: the empty start).
A restart loads the newest snapshot that reads back (an unreadable one falls back to the
previous) and replays the journals from its seq on, in order. The two newest snapshots and the
journals after the older of them are kept; older files are deleted.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import time

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
        if self.journals() and self.journals()[0] != 0:
            raise StateError(f"{self.directory}: no readable snapshot and the journal does not "
                             f"start at the beginning ({'; '.join(errors)})")
        return 0, None, errors

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
