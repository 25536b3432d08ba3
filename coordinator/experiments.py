"""Experiment grids on Ray: an executor for :func:`librex_alloc.evaluation.runner.run_grid`.

``RayExecutor().submit(fn, *args)`` runs ``fn(*args)`` as a Ray task and returns a
``concurrent.futures.Future``, so the pure runner schedules the same cells on a laptop's
process pool or on a cluster. It joins the cluster named by ``address`` or ``RAY_ADDRESS`` and
otherwise starts a local Ray (token authentication stays on, as Ray 2.60 sets it up).
"""

from __future__ import annotations

import os


def _call(fn, *args):
    return fn(*args)


class RayExecutor:
    """``concurrent.futures``-style executor whose tasks are Ray tasks.

    address: a Ray cluster address (default ``RAY_ADDRESS``, else a local Ray with
    ``num_cpus`` CPUs); num_cpus_per_task: CPUs reserved by each task (a cell is
    single-threaded)."""

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 num_cpus_per_task: float = 1.0):
        import ray

        self._started = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address)
            else:
                ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)
                self._started = True
        self._ray = ray
        self._task = ray.remote(num_cpus=num_cpus_per_task, max_retries=2)(_call)

    def submit(self, fn, *args):
        """Run ``fn(*args)`` remotely; a ``concurrent.futures.Future`` of its result."""
        return self._task.remote(fn, *args).future()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop the local Ray this executor started (a joined cluster is left running)."""
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False
