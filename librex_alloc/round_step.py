"""One round's bookkeeping, shared by :func:`librex_alloc.simulation.simulate` and the
coordinator (``coordinator/core.py``): the metrics row, the reference (the oracle on the true
means) and the delay/loss sampler of simulated feedback.

- :func:`round_row`: the columns a round's decision fixes: ``round``, ``n_rows``,
  ``n_allocated``, ``expected_reward``, ``oracle_reward``, ``regret`` (when the true means are
  known) and ``utilization_<resource>`` (spend over the budget, 0 where the budget is 0).
- :func:`fairness_columns`: ``gini_reward``, ``jain_reward``, ``gini_service``,
  ``jain_service`` of cumulative per-agent vectors (rewards below 0 count as 0).
- :class:`Reference`: the utilitarian oracle on the true means, solved again only when the
  rows, the budget or the means change.
- :class:`FeedbackSampler`: when each granted row's outcome arrives (rounds of delay, −1:
  never), from the environment's ``feedback_delays`` or a fixed delay range and report
  probability.
"""

from __future__ import annotations

import numpy as np

from librex_alloc import metrics, oracles
from librex_alloc._validation import check_scalar
from librex_alloc.environments.base import check_delay
from librex_alloc.errors import InvalidConfigError, LibrexError

#: the columns fairness_columns fills (NaN in rows where they are not computed)
FAIRNESS_COLUMNS = ("gini_reward", "jain_reward", "gini_service", "jain_service")


def resource_names(env_or_names, k: int) -> list[str]:
    """Column suffixes of the K resources: the environment's ``resource_names`` (or
    ``resources``) when it names them (the trace environments do), else ``0 … K−1``."""
    names = env_or_names if isinstance(env_or_names, (list, tuple)) else \
        getattr(env_or_names, "resource_names", None) or getattr(env_or_names, "resources", None)
    if not isinstance(names, (list, tuple)) or len(names) != k or \
            not all(isinstance(n, str) and n for n in names) or len(set(names)) != k:
        return [str(j) for j in range(k)]
    return [str(n) for n in names]


def round_row(rnd: int, fractions: np.ndarray, requests: np.ndarray, budget: np.ndarray,
              expected: np.ndarray | None = None, oracle_reward: float | None = None,
              util_budget: np.ndarray | None = None, resources: list[str] | None = None,
              oracle=None) -> dict:
    """The columns of round ``rnd`` its decision fixes (see the module docstring).

    fractions (n,), requests (n, K), budget (K,): the decision and its request. expected (n,):
    the true means of the rows, when known. oracle_reward: the reference's value (see
    :class:`Reference`). util_budget: what utilization is relative to (default ``budget``).
    resources: the resource names (default ``0 … K−1``). oracle: the decision's
    ``OracleResult``, for ``oracle_s`` (seconds in the policy's oracle) and ``oracle_gap``
    (its certificate). The row's ``_used`` (K,) is the spend (resource units), for the
    caller to pop.
    """
    rows = np.nonzero(fractions > 0)[0]
    frac = fractions[rows]
    k = requests.shape[1] if requests.ndim == 2 else len(budget)
    used = frac @ requests[rows] if len(rows) else np.zeros(k)
    row: dict = {"round": int(rnd), "n_rows": int(len(fractions)), "n_allocated": int(len(rows))}
    if expected is not None:
        row["expected_reward"] = float(expected[rows] @ frac)
        if oracle_reward is not None:
            row["oracle_reward"] = float(oracle_reward)
            row["regret"] = float(oracle_reward) - row["expected_reward"]
    ref = np.asarray(budget if util_budget is None else util_budget, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(ref > 0, used / np.where(ref > 0, ref, 1.0), 0.0)
    for name, u in zip(resources or resource_names(None, k), util.tolist()):
        row[f"utilization_{name}"] = u
    if oracle is not None:
        row["oracle_s"], row["oracle_gap"] = float(oracle.solve_time), float(oracle.gap)
    row["_used"] = used
    return row


def fairness_columns(reward: np.ndarray, service: np.ndarray) -> dict:
    """Gini and Jain indices of cumulative per-agent reward (clipped at 0) and service."""
    reward = np.maximum(np.asarray(reward, dtype=np.float64), 0)
    return {"gini_reward": metrics.gini(reward), "jain_reward": metrics.jain(reward),
            "gini_service": metrics.gini(service), "jain_service": metrics.jain(service)}


class Reference:
    """The utilitarian oracle on the true means (regret's reference).

    method / time_limit / gap_tolerance: passed to :func:`librex_alloc.oracles.solve`
    (``None``: its defaults). :meth:`solve` returns the cached result while the rows (groups,
    requests), the budget and the means are unchanged (the same arrays, or equal ones).
    ``quiet``: a failing solve gives ``None`` instead of raising (the runtime: a metric
    only, never a reason to stop the loop).
    """

    def __init__(self, method: str = "auto", time_limit: float | None = None,
                 gap_tolerance: float | None = None, quiet: bool = False):
        if method not in oracles.METHODS:
            raise InvalidConfigError(f"oracle_method: expected one of {oracles.METHODS}, got "
                                     f"{method!r}")
        self.method, self.time_limit, self.gap_tolerance = method, time_limit, gap_tolerance
        self.quiet = quiet
        self._key: tuple | None = None
        self._result = None

    def _same(self, key: tuple) -> bool:
        if self._key is None:
            return False
        return all(a is b or (a is not None and b is not None and np.array_equal(a, b))
                   for a, b in zip(key, self._key))

    def solve(self, means, requests, budget, groups, divisible: bool):
        """The oracle's result on these rows (cached, see the class docstring); ``None`` when
        ``quiet`` and the solve failed."""
        key = (requests, budget, groups, means, divisible)
        if self._same(key[:4]) and self._key[4] == divisible:
            return self._result
        kw = {}
        if self.time_limit is not None:
            kw["time_limit"] = self.time_limit
        if self.gap_tolerance is not None:
            kw["gap_tolerance"] = self.gap_tolerance
        try:
            result = oracles.solve(means, requests, budget, groups=groups, method=self.method,
                                   divisible=divisible, **kw)
        except LibrexError:
            if not self.quiet:
                raise
            result = None
        self._key, self._result = key, result
        return result

    def objective(self, means, requests, budget, groups, divisible: bool) -> float | None:
        res = self.solve(means, requests, budget, groups, divisible)
        return None if res is None else float(res.objective)


class FeedbackSampler:
    """When each granted row's outcome arrives.

    With neither ``delay`` nor ``report_prob`` given, an environment with
    ``feedback_delays(agent_index, options, rng)`` draws the delays (−1: never arrives);
    otherwise every outcome is reported with probability ``report_prob`` (default 1) after
    ``delay`` rounds (an int ≥ 0 or an inclusive ``(low, high)`` range drawn per row; default
    0). A fixed delay reported with certainty draws nothing from the generator.
    """

    def __init__(self, env=None, delay: int | tuple[int, int] | None = None,
                 report_prob: float | None = None):
        self.env_delays = getattr(env, "feedback_delays", None) \
            if delay is None and report_prob is None else None
        if not callable(self.env_delays):
            self.env_delays = None
        self.delay = check_delay(0 if delay is None else delay)
        report_prob = 1.0 if report_prob is None else report_prob
        check_scalar(report_prob, "report_prob", low=0.0, high=1.0)
        self.report_prob = float(report_prob)

    @property
    def fixed(self) -> bool:
        """Every outcome arrives after the same delay (nothing is drawn)."""
        return self.env_delays is None and self.delay[0] == self.delay[1] and \
            self.report_prob == 1.0

    def draw(self, agent_index: np.ndarray, options: np.ndarray, rng) -> np.ndarray:
        """Delays (int64, rounds; −1: lost) of the rows (environment agent indices and
        options); draws from ``rng`` only when there are rows and the delays are random."""
        n = len(agent_index)
        if self.fixed or not n:
            return np.full(n, self.delay[0], dtype=np.int64)
        if self.env_delays is not None:
            return np.asarray(self.env_delays(agent_index, options, rng), dtype=np.int64)
        keep = rng.random(n) < self.report_prob
        delays = rng.integers(self.delay[0], self.delay[1] + 1, size=n)
        return np.where(keep, delays, -1).astype(np.int64)


# -- the rounds file: one schema for simulate, demo, run and the evaluation -----------------
#: rows per Parquet row group (sized for analysis: a column chunk of ~0.5 MB per float column)
ROW_GROUP_ROWS = 65_536
#: the key of the run's configuration (JSON) in the file's key-value metadata
CONFIG_KEY = b"librex_alloc.config"


def _table(rows, schema=None):
    import pyarrow as pa

    if isinstance(rows, pa.Table):
        return rows if schema is None or rows.schema.equals(schema) else rows.cast(schema)
    if isinstance(rows, dict):
        return pa.table(rows, schema=schema)
    return pa.Table.from_pandas(rows, schema=schema, preserve_index=False)


def _with_config(schema, config: dict | None):
    import json

    meta = dict(schema.metadata or {})
    if config is not None:
        meta[CONFIG_KEY] = json.dumps(config, sort_keys=True, default=str).encode()
    return schema.with_metadata(meta)


class RoundsWriter:
    """Append rows to one Parquet file in row groups of ``row_group_rows`` (however small the
    appends), with the run's ``config`` (a JSON-able dict) in the file's metadata.

    ``append`` takes a pandas DataFrame, a pyarrow Table or a {column: list} dict; the first
    append fixes the schema unless ``schema`` is given. ``close`` writes the last, partial row
    group. Usable as a context manager.
    """

    def __init__(self, path, schema=None, config: dict | None = None,
                 row_group_rows: int = ROW_GROUP_ROWS):
        self.path, self.config = str(path), config
        self.row_group_rows = int(row_group_rows)
        if self.row_group_rows < 1:
            raise InvalidConfigError("row_group_rows: expected an int ≥ 1")
        self.schema = None if schema is None else _with_config(schema, config)
        self._writer = None
        self._pending: list = []
        self._n = 0
        self.rows = 0
        if self.schema is not None:  # the file exists from the start (a run's part in progress)
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self.path, self.schema)

    def append(self, rows) -> None:
        t = _table(rows, None if self.schema is None else self.schema.remove_metadata())
        if self.schema is None:
            self.schema = _with_config(t.schema, self.config)
        if not t.num_rows:
            return
        self._pending.append(t)
        self._n += t.num_rows
        self.rows += t.num_rows
        if self._n >= self.row_group_rows:
            self._write(final=False)

    def _write(self, final: bool) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema)
        if not self._pending:
            return
        t = pa.concat_tables(self._pending).replace_schema_metadata(self.schema.metadata)
        full = t.num_rows if final else t.num_rows - t.num_rows % self.row_group_rows
        if full:
            self._writer.write_table(t.slice(0, full), row_group_size=self.row_group_rows)
        rest = t.slice(full)
        self._pending, self._n = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        if self.schema is None:  # nothing appended and no schema: no file
            return
        self._write(final=True)
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_rounds(rows, path, config: dict | None = None,
                 row_group_rows: int = ROW_GROUP_ROWS) -> str:
    """Write ``rows`` (a DataFrame, Table or {column: list}) as one Parquet file at ``path``
    atomically (a temporary file in the same folder, then ``os.replace``), the run's
    ``config`` in its metadata; returns the path."""
    import os
    import tempfile

    path = str(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        with RoundsWriter(tmp, config=config, row_group_rows=row_group_rows) as w:
            w.append(rows)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _files(path) -> list[str]:
    import glob
    import os

    path = str(path)
    if os.path.isdir(path):  # a dataset of parts (a resumed run appends one per part)
        return sorted(glob.glob(os.path.join(path, "part-*.parquet")))
    return [path]


def read_rounds(path, columns: list[str] | None = None):
    """The rows of a rounds file as a DataFrame, or of a folder of parts
    (``part-*.parquet``, a resumed run's dataset) one row per round, sorted by round: when a
    resume played rounds again, the newer part's rows replace the older."""
    import os

    import pandas as pd
    import pyarrow.parquet as pq

    files = _files(path)
    frames = [pq.read_table(f, columns=columns).to_pandas() for f in files]
    if not frames:
        return pd.DataFrame(columns=columns or [])
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if os.path.isdir(str(path)) and "round" in df.columns:
        df = df.drop_duplicates("round", keep="last").sort_values("round", kind="stable")
        df = df.reset_index(drop=True)
    return df


def read_config(path) -> dict | None:
    """The run's configuration stored in a rounds file (the newest part of a folder), or
    ``None`` when it has none."""
    import json

    import pyarrow.parquet as pq

    files = _files(path)
    if not files:
        return None
    meta = pq.read_schema(files[-1]).metadata or {}
    text = meta.get(CONFIG_KEY)
    return None if text is None else json.loads(text)
