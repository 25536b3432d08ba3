"""The coordinator's metrics for the Ray dashboard and Prometheus (``ray.util.metrics``).

Every metric carries the tag ``job`` (the job's name, from its coordinator's actor name).
Ray's metrics agent exports them on each node's Prometheus endpoint (``ray start
--metrics-export-port=PORT``: ``http://NODE:PORT/metrics``) with the prefix ``ray_``:

=============================  =========  ==================================================
``librex_round``               Gauge      the last round played
``librex_rounds_played``       Counter    rounds played by this coordinator process
``librex_submitters``          Gauge      registered submitters (tag ``state``: registered,
                                          failing)
``librex_counter``             Gauge      the coordinator's counters as ``status()`` reports
                                          them (tag ``counter``: outcomes_applied,
                                          duplicate_reports, rejected_*, restarts, ...)
``librex_fairness``            Gauge      Gini/Jain of cumulative reward and of rounds served
                                          (tag ``measure``), last computed value
``librex_utilization``         Gauge      used / budget per resource, last round (tag
                                          ``resource``)
``librex_phase_seconds``       Gauge      median seconds of each round phase (tag ``phase``)
                                          over the rounds since the previous update
``librex_round_seconds``       Histogram  seconds per round (every round since the previous
                                          update is observed)
=============================  =========  ==================================================

``LIBREX_ALLOC_METRICS=0`` in the coordinator's environment switches them off.

Cost per round: none. A daemon thread of the coordinator actor updates the metrics every
``every_s`` seconds (and each ``status()`` call does), from ``status()`` and the metrics rows
of the rounds played meanwhile.
"""

from __future__ import annotations

import math
import os
import threading

PHASES = ("submit_s", "decide_s", "commit_s", "push_s", "report_s", "metrics_s",
          "checkpoint_s", "round_s")
FAIRNESS = ("gini_reward", "jain_reward", "gini_service", "jain_service")
ROUND_BOUNDARIES = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
#: Rows read per update at most (the histogram then sees the newest ones).
MAX_ROWS = 5000


def enabled() -> bool:
    """False when ``LIBREX_ALLOC_METRICS`` is ``0`` / ``false`` / ``no`` / ``off``."""
    return os.environ.get("LIBREX_ALLOC_METRICS", "1").strip().lower() not in (
        "0", "false", "no", "off")


class Telemetry:
    """Metrics of one coordinator (``core``: a :class:`~coordinator.core.Coordinator`)."""

    def __init__(self, core, job: str, every_s: float = 2.0):
        from ray.util.metrics import Counter, Gauge, Histogram

        self.core = core
        self.job = job
        self.every_s = float(every_s)
        tags = {"job": job}
        self._round = Gauge("librex_round", "last round played", tag_keys=("job",))
        self._played = Counter("librex_rounds_played", "rounds played by this coordinator "
                               "process", tag_keys=("job",))
        self._subs = Gauge("librex_submitters", "submitters by state",
                           tag_keys=("job", "state"))
        self._counter = Gauge("librex_counter", "coordinator counters (status())",
                              tag_keys=("job", "counter"))
        self._fair = Gauge("librex_fairness", "Gini/Jain of cumulative reward and service",
                           tag_keys=("job", "measure"))
        self._util = Gauge("librex_utilization", "used / budget per resource, last round",
                           tag_keys=("job", "resource"))
        self._phase = Gauge("librex_phase_seconds", "median seconds per round phase",
                            tag_keys=("job", "phase"))
        self._hist = Histogram("librex_round_seconds", "seconds per round",
                               boundaries=ROUND_BOUNDARIES, tag_keys=("job",))
        for m in (self._round, self._played, self._subs, self._counter, self._fair,
                  self._util, self._phase, self._hist):
            m.set_default_tags(tags)
        self._last_round = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        def loop():
            while not self._stop.wait(self.every_s):
                try:
                    self.update()
                except Exception:  # pragma: no cover - never stop the coordinator
                    pass

        self._thread = threading.Thread(target=loop, name="librex-telemetry", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def update(self, status: dict | None = None) -> None:
        """Set every metric from ``status`` (default: ``core.status()``) and the rows of
        the rounds played since the previous update."""
        with self._lock:
            st = self.core.status() if status is None else status
            rnd = int(st["round"])
            self._round.set(rnd)
            self._subs.set(len(st["submitters"]), {"state": "registered"})
            self._subs.set(len(st["failing"]), {"state": "failing"})
            for name, value in st["counters"].items():
                self._counter.set(float(value), {"counter": name})
            since = self._last_round if self._last_round is not None else max(0, rnd - 100)
            if self._last_round is not None and rnd > self._last_round:
                self._played.inc(rnd - self._last_round)
            self._last_round = rnd
            if rnd <= since:
                return
            rows = self.core.metrics_since(max(since, rnd - MAX_ROWS), MAX_ROWS)
            if not rows["round"]:
                return
            for key in FAIRNESS:
                value = _last(rows[key])
                if not math.isnan(value):
                    self._fair.set(value, {"measure": key})
            for key in rows:
                if key.startswith("utilization_"):
                    self._util.set(float(rows[key][-1]), {"resource": key[12:]})
            from coordinator.metrics_log import phase_label
            for key in PHASES:
                values = sorted(rows[key])
                self._phase.set(float(values[len(values) // 2]), {"phase": phase_label(key)})
            for t in rows["round_s"]:
                self._hist.observe(float(t))


def _last(values) -> float:
    for v in reversed(values):
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return float(v)
    return float("nan")
