"""Experiment grids on Ray: an executor for :func:`librex_alloc.evaluation.runner.run_grid`.

``RayExecutor().submit(fn, *args)`` runs ``fn(*args)`` as a Ray task and returns a
``concurrent.futures.Future``, so the pure runner schedules the same cells on a laptop's
process pool or on a cluster. It joins the cluster named by ``address`` or ``RAY_ADDRESS`` and
otherwise starts a **new** local Ray (``address="local"``: never fails beside a running local
cluster; token authentication stays on, as Ray 2.60 sets it up).

Results come back to the driver: a grid cell (the runner's ``_run_and_write``) runs remotely
as ``run_cell(cell)`` and returns its rows; the driver writes the cell's Parquet file itself.
So a cell that ran on any node of a cluster ends up in the driver's ``out`` folder (no node
needs to see that folder).
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from pathlib import Path


def _call(fn, *args):
    return fn(*args)


def _cell_rows(cell):
    from librex_alloc.evaluation.runner import run_cell

    return run_cell(cell)


class RayExecutor:
    """``concurrent.futures``-style executor whose tasks are Ray tasks.

    address: a Ray cluster address (default ``RAY_ADDRESS``, else a new local Ray with
    ``num_cpus`` CPUs); num_cpus_per_task: CPUs reserved by each task (a cell is
    single-threaded); resources: custom resources each task needs (e.g. to pin cells to
    some nodes)."""

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 num_cpus_per_task: float = 1.0, resources: dict | None = None):
        import ray

        self._started = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS")
            if address and address != "local":
                ray.init(address=address)
            else:  # a new local Ray even when a local cluster runs (ray.init() would join it)
                ray.init(address="local", num_cpus=num_cpus or os.cpu_count(),
                         include_dashboard=False)
                self._started = True
        self._ray = ray
        opts = {"num_cpus": num_cpus_per_task, "max_retries": 2}
        if resources:
            opts["resources"] = dict(resources)
        self._task = ray.remote(**opts)(_call)
        self._rows = ray.remote(**opts)(_cell_rows)

    def submit(self, fn, *args):
        """Run ``fn(*args)`` remotely; a ``concurrent.futures.Future`` of its result. The
        runner's cell writer runs the cell remotely and writes its rows here, on the driver."""
        from librex_alloc.evaluation import runner

        if fn is runner._run_and_write:
            cell, path = args
            remote = self._rows.remote(cell).future()
            done: Future = Future()

            def write(fut):
                try:
                    runner._write(fut.result(), Path(path))
                except BaseException as exc:  # reported through the future
                    done.set_exception(exc)
                else:
                    done.set_result(path)

            remote.add_done_callback(write)
            return done
        return self._task.remote(fn, *args).future()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop the local Ray this executor started (a joined cluster is left running)."""
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False
