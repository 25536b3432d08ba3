"""Per-round metrics streamed to Parquet in bounded memory.

Rows are kept in preallocated column buffers of ``rows_per_part`` rows; a full buffer (and
every coordinator snapshot) is written as one Parquet part file ``part-<first>-<last>.parquet``
(temp file + ``os.replace``), then the buffer is reused. Memory stays at one buffer whatever
the number of rounds. After a restart the parts newer than the restored snapshot are deleted
(the journal replays their rows), so no row is written twice. :func:`consolidate` streams the
parts into one file in row groups sized for analysis (``round_step.ROW_GROUP_ROWS``). Every
part carries the coordinator's configuration (JSON) in its metadata (``read_config``).
"""

from __future__ import annotations

import glob
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from librex_alloc.round_step import RoundsWriter, read_config, resource_names, write_rounds

_PART = re.compile(r"part-(\d{12})-(\d{12})\.parquet$")

#: Columns every metrics row has (the utilization_k columns follow, one per resource).
BASE_COLUMNS = (
    ("round", "int64"), ("n_submitters", "int64"), ("n_missing", "int64"),
    ("n_rows", "int64"), ("n_allocated", "int64"), ("reward", "float64"),
    ("n_reported", "int64"), ("expected_reward", "float64"), ("oracle_reward", "float64"),
    ("regret", "float64"), ("gini_reward", "float64"), ("jain_reward", "float64"),
    ("gini_service", "float64"), ("jain_service", "float64"), ("oracle_gap", "float64"),
    ("oracle_s", "float64"),
    ("submit_s", "float64"), ("decide_s", "float64"), ("commit_s", "float64"),
    ("push_s", "float64"), ("report_s", "float64"), ("metrics_s", "float64"),
    ("checkpoint_s", "float64"), ("round_s", "float64"),
    ("outcomes_applied", "int64"), ("duplicate_reports", "int64"),
    ("rejected_forged", "int64"), ("rejected_not_owner", "int64"),
    ("rejected_not_allocated", "int64"), ("rejected_replay", "int64"),
    ("rejected_invalid", "int64"), ("rejected_submissions", "int64"),
    ("restarts", "int64"), ("rejected_control", "int64"), ("ungranted_rows", "int64"),
)


#: The phase-time columns (seconds) and the short labels the printed tables and the
#: telemetry tags use for them (``decide_s`` keeps its historical label "solve").
PHASE_LABELS = {"submit_s": "submit", "decide_s": "solve", "commit_s": "commit",
                "push_s": "push", "report_s": "report", "metrics_s": "metrics",
                "checkpoint_s": "checkpoint", "round_s": "round"}


def phase_label(column: str) -> str:
    """The printed label of a phase-time column (``decide_s`` -> ``solve``)."""
    return PHASE_LABELS[column]


def columns(n_resources: int, names=None) -> list[tuple[str, str]]:
    """The metrics columns; ``names``: the resources' names (default ``0 … K−1``)."""
    return list(BASE_COLUMNS) + [(f"utilization_{r}", "float64")
                                 for r in resource_names(names, n_resources)]


class MetricsLog:
    """Column buffers of ``rows_per_part`` rows, flushed to part files in ``directory``."""

    def __init__(self, directory: str, n_resources: int, rows_per_part: int = 1000,
                 config: dict | None = None, resources=None):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.resources = resource_names(resources, n_resources)
        self.columns = columns(n_resources, self.resources)
        self.config = config
        self.schema = pa.schema([(name, dtype) for name, dtype in self.columns])
        self.rows_per_part = int(rows_per_part)
        self._buf = {name: np.zeros(self.rows_per_part, dtype) for name, dtype in self.columns}
        self._n = 0

    # -- writing -----------------------------------------------------------------------
    def append(self, row: dict) -> None:
        """One row (missing columns: NaN, or 0 for integer columns)."""
        i = self._n
        for name, dtype in self.columns:
            self._buf[name][i] = row.get(name, np.nan if dtype == "float64" else 0)
        self._n += 1
        if self._n == self.rows_per_part:
            self.flush()

    def flush(self) -> str | None:
        """Write the buffered rows as one part file (atomic); returns its path."""
        if not self._n:
            return None
        n = self._n
        table = pa.table({name: self._buf[name][:n].copy() for name, _ in self.columns},
                         schema=self.schema)
        first, last = int(self._buf["round"][0]), int(self._buf["round"][n - 1])
        path = os.path.join(self.directory, f"part-{first:012d}-{last:012d}.parquet")
        tmp = path + ".tmp"
        write_rounds(table, tmp, config=self.config)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._n = 0
        return path

    def drop_after(self, rnd: int, set_aside: str | None = None) -> None:
        """Delete part files holding rounds > ``rnd`` (a restart replays them); with
        ``set_aside``, rename them ``<part>.<set_aside>`` instead (a restore that accepted a
        loss: they may hold the only copy of the lost rounds' rows)."""
        for path, first, _ in self.parts():
            if first > rnd:
                if set_aside:
                    os.replace(path, f"{path}.{set_aside}")
                else:
                    os.unlink(path)
        for tmp in glob.glob(os.path.join(self.directory, "*.tmp")):
            os.unlink(tmp)

    # -- reading -----------------------------------------------------------------------
    def parts(self) -> list[tuple[str, int, int]]:
        """(path, first round, last round) of every part, in round order."""
        out = []
        for path in glob.glob(os.path.join(self.directory, "part-*.parquet")):
            m = _PART.search(path)
            if m:
                out.append((path, int(m.group(1)), int(m.group(2))))
        return sorted(out, key=lambda p: p[1])

    def rows_since(self, after_round: int, limit: int = 10_000) -> dict[str, list]:
        """Rows with round > ``after_round`` (at most ``limit``), as {column: list}."""
        out: dict[str, list] = {name: [] for name, _ in self.columns}
        n = 0
        for path, _, last in self.parts():
            if last <= after_round:
                continue
            t = pq.read_table(path)
            rounds = t.column("round").to_numpy()
            keep = np.nonzero(rounds > after_round)[0][: limit - n]
            for name, _ in self.columns:
                out[name].extend(t.column(name).to_numpy()[keep].tolist())
            n += len(keep)
            if n >= limit:
                return out
        rounds = self._buf["round"][: self._n]
        keep = np.nonzero(rounds > after_round)[0][: limit - n]
        for name, _ in self.columns:
            out[name].extend(self._buf[name][keep].tolist())
        return out

    @property
    def buffered(self) -> int:
        return self._n


def consolidate(directory: str, path: str) -> int:
    """Stream every part of ``directory`` into one Parquet file with a
    :class:`~librex_alloc.round_step.RoundsWriter` (row groups of ``ROW_GROUP_ROWS`` rows, not
    one per part; the configuration of the newest part in the metadata); returns the number
    of rows. Memory: about one row group."""
    log_parts = sorted(
        (p for p in glob.glob(os.path.join(directory, "part-*.parquet")) if _PART.search(p)),
        key=lambda p: int(_PART.search(p).group(1)))
    if not log_parts:
        return 0
    config = read_config(log_parts[-1])
    with RoundsWriter(path + ".tmp", config=config) as writer:
        for p in log_parts:
            writer.append(pq.read_table(p).replace_schema_metadata(None))
    os.replace(path + ".tmp", path)
    return writer.rows
