"""The coordinator's history on disk: the write-ahead journal, snapshots, and the restore.

:class:`History` knows the files (a :class:`CheckpointStore` of numbered snapshot/journal
pairs) and the order of events; the coordinator knows what a record means. It logs every state
change (:meth:`History.log`), makes them durable before anything leaves
(:meth:`History.commit`), writes a snapshot with a fresh journal (:meth:`History.snapshot`),
and on start replays what is on disk (:meth:`History.restore`) through the coordinator's
callbacks.

Nothing committed is dropped silently: a journal missing beside its snapshot, or a damaged
record (not a torn tail, see :mod:`coordinator.journal`), raises :class:`JournalDamageError`
naming the file, the byte offset and the rounds at stake, before anything changes, unless the
loss is accepted (``accept_loss``). Then the intact records before the first problem are
replayed, the records after it are replayed while they stay consistent (the coordinator's
``replay_tentatively`` says whether one fits: each decision must reproduce its recorded
digest), the first one that does not ends the replay, and what was not replayed is counted.
The journals from the first problem on are then rewritten to hold exactly what was replayed
(so the next restore gives the same state); each original is kept beside it as
``<name>.damaged-<time>`` (or ``.dropped-<time>``). A torn tail of the last journal is cut
off, as it never held an acknowledged record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from coordinator.checkpoints import CheckpointStore
from coordinator.decision import digest
from coordinator.journal import (
    Journal,
    JournalDamageError,
    Record,
    config_diff,
    cut_torn_tail,
    decode_ids,
    encode_ids,
)
from librex_alloc import RoundRequest, StateError

#: the format of the coordinator's own part of a snapshot
FORMAT = "librex-alloc-coordinator/1"

_log = logging.getLogger(__name__)


def other_configuration(directory: str, diff) -> StateError:
    """The error for a checkpoint folder that holds another job's history."""
    return StateError(f"checkpoint {directory!r} belongs to a coordinator with another "
                      f"configuration (differs in {diff}); use another checkpoint directory")


@dataclass
class Restored:
    """What :meth:`History.restore` found: ``state`` (the snapshot's, or None), whether any
    history was replayed, and, when a loss was accepted, how many records were dropped and
    the problems' descriptions."""

    state: dict | None
    restored: bool
    fresh: bool = False  # no history at all: a new job
    lost: int = 0
    problems: list = field(default_factory=list)


class History:
    """The journal and snapshots of one coordinator's checkpoint folder (see the module
    docstring). ``crash(point)`` is the coordinator's fault-injection hook."""

    def __init__(self, store: CheckpointStore, fsync: bool,
                 crash: Callable[[str], None] = lambda point: None):
        self.store = store
        self.fsync = fsync
        self.crash = crash
        self.journal: Journal | None = None
        self.seq = 0
        #: True while a restore replays records: nothing is logged, no hook fires
        self.replaying = False
        #: whether the open journal holds a full round request (a later ALLOC may refer to it)
        self.has_request = False

    # ------------------------------------------------------------------- writing
    def log(self, kind: str, meta: dict, ids=None, arrays: dict | None = None) -> None:
        if self.replaying:
            return
        arrays = dict(arrays or {})
        if ids is not None:
            id_meta, id_arrays = encode_ids(ids)
            meta = dict(meta, **id_meta)
            arrays.update(id_arrays)
        self.journal.append(kind, meta, arrays)

    def commit(self) -> bool:
        """Make every logged record durable; False (nothing done) while replaying."""
        if self.replaying:
            return False
        self.journal.commit()
        return True

    def open_journal(self, seq: int, next_index: int = 0) -> None:
        self.journal = Journal(self.store.journal_path(seq), fsync=self.fsync,
                               next_index=next_index)
        self.has_request = False

    def snapshot(self, state: dict) -> str:
        """Write ``state`` as the next snapshot and switch to its journal (the caller has
        committed the old one, which stays complete: a fallback replays it)."""
        seq = max([self.seq, *self.store.snapshots(), *self.store.journals()]) + 1
        # the pair's journal first: a snapshot without its journal then means a lost one
        journal = Journal(self.store.journal_path(seq), fsync=self.fsync)
        try:
            self.store.sync_dir()
            path = self.store.write(seq, state)
        except BaseException:
            journal.close()
            raise
        self.crash("snapshot_written")
        self.journal.close()
        self.journal = journal
        self.has_request = False
        previous = [s for s in self.store.snapshots() if s < seq]
        self.store.prune(previous[-1] if previous else seq)
        self.seq = seq
        return path

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()

    def discard(self) -> None:
        """Drop the uncommitted records and close (as a crash of the process would)."""
        if self.journal is not None:
            self.journal.discard()
            self.journal.close()

    # ------------------------------------------------------------------- restore
    def restore(self, config: dict, accept_loss: bool,
                load: Callable[[dict | None, bool], None], replay: Callable[[Record], None],
                replay_tentatively: Callable[[Record], bool]) -> Restored:
        """Load the newest readable snapshot (``load(state, damaged)``; state None when there
        is none, damaged when a loss is accepted) and replay the journals after
        it (``replay(record)``; after a problem, ``replay_tentatively(record)``, which says
        whether the record fitted and changes nothing when it did not). ``config`` is the
        coordinator's configuration (``to_dict()``): a history of another configuration is
        refused before anything changes, as is damage unless ``accept_loss``."""
        plan = self.store.plan()
        problems = plan.problems()
        if problems and not accept_loss:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise JournalDamageError(
                f"cannot resume from {self.store.directory}: {plan.describe(problems[0])}"
                f"{more}; nothing was changed. Accept the loss explicitly (accept_loss=True, "
                f"--accept-loss) to replay what is intact and drop the rest")
        diff = plan.config_diff(config)
        if diff:  # checked here too for a history without a snapshot: before any change
            raise other_configuration(self.store.directory, diff)
        seq, state = plan.seq, plan.state
        restored = state is not None
        load(state, bool(problems))
        first_bad = {(p.seq, p.offset) for p in problems}
        kept: dict[int, list[Record]] = {}
        lost, stopped, tentative = 0, False, False
        self.replaying = True
        try:
            for jseq in plan.chain:
                scan = plan.scans.get(jseq)
                kept[jseq] = []
                if scan is None:  # a missing journal: what follows may not fit
                    tentative = True
                    continue
                self.has_request = False
                bad = sorted(d.offset for d in scan.damage if (jseq, d.offset) in first_bad)
                for d in scan.damage:
                    if (jseq, d.offset) in first_bad:
                        lost += d.lost_records if d.lost_records is not None else 1
                for r in scan.records:
                    if stopped:
                        lost += 1
                        continue
                    if bad and bad[0] < r.offset:
                        tentative = True
                    if tentative and not replay_tentatively(r):
                        stopped = True
                        lost += 1
                        continue
                    if not tentative:
                        replay(r)
                    kept[jseq].append(r)
                    restored = True
                if bad:
                    tentative = True
        finally:
            self.replaying = False
        self.seq = seq
        if plan.chain:
            last = plan.chain[-1]
            if problems:
                self._rewrite_journals(plan, kept, problems[0].seq)
            elif plan.scans[last].torn_tail is not None:
                cut = cut_torn_tail(plan.scans[last])
                _log.warning("%s: cut a torn tail of %d bytes (an interrupted, unacknowledged "
                             "write)", plan.scans[last].path, cut)
            indexes = [r.index for r in kept[last] if r.index is not None]
            self.open_journal(last, max(indexes) + 1 if indexes else len(kept[last]))
        else:
            self.open_journal(seq)
        return Restored(state, restored, not plan.chain and state is None, lost,
                        [plan.describe(p) for p in problems])

    def _rewrite_journals(self, plan, kept: dict, first_seq: int) -> None:
        """Journals from ``first_seq`` on get exactly the records replayed; originals that
        change are kept beside them with a suffix."""
        for jseq in plan.chain:
            if jseq < first_seq:
                continue
            path = self.store.journal_path(jseq)
            scan = plan.scans.get(jseq)
            data = b""
            if scan is not None:
                with open(path, "rb") as f:
                    data = f.read()
            content = b"".join(data[r.offset:r.end] for r in kept[jseq])
            if scan is not None and content == data:
                continue
            if scan is not None:
                label = "damaged" if scan.damage else "dropped"
                self.store.set_aside(path, label)
            self.store.replace_journal(jseq, content)


class Recovery:
    """The restore side of :class:`~coordinator.core.Coordinator` (a mixin): what its
    snapshot holds besides the policy, and what each journal record means on replay
    (:class:`History` calls :meth:`_load`, :meth:`_replay_record` and
    :meth:`_replay_tentatively`)."""

    def snapshot(self) -> str | None:
        """Write a full snapshot now (only between rounds) and start a new journal; returns
        its path (None mid-round: the journal already covers that state)."""
        with self._lock:
            if self._decided is not None:
                self._commit()
                return None
            self._commit()  # the old journal stays complete: a fallback replays it
            self.metrics.flush()
            return self.history.snapshot({"policy": self.policy.get_state(),
                                          "coordinator": self._own_state()})

    def _own_state(self) -> dict:
        dedup = [(r, n, rid, self._dedup[(n, rid)]) for r, keys in self._dedup_rounds.items()
                 for n, rid in keys]
        return {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "round": self.round,
            "budget": self.budget.copy(),
            "counters": dict(self.counters),
            "submitters": self.submitters.state(),
            "dedup": {
                "rounds": np.asarray([d[0] for d in dedup], np.int64),
                "names": [d[1] for d in dedup],
                "report_ids": [d[2] for d in dedup],
                "applied": np.asarray([d[3] for d in dedup], np.int64),
            },
        }

    def _set_own_state(self, st: dict) -> None:
        if st.get("format") != FORMAT:
            raise StateError(f"coordinator state: format {st.get('format')!r}")
        mine = self.config.to_dict()
        if st["config"] != mine:
            diff = sorted(k for k in mine if st["config"].get(k) != mine[k])
            raise other_configuration(self.store.directory, diff)
        self.round = int(st["round"])
        self.budget = np.asarray(st["budget"], dtype=np.float64)
        self.counters.update({k: int(v) for k, v in st["counters"].items()})
        self.submitters.load(st["submitters"])
        d = st["dedup"]
        for r, n, rid, applied in zip(d["rounds"].tolist(), d["names"], d["report_ids"],
                                      d["applied"].tolist()):
            self._dedup[(n, rid)] = applied
            self._dedup_rounds.setdefault(r, []).append((n, rid))

    def _restore(self) -> None:
        """Load the newest readable snapshot and replay the journals after it
        (:meth:`History.restore`: nothing committed is dropped silently)."""
        done = self.history.restore(self.config.to_dict(), self.config.accept_loss,
                                    self._load, self._replay_record, self._replay_tentatively)
        if done.fresh:  # a new job: the journal says whose history it holds
            self._log("CONFIG", {"config": self.config.to_dict()})
            self._commit()
        if done.problems:
            self.counters["lost_records"] += done.lost
            self.recovery = done.problems
            logging.getLogger(__name__).warning(
                "%s: resumed with the loss accepted: %d journal record(s) dropped, state at "
                "round %d; %s", self.store.directory, done.lost, self.round,
                "; ".join(self.recovery))
            self._log("REJ", {"counter": "lost_records", "n": done.lost})
        if done.restored or done.problems:
            self.counters["restarts"] += 1
            self._log("REJ", {"counter": "restarts", "n": 1})
            self._commit()

    def _load(self, state: dict | None, damaged: bool) -> None:
        if state is not None:
            policy = self.config.policy_class.from_state(state["policy"])
            if policy.config != self.config.policy:
                raise StateError(f"checkpoint {self.store.directory!r}: its policy "
                                 f"configuration differs from this coordinator's")
            self.policy = policy
            self._set_own_state(state["coordinator"])
        self.counters.setdefault("lost_records", 0)
        self.metrics.drop_after(self.round, set_aside="lost" if damaged else None)

    #: what the last restore accepted to lose (descriptions), empty when nothing
    recovery: list = []

    def _replay_tentatively(self, r: Record) -> bool:
        """Replay one record that follows lost ones; False (and nothing changed) when it does
        not fit the state: a decision for another round or one that differs from the recorded
        one, a metrics row for a round not decided, or any error."""
        meta = r.meta
        if r.kind == "ALLOC" and (self._decided is not None or
                                  int(meta["round"]) != self.round + 1):
            return False
        if r.kind == "METRICS" and (self._decided is None or
                                    int(meta["row"]["round"]) != self._decided.round):
            return False
        saved = None
        if r.kind == "ALLOC":
            saved = (self.policy.get_state(), self._prev_request, self._prev_key,
                     self.history.has_request, self._decided, self._reference)
        try:
            self._replay(r.kind, meta, r.arrays)
            return True
        except Exception:
            if saved is not None:
                self.policy = self.config.policy_class.from_state(saved[0])
                (_, self._prev_request, self._prev_key, self.history.has_request,
                 self._decided, self._reference) = saved
            return False

    def _replay_record(self, r: Record) -> None:
        self._replay(r.kind, r.meta, r.arrays)

    def _replay(self, kind: str, meta: dict, arrays: dict) -> None:
        if kind == "CONFIG":
            diff = config_diff(meta["config"], self.config.to_dict())
            if diff:
                raise other_configuration(self.store.directory, diff)
        elif kind == "REG":
            self._apply_register(meta["name"], meta["token_hash"], decode_ids(meta, arrays))
        elif kind == "UNREG":
            self._apply_unregister(meta["name"])
        elif kind == "LEAVE":
            self._apply_leave(meta["name"], decode_ids(meta, arrays))
        elif kind == "BUDGET":
            self.budget = arrays["budget"].astype(np.float64)
            self._prev_key = None
        elif kind == "REJ":
            self.counters[meta["counter"]] += int(meta["n"])
        elif kind == "DUP":
            self.counters["duplicate_reports"] += 1
        elif kind == "OBS":
            values = arrays["values"]
            rnd = int(meta["round"])
            self._observe(rnd, decode_ids(meta, arrays), values, meta["kind"])
            self._record_reports(rnd, meta["names"], meta["report_ids"], meta["sizes"], values)
        elif kind == "ALLOC":
            if meta["same"]:
                request = self._prev_request
            else:
                request = RoundRequest.build(decode_ids(meta, arrays), arrays["requests"],
                                             arrays["budget"], arrays["options"],
                                             n_resources=self.n_resources)
            layout = [tuple(x) for x in meta["layout"]]
            key = tuple((n, v) for n, v, _, _ in layout)
            d = self._allocate(int(meta["round"]), request, layout, arrays.get("expected"), key)
            if digest(d.allocation) != meta["digest"]:
                raise StateError(f"journal replay diverged at round {meta['round']}: the "
                                 f"decision differs from the one recorded")
        elif kind == "METRICS":
            self._apply_metrics(meta["row"])
        else:
            raise StateError(f"journal: unknown record kind {kind!r}")
