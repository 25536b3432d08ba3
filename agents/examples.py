"""A worked live agent that does real work with the resources it is granted.

:class:`HashingWorker` runs a CPU-bound job each time it is granted: it hashes ``work_mib``
MiB of data (SHA-256, the GIL is released on large buffers) with a thread pool of
``floor(granted CPU)`` threads inside a working buffer capped at the granted memory. The job
needs ``need_mib`` MiB of working memory: with less it fails at once (it would exceed its
cap). It succeeds when it finishes within ``deadline_s`` seconds of the grant. Each option of
its request is one (CPU, memory MiB) pair, so the policy learns which option works.

Outcomes are success flags (``True``/``False``). With ``asynchronous=True`` the job runs in
the background and its outcome is reported later through :meth:`poll`.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from agents.live import Grant

MIB = 1 << 20


class HashingWorker:
    """A live agent (see :mod:`agents.live`) whose job is real hashing work.

    options: J (cpu, memory MiB) requests, e.g. ``[(1, 32), (2, 64)]``. work_mib: MiB hashed
    per job. need_mib: working memory the job needs. deadline_s: seconds allowed per job.
    chunk_mib: MiB hashed per call (the buffer is reused, so memory stays at the cap).
    """

    def __init__(self, options, *, work_mib: float = 16.0, need_mib: float = 32.0,
                 deadline_s: float = 5.0, chunk_mib: float = 1.0, asynchronous: bool = False):
        self.options = np.asarray(options, dtype=np.float64).reshape(-1, 2)
        self.work_mib = float(work_mib)
        self.need_mib = float(need_mib)
        self.deadline_s = float(deadline_s)
        self.chunk = max(1, int(chunk_mib * MIB))
        self.asynchronous = bool(asynchronous)
        self.history: list[dict] = []  # one entry per job: round, threads, seconds, success
        self._done: list[tuple[int, bool]] = []
        self._lock = threading.Lock()
        self._futures: list[Future] = []

    def __getstate__(self) -> dict:  # shipped to its actor: no lock, no running jobs
        state = self.__dict__.copy()
        del state["_lock"], state["_futures"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _futures=[])

    # -- the LiveAgent protocol ---------------------------------------------------------
    def request(self, round: int) -> np.ndarray:
        """(J, 2): one (CPU, memory MiB) row per option."""
        return self.options

    def on_grant(self, round: int, grant: Grant) -> bool | None:
        if not self.asynchronous:
            return self._job(round, grant)
        pool = ThreadPoolExecutor(max_workers=1)
        fut = pool.submit(self._job, round, grant)
        fut.add_done_callback(lambda f, r=round: self._finish(r, f))
        pool.shutdown(wait=False)
        self._futures.append(fut)
        return None

    def poll(self) -> list[tuple[int, bool]]:
        """Outcomes of background jobs that finished since the last call."""
        with self._lock:
            done, self._done = self._done, []
        return done

    # -- the work ---------------------------------------------------------------------
    def _finish(self, rnd: int, fut: Future) -> None:
        with self._lock:
            self._done.append((rnd, bool(fut.result())))

    def wait(self, timeout: float | None = None) -> None:
        """Wait for background jobs (tests, shutdown)."""
        for fut in list(self._futures):
            fut.result(timeout)
        self._futures = [f for f in self._futures if not f.done()]

    def _job(self, rnd: int, grant: Grant) -> bool:
        cpu, mem_mib = float(grant.resources[0]), float(grant.resources[1])
        t0 = time.perf_counter()
        threads = max(1, math.floor(cpu + 1e-9))
        ok = mem_mib + 1e-9 >= self.need_mib
        if ok:
            buf = np.random.default_rng(rnd).bytes(min(self.chunk, int(self.need_mib * MIB)))
            n_chunks = max(1, int(self.work_mib * MIB) // len(buf))
            view = memoryview(buf)

            def part(count: int) -> str:
                h = hashlib.sha256()
                for _ in range(count):
                    h.update(view)
                return h.hexdigest()

            shares = [n_chunks // threads + (i < n_chunks % threads) for i in range(threads)]
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(part, shares))
        seconds = time.perf_counter() - t0
        success = bool(ok and seconds <= self.deadline_s)
        with self._lock:
            self.history.append({"round": rnd, "option": grant.option, "threads": threads,
                                 "memory_mib": mem_mib, "seconds": seconds,
                                 "success": success})
        return success


class BernoulliAgent:
    """A minimal live agent: a fixed request (K,) and a success probability ``mean``; its
    outcome is a Bernoulli draw (the one-actor-per-agent baseline of the benchmark)."""

    def __init__(self, request, mean: float, seed: int = 0):
        self.request_vector = np.asarray(request, dtype=np.float64)
        self.mean = float(mean)
        self.rng = np.random.default_rng(seed)

    def request(self, round: int) -> np.ndarray:
        return self.request_vector

    def on_grant(self, round: int, grant: Grant) -> float:
        return float(self.rng.random() < self.mean)
