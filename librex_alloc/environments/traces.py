"""Environments built from real cluster traces (read from files; nothing ships in the package).

Alibaba GPU cluster, ``cluster-trace-gpu-v2023`` (Weng et al., USENIX ATC '23) —
:class:`AlibabaGpuEnvironment`
    Files: ``openb_pod_list_default.csv`` (8,152 pods) and ``openb_node_list_all_node.csv``
    (1,523 nodes), in one folder.

    - **agents**: ``n_agents`` pods drawn from the pod list with ``seed`` (without replacement
      when ``n_agents`` ≤ the number of pods, else with replacement); agent i has one option
      and id i; ``pod_rows`` holds their rows in the file.
    - **requests** (resource units of the trace, unchanged), K = 4 by default (``resources``
      picks a subset, in the given order): ``cpu_milli`` (milli-cores), ``memory_mib`` (MiB),
      ``num_gpu`` (GPU devices touched; a shared GPU counts as one) and ``gpu_milli`` =
      ``num_gpu × gpu_milli`` (the GPU share, milli-GPU). The same request every round.
    - **budget** (per round, same units), one of: ``tightness`` τ: ``τ · Σ_i r_i`` over the
      agents; ``n_nodes``: the summed capacities of that many nodes drawn with ``seed``
      (without replacement when there are enough; ``cpu_milli``, ``memory_mib``, ``gpu``
      devices and ``1000 · gpu`` milli-GPU; ``node_rows`` holds their rows); by
      default the cluster's capacity per pod times the number of agents: ``n_agents / P ·
      Σ_nodes capacity`` (P pods in the file).
    - **reward**: Bernoulli. A pod's recorded final phase is a success when it is
      ``Succeeded`` or ``Running`` and a failure when ``Failed`` or ``Pending``; the true mean
      of agent i is the success rate, over every pod of the file read, of its group:
      ``outcome_groups="qos"`` (LS / BE / Burstable / Guaranteed) or ``"qos_gpu"`` (QoS ×
      GPU class: ``none`` 0 GPU, ``shared`` 1 GPU with gpu_milli < 1000, ``one`` 1 whole GPU,
      ``multi`` > 1 GPU). ``group_means`` maps each group to its rate.

Bitbrains GWA-T-12 ``Rnd``, VM 1 of July 2013 (Shen, van Beek & Iosup, CCGrid 2015) —
:class:`BitbrainsEnvironment`
    File: ``2013-7/1.csv`` (8,260 samples, one per 5 minutes over 30 days; ``;``+tab
    separated; the ``Timestamp [ms]`` column holds Unix seconds).

    - **series**: usage of ``cpu`` (MHz), ``memory`` (KB), ``disk`` (read + write, KB/s) and
      ``network`` (received + transmitted, KB/s), units unchanged; ``resources`` picks a
      subset. Round t is trace time ``(t − 1) · step_seconds`` (default 300 s) after the first
      sample, wrapping around after the trace's span; the value at a time is the latest sample
      at or before it (gaps in the trace hold the last value).
    - **agents**: ``n_agents`` copies of the VM shifted in time: agent i starts at an offset
      ``o_i`` drawn with ``seed`` (a multiple of ``step_seconds`` within the span), so agents
      are the VM on different days and times of day. One option, id i.
    - ``vary="demand"`` (time-varying demand): agent i requests, in round t, the VM's usage
      at time ``o_i + (t − 1) · step``; the budget is fixed: ``τ · n · (mean usage over the
      trace)``.
    - ``vary="budget"`` (time-varying budget): agent i requests, every round, the VM's mean
      usage over the 24 h from ``o_i``; the budget of round t is ``τ · Σ_i r_i · f_t / f̄``,
      with ``f_t = 1 − usage_t / capacity_t`` the VM's free share at time ``(t − 1) · step``
      (capacity: the provisioned CPU and memory; the trace maximum for disk and network) and
      ``f̄`` its mean over the trace: the capacity left by a foreground VM, τ on average.
    - **reward**: the trace records no outcome: Bernoulli with true means drawn uniformly
      from ``mean_range`` with ``seed``.

Where files are read (:func:`~librex_alloc.environments.base.find_data`): ``path`` (the
dataset's folder; for Bitbrains also the CSV itself), else ``$LIBREX_DATA/<dataset>/``, else
``../shared/data/<dataset>/`` beside the repository (``alibaba_gpu_v2023``,
``bitbrains_rnd``). Terms: research use with attribution (see each folder's ``SOURCE.md``).
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from librex_alloc._validation import check_scalar, expect_keys, state_array
from librex_alloc.environments.base import (
    EnvironmentRound,
    as_round,
    check_choice,
    check_config,
    check_int,
    check_round,
    find_data,
    sample_rewards,
)
from librex_alloc.errors import InvalidConfigError, InvalidInputError, StateError
from librex_alloc.request import RoundRequest

ALIBABA_DATASET = "alibaba_gpu_v2023"
POD_FILE = "openb_pod_list_default.csv"
NODE_FILE = "openb_node_list_all_node.csv"
ALIBABA_RESOURCES = ("cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
SUCCESS_PHASES = ("Succeeded", "Running")
OUTCOME_GROUPS = ("qos", "qos_gpu")

BITBRAINS_DATASET = "bitbrains_rnd"
BITBRAINS_FILE = "2013-7/1.csv"
BITBRAINS_RESOURCES = ("cpu", "memory", "disk", "network")
VARY = ("demand", "budget")
DAY_SECONDS = 86_400


def _resources(value, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise InvalidConfigError(f"resources: expected a non-empty list of names from "
                                 f"{allowed}, got {value!r}")
    names = tuple(value)
    if any(r not in allowed for r in names) or len(set(names)) != len(names):
        raise InvalidConfigError(f"resources: expected distinct names from {allowed}, got "
                                 f"{value!r}")
    return names


def _file_key(path: Path) -> tuple:
    st = os.stat(path)
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


# -- Alibaba ------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AlibabaTrace:
    """The two Alibaba files as arrays (read-only).

    pods: P names; requests: (P, 4) in ALIBABA_RESOURCES order and units; qos, phase,
    gpu_class: (P,) str; success: (P,) bool; nodes: N names; capacity: (N, 4), same order.
    """

    pods: np.ndarray
    requests: np.ndarray
    qos: np.ndarray
    phase: np.ndarray
    gpu_class: np.ndarray
    success: np.ndarray
    nodes: np.ndarray
    capacity: np.ndarray

    def groups(self, outcome_groups: str) -> np.ndarray:
        """(P,) group label of every pod: its QoS class, or "QoS/GPU class"."""
        if outcome_groups == "qos":
            return self.qos
        return np.char.add(np.char.add(self.qos.astype(str), "/"), self.gpu_class.astype(str))

    def success_rates(self, outcome_groups: str) -> dict[str, float]:
        """Success rate of every group over all pods of the file."""
        rates = pd.Series(self.success).groupby(self.groups(outcome_groups)).mean()
        return {str(k): float(v) for k, v in rates.items()}


ALIBABA_QOS = ("LS", "BE", "Burstable", "Guaranteed")
ALIBABA_PHASES = ("Succeeded", "Running", "Failed", "Pending")


def _check_line_end(path: Path) -> None:
    """A trace file ends with a line break; one that does not was cut inside its last row."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell():
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) not in (b"\n", b"\r"):
                raise InvalidInputError(f"{path}: the last row is incomplete (no line break at "
                                        f"the end): the file was cut")


def _csv(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    """The ``columns`` of a CSV trace file, refusing a file that was cut: its last line must
    end with a line break and every row must have the header's number of fields (pandas
    would pad a short row with NaN, and a phase cut to ``Runn`` would count as a failure)."""
    _check_line_end(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            width = len(next(reader, []))
            for line, row in enumerate(reader, start=2):
                if len(row) != width:
                    raise InvalidInputError(
                        f"{path}: line {line} has {'fewer' if len(row) < width else 'more'} "
                        f"fields than the header ({len(row)}, not {width}): the file was cut "
                        f"or damaged")
        df = pd.read_csv(path, usecols=list(columns), dtype=columns, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(f"{path}: not the expected trace file ({exc})") from None
    return df


def _known(df: pd.DataFrame, column: str, allowed: tuple[str, ...], path: Path) -> None:
    bad = ~df[column].isin(allowed).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise InvalidInputError(f"{path}: line {row + 2}, column {column}: unknown value "
                                f"{df[column].iloc[row]!r} (expected one of {allowed})")


def load_alibaba(path=None) -> AlibabaTrace:
    """Read the pod and node lists (``path``: their folder; see :func:`find_data`)."""
    pods = find_data(path, ALIBABA_DATASET, POD_FILE)
    nodes = find_data(path, ALIBABA_DATASET, NODE_FILE)
    return _load_alibaba(_file_key(pods), _file_key(nodes))


@lru_cache(maxsize=4)
def _load_alibaba(pod_key: tuple, node_key: tuple) -> AlibabaTrace:
    p = _csv(Path(pod_key[0]), {"name": "str", "cpu_milli": "float64", "memory_mib": "float64",
                                "num_gpu": "float64", "gpu_milli": "float64", "qos": "str",
                                "pod_phase": "str"})
    n = _csv(Path(node_key[0]), {"sn": "str", "cpu_milli": "float64", "memory_mib": "float64",
                                 "gpu": "float64"})
    _known(p, "qos", ALIBABA_QOS, Path(pod_key[0]))  # the success mapping is defined on these
    _known(p, "pod_phase", ALIBABA_PHASES, Path(pod_key[0]))
    num_gpu = p["num_gpu"].to_numpy()
    share = p["gpu_milli"].to_numpy()
    req = np.column_stack([p["cpu_milli"], p["memory_mib"], num_gpu, num_gpu * share])
    cap = np.column_stack([n["cpu_milli"], n["memory_mib"], n["gpu"], 1000.0 * n["gpu"]])
    for name, a in (("pod requests", req), ("node capacities", cap)):
        if not len(a) or not np.all(np.isfinite(a)) or np.any(a < 0):
            raise InvalidInputError(f"alibaba: {name}: expected rows of finite values ≥ 0")
    gpu_class = np.where(num_gpu == 0, "none", np.where(
        num_gpu > 1, "multi", np.where(share < 1000, "shared", "one")))
    phase = p["pod_phase"].to_numpy(dtype=str)
    return AlibabaTrace(
        _readonly(p["name"].to_numpy(dtype=str)), _readonly(req.astype(np.float64)),
        _readonly(p["qos"].to_numpy(dtype=str)), _readonly(phase), _readonly(gpu_class),
        _readonly(np.isin(phase, SUCCESS_PHASES)), _readonly(n["sn"].to_numpy(dtype=str)),
        _readonly(cap.astype(np.float64)))


@dataclass
class AlibabaGpuEnvironment:
    """Pods of the Alibaba GPU trace as agents; see the module docstring for the mapping."""

    n_agents: int = 100
    n_nodes: int | None = None
    tightness: float | None = None
    outcome_groups: str = "qos"
    resources: tuple[str, ...] = ALIBABA_RESOURCES
    seed: int = 0
    path: str | None = None
    reward_family: str = field(default="bernoulli", init=False)
    n_resources: int = field(init=False)
    pod_rows: np.ndarray = field(init=False, repr=False)
    node_rows: np.ndarray = field(init=False, repr=False)
    means: np.ndarray = field(init=False, repr=False)
    request_table: np.ndarray = field(init=False, repr=False)
    budget: np.ndarray = field(init=False, repr=False)
    group_means: dict = field(init=False, repr=False)

    def __post_init__(self):
        check_int(self.n_agents, "n_agents", 1)
        check_int(self.seed, "seed")
        if self.n_nodes is not None:
            check_int(self.n_nodes, "n_nodes", 1)
        if self.tightness is not None:
            check_scalar(self.tightness, "tightness", low=0.0)
        if self.n_nodes is not None and self.tightness is not None:
            raise InvalidConfigError("give n_nodes or tightness, not both")
        check_choice(self.outcome_groups, "outcome_groups", OUTCOME_GROUPS)
        self._res = _resources(self.resources, ALIBABA_RESOURCES)
        cols = [ALIBABA_RESOURCES.index(r) for r in self._res]
        self.n_resources = len(cols)
        trace = self.trace = load_alibaba(self.path)
        n_pods, n_nodes_all = len(trace.pods), len(trace.nodes)
        rng = np.random.default_rng(self.seed)
        self.pod_rows = rng.choice(n_pods, size=self.n_agents, replace=self.n_agents > n_pods)
        self.request_table = trace.requests[self.pod_rows][:, cols]
        if self.n_nodes is not None:
            self.node_rows = rng.choice(n_nodes_all, size=self.n_nodes,
                                        replace=self.n_nodes > n_nodes_all)
            self.budget = trace.capacity[self.node_rows][:, cols].sum(axis=0)
        else:
            self.node_rows = np.zeros(0, dtype=np.int64)
            if self.tightness is not None:
                self.budget = float(self.tightness) * self.request_table.sum(axis=0)
            else:
                self.budget = trace.capacity[:, cols].sum(axis=0) * (self.n_agents / n_pods)
        self.group_means = trace.success_rates(self.outcome_groups)
        names, codes = np.unique(trace.groups(self.outcome_groups), return_inverse=True)
        rates = np.array([self.group_means[str(g)] for g in names], dtype=np.float64)
        self.means = rates[codes[self.pod_rows]]
        self.round = 0

    #: every round is the same (requests, budget, means)
    is_static = True

    def _config_state(self) -> dict:
        return {"n_agents": int(self.n_agents), "n_nodes": self.n_nodes,
                "tightness": self.tightness, "outcome_groups": self.outcome_groups,
                "resources": list(self._res), "seed": int(self.seed)}

    def get_state(self) -> dict:
        """{config, pod_rows (n,), node_rows, means (n,), request_table (n·K,), budget (K,),
        round}: copies."""
        return {"config": self._config_state(), "pod_rows": self.pod_rows.astype(np.int64),
                "node_rows": self.node_rows.astype(np.int64), "means": self.means.copy(),
                "request_table": self.request_table.ravel().copy(),
                "budget": self.budget.copy(), "round": self.round}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output; :class:`StateError` on a bad state (then nothing
        changes). Rows must lie in the trace read."""
        keys = ("config", "pod_rows", "node_rows", "means", "request_table", "budget", "round")
        state = expect_keys(state, keys, "environment")
        check_config(state, self._config_state(), "environment")
        n, k = self.n_agents, self.n_resources
        pods = state_array(state["pod_rows"], "environment.pod_rows", kinds="i", length=n,
                           low=0, high=len(self.trace.pods) - 1)
        nodes = state_array(state["node_rows"], "environment.node_rows", kinds="i",
                            length=len(self.node_rows), low=0, high=len(self.trace.nodes) - 1)
        means = state_array(state["means"], "environment.means", length=n, low=0.0, high=1.0)
        table = state_array(state["request_table"], "environment.request_table",
                            length=n * k, low=0.0)
        budget = state_array(state["budget"], "environment.budget", length=k, low=0.0)
        rnd = check_round(state["round"], "environment")
        self.pod_rows, self.node_rows, self.means = pods, nodes, means
        self.request_table, self.budget, self.round = table.reshape(n, k), budget, rnd

    def requests(self, t: int = 0) -> EnvironmentRound:
        """Every pod, every round; ids are agent indices."""
        self.round = as_round(t)
        idx = np.arange(self.n_agents)
        request = RoundRequest.build(idx.tolist(), self.request_table, self.budget,
                                     np.zeros(self.n_agents, np.int64),
                                     n_resources=self.n_resources)
        return EnvironmentRound(request, idx,
                                joined=idx if self.round == 1 else np.zeros(0, np.int64))

    def expected(self, agent_index, options, t: int | None = None) -> np.ndarray:
        """Success probability (N,) of rows (the group rate of each pod)."""
        return self.means[np.asarray(agent_index)]

    def sample(self, agent_index, options, rng: np.random.Generator, t: int | None = None
               ) -> np.ndarray:
        """Bernoulli success flags (N,) as floats."""
        return sample_rewards("bernoulli", self.expected(agent_index, options), rng)


# -- Bitbrains ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BitbrainsTrace:
    """One VM's series (read-only). timestamps: (T,) int64 Unix seconds, increasing;
    usage: (T, 4) and capacity: (T, 4) in BITBRAINS_RESOURCES order and units; sha256: a
    fingerprint of the arrays."""

    timestamps: np.ndarray
    usage: np.ndarray
    capacity: np.ndarray
    sha256: str

    @property
    def span(self) -> int:
        """Seconds covered before the series wraps around (last − first + one step)."""
        step = int(np.median(np.diff(self.timestamps))) if len(self.timestamps) > 1 else 300
        return int(self.timestamps[-1] - self.timestamps[0]) + step

    def rows_at(self, seconds: np.ndarray) -> np.ndarray:
        """Row of the latest sample at or before each time (seconds since the first sample,
        taken modulo the span)."""
        rel = self.timestamps - self.timestamps[0]
        return np.searchsorted(rel, np.mod(seconds, self.span), side="right") - 1


BITBRAINS_COLUMNS = {
    "time": "Timestamp [ms]", "cpu": "CPU usage [MHZ]", "cpu_cap": "CPU capacity provisioned [MHZ]",
    "mem": "Memory usage [KB]", "mem_cap": "Memory capacity provisioned [KB]",
    "disk_r": "Disk read throughput [KB/s]", "disk_w": "Disk write throughput [KB/s]",
    "net_r": "Network received throughput [KB/s]", "net_t": "Network transmitted throughput [KB/s]",
}


def load_bitbrains(path=None) -> BitbrainsTrace:
    """Read one VM's CSV (``path``: the file or the dataset folder; see :func:`find_data`)."""
    return _load_bitbrains(_file_key(find_data(path, BITBRAINS_DATASET, BITBRAINS_FILE)))


@lru_cache(maxsize=4)
def _load_bitbrains(key: tuple) -> BitbrainsTrace:
    path = Path(key[0])
    _check_line_end(path)
    with open(path, encoding="ascii", errors="replace") as fh:
        header = [h.strip() for h in fh.readline().split(";")]
    missing = [c for c in BITBRAINS_COLUMNS.values() if c not in header]
    if missing:
        raise InvalidInputError(f"bitbrains: {path}: missing columns {missing}")
    try:
        data = np.loadtxt(path, delimiter=";", skiprows=1, ndmin=2)
    except ValueError as exc:
        raise InvalidInputError(f"bitbrains: {path}: {exc}") from None
    if data.shape[1] != len(header) or not len(data) or not np.all(np.isfinite(data)):
        raise InvalidInputError(f"bitbrains: {path}: expected rows of {len(header)} numbers")
    col = {k: data[:, header.index(v)] for k, v in BITBRAINS_COLUMNS.items()}
    ts = col["time"]
    if np.median(ts) > 1e11:  # milliseconds after all
        ts = ts / 1000.0
    ts = np.round(ts).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    same = np.flatnonzero(np.diff(ts[order]) == 0)
    if len(same):  # the series would have no time step (all equal) or an ambiguous sample
        raise InvalidInputError(
            f"bitbrains: {path}: {len(same)} sample(s) repeat an earlier timestamp (first: "
            f"{int(ts[order][same[0]])} s); the series needs one sample per time")
    usage = np.column_stack([col["cpu"], col["mem"], col["disk_r"] + col["disk_w"],
                             col["net_r"] + col["net_t"]])[order]
    if np.any(usage < 0):
        raise InvalidInputError(f"bitbrains: {path}: negative usage")
    peak = usage.max(axis=0)
    cap = np.column_stack([col["cpu_cap"][order], col["mem_cap"][order],
                           np.full(len(ts), peak[2]), np.full(len(ts), peak[3])])
    ts = ts[order]
    digest = hashlib.sha256(ts.tobytes() + usage.tobytes() + cap.tobytes()).hexdigest()
    return BitbrainsTrace(_readonly(ts), _readonly(usage), _readonly(cap), digest)


@dataclass
class BitbrainsEnvironment:
    """Time-shifted copies of one Bitbrains VM; see the module docstring for the mapping."""

    n_agents: int = 20
    vary: str = "demand"
    tightness: float = 0.3
    resources: tuple[str, ...] = BITBRAINS_RESOURCES
    step_seconds: int = 300
    mean_range: tuple[float, float] = (0.1, 0.9)
    seed: int = 0
    path: str | None = None
    reward_family: str = field(default="bernoulli", init=False)
    n_resources: int = field(init=False)
    offsets: np.ndarray = field(init=False, repr=False)
    means: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        check_int(self.n_agents, "n_agents", 1)
        check_int(self.seed, "seed")
        check_int(self.step_seconds, "step_seconds", 1)
        check_choice(self.vary, "vary", VARY)
        check_scalar(self.tightness, "tightness", low=0.0)
        try:
            lo, hi = (float(v) for v in self.mean_range)
        except (TypeError, ValueError):
            raise InvalidConfigError("mean_range: expected a (low, high) pair") from None
        if not 0 <= lo <= hi <= 1:
            raise InvalidConfigError("mean_range: expected 0 ≤ low ≤ high ≤ 1")
        self._res = _resources(self.resources, BITBRAINS_RESOURCES)
        self._cols = [BITBRAINS_RESOURCES.index(r) for r in self._res]
        self.n_resources = len(self._cols)
        self.trace = load_bitbrains(self.path)
        rng = np.random.default_rng(self.seed)
        slots = max(1, self.trace.span // int(self.step_seconds))
        self.offsets = rng.integers(0, slots, size=self.n_agents) * int(self.step_seconds)
        self.means = rng.uniform(lo, hi, size=self.n_agents)
        self.round = 0
        self._derive()

    def _derive(self) -> None:
        """Arrays that follow from the trace, the offsets and the configuration."""
        tr, cols, step = self.trace, self._cols, int(self.step_seconds)
        usage = tr.usage[:, cols]
        if self.vary == "demand":
            self.base_budget = float(self.tightness) * self.n_agents * usage.mean(axis=0)
            self.request_table = None
        else:
            per_day = max(1, DAY_SECONDS // step)
            times = self.offsets[:, None] + step * np.arange(per_day)[None, :]
            self.request_table = usage[tr.rows_at(times)].mean(axis=1)  # (n, K)
            free = np.clip(1.0 - usage / np.where(tr.capacity[:, cols] > 0,
                                                  tr.capacity[:, cols], 1.0), 0.0, 1.0)
            self._free = free
            mean_free = free.mean(axis=0)
            self._free_scale = np.where(mean_free > 0, 1.0 / np.where(mean_free > 0, mean_free,
                                                                       1.0), 0.0)
            self.base_budget = float(self.tightness) * self.request_table.sum(axis=0)

    #: requests (``vary="demand"``) or the budget (``"budget"``) change every round
    is_static = False

    def budget_at(self, t: int) -> np.ndarray:
        """(K,) budget of round ``t`` (constant when ``vary="demand"``)."""
        if self.vary == "demand":
            return self.base_budget.copy()
        row = self.trace.rows_at(np.array([(max(t, 1) - 1) * int(self.step_seconds)]))[0]
        return self.base_budget * self._free[row] * self._free_scale

    def requests_at(self, t: int) -> np.ndarray:
        """(n, K) requests of round ``t``."""
        if self.vary == "budget":
            return self.request_table
        times = self.offsets + (max(t, 1) - 1) * int(self.step_seconds)
        return self.trace.usage[self.trace.rows_at(times)][:, self._cols]

    def _config_state(self) -> dict:
        return {"n_agents": int(self.n_agents), "vary": self.vary,
                "tightness": float(self.tightness), "resources": list(self._res),
                "step_seconds": int(self.step_seconds),
                "mean_range": [float(v) for v in self.mean_range], "seed": int(self.seed)}

    def get_state(self) -> dict:
        """{config, trace (sha256 of the series), offsets (n,) s, means (n,), round}."""
        return {"config": self._config_state(), "trace": self.trace.sha256,
                "offsets": self.offsets.astype(np.int64), "means": self.means.copy(),
                "round": self.round}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output (same configuration, same trace);
        :class:`StateError` otherwise, and then nothing changes."""
        state = expect_keys(state, ("config", "trace", "offsets", "means", "round"),
                            "environment")
        check_config(state, self._config_state(), "environment")
        if state["trace"] != self.trace.sha256:
            raise StateError("environment: the state was made from a different trace file")
        n = self.n_agents
        offsets = state_array(state["offsets"], "environment.offsets", kinds="i", length=n,
                              low=0, high=self.trace.span - 1)
        means = state_array(state["means"], "environment.means", length=n, low=0.0, high=1.0)
        rnd = check_round(state["round"], "environment")
        self.offsets, self.means, self.round = offsets, means, rnd
        self._derive()

    def requests(self, t: int = 0) -> EnvironmentRound:
        """Every agent, every round; ids are agent indices."""
        t = self.round = as_round(t)
        idx = np.arange(self.n_agents)
        request = RoundRequest.build(idx.tolist(), self.requests_at(t), self.budget_at(t),
                                     np.zeros(self.n_agents, np.int64),
                                     n_resources=self.n_resources)
        return EnvironmentRound(request, idx,
                                joined=idx if t == 1 else np.zeros(0, np.int64))

    def expected(self, agent_index, options, t: int | None = None) -> np.ndarray:
        """True means (N,) of rows (drawn; the trace has no outcomes)."""
        return self.means[np.asarray(agent_index)]

    def sample(self, agent_index, options, rng: np.random.Generator, t: int | None = None
               ) -> np.ndarray:
        """Bernoulli rewards (N,) of rows."""
        return sample_rewards("bernoulli", self.expected(agent_index, options), rng)
