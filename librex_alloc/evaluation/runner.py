"""Experiment runner: a grid of (policy × environment × seed) cells, resumable, in parallel.

A :class:`Cell` names a policy (a key of ``librex_alloc.policies.POLICIES`` and its keyword
arguments), an environment (a key of :data:`ENVIRONMENTS` and its keyword arguments), a seed,
a number of rounds and the simulator's keyword arguments (e.g. the budget mode). Each cell's
per-round metrics (:func:`librex_alloc.simulation.simulate`'s frame plus the cell's columns) are
written to ``<out>/cells/<key>.parquet`` atomically; cells whose file exists are skipped, so an
interrupted grid resumes where it stopped. :func:`run_grid` runs the missing cells on any
``concurrent.futures.Executor``-like object (``submit(fn, cell) -> future``): a process pool by
default; ``coordinator.experiments.RayExecutor`` runs them as Ray tasks on a cluster (the core
never imports Ray).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from librex_alloc.errors import InvalidConfigError
from librex_alloc.evaluation import design  # noqa: F401  (registers the "design" policy)
from librex_alloc.policies import POLICIES, make_policy
from librex_alloc.round_step import write_rounds
from librex_alloc.simulation import simulate, summarize


def _environments() -> dict[str, Callable]:
    """Environment constructors by name (resolved lazily: the package may grow)."""
    from librex_alloc import environments as envs

    names = {"synthetic": "SyntheticEnvironment", "orlib": "OrlibEnvironment",
             "alibaba": "AlibabaGpuEnvironment", "bitbrains": "BitbrainsEnvironment"}
    return {k: getattr(envs, v) for k, v in names.items() if hasattr(envs, v)}


ENVIRONMENTS = _environments


@dataclass(frozen=True)
class Cell:
    """One run: ``policy`` name and ``policy_kwargs`` (those of ``make_policy``, without
    ``n_resources`` and ``seed``, which come from the environment and the cell), ``env`` name
    and ``env_kwargs``, ``seed`` (of the policy, the environment's rewards and, unless
    ``env_kwargs`` has its own, the instance), ``rounds``, ``sim_kwargs`` for ``simulate``
    and a free-form ``label`` (e.g. "fairness=proportional") used in tables."""

    policy: str
    env: str
    seed: int
    rounds: int
    policy_kwargs: dict = field(default_factory=dict)
    env_kwargs: dict = field(default_factory=dict)
    sim_kwargs: dict = field(default_factory=dict)
    label: str = ""

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise InvalidConfigError(f"policy: expected one of {sorted(POLICIES)}, got "
                                     f"{self.policy!r}")
        if self.env not in ENVIRONMENTS():
            raise InvalidConfigError(f"env: expected one of {sorted(ENVIRONMENTS())}, got "
                                     f"{self.env!r}")
        for name in ("seed", "rounds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise InvalidConfigError(f"{name}: expected an int ≥ 0, got {v!r}")
        try:
            _ = self.key
        except TypeError as exc:
            raise InvalidConfigError(f"cell arguments must be JSON-able: {exc}") from None

    @property
    def key(self) -> str:
        """A stable file name: a hash of the cell's JSON form."""
        text = json.dumps(asdict(self), sort_keys=True, default=_json_default)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON-able")


def build(cell: Cell):
    """(policy, environment) of a cell."""
    env_kwargs = dict(cell.env_kwargs)
    env_kwargs.setdefault("seed", cell.seed)
    env = ENVIRONMENTS()[cell.env](**env_kwargs)
    policy = make_policy(cell.policy, n_resources=env.n_resources, seed=cell.seed,
                         **cell.policy_kwargs)
    return policy, env


def run_cell(cell: Cell) -> pd.DataFrame:
    """Simulate one cell; the per-round frame with the cell's identifying columns."""
    policy, env = build(cell)
    df = simulate(policy, env, cell.rounds, seed=cell.seed, **cell.sim_kwargs)
    df.insert(0, "cell", cell.key)
    df.insert(1, "policy", cell.policy)
    df.insert(2, "label", cell.label or cell.policy)
    df.insert(3, "env", cell.env)
    df.insert(4, "seed", cell.seed)
    return df


def _write(df: pd.DataFrame, path: Path, config: dict | None = None) -> None:
    """Atomic Parquet write in the rounds schema (:func:`librex_alloc.round_step.write_rounds`,
    ``config`` in the file's metadata)."""
    write_rounds(df, path, config=config)


def _run_and_write(cell: Cell, path: str) -> str:
    config = json.loads(json.dumps(asdict(cell), sort_keys=True, default=_json_default))
    _write(run_cell(cell), Path(path), {"command": "evaluation", "cell": config})
    return path


def cell_path(out: str | os.PathLike, cell: Cell) -> Path:
    return Path(out) / "cells" / f"{cell.key}.parquet"


def run_grid(cells: Sequence[Cell], out: str | os.PathLike, *, executor=None,
             workers: int = 2, progress: Callable[[int], object] | None = None) -> list[Path]:
    """Run every cell whose Parquet file is missing; returns every cell's file path.

    executor: an object with ``submit(fn, *args) -> future`` (``concurrent.futures`` style);
    default: a process pool of ``workers`` processes (``workers=1``: in this process).
    progress: called with the number of cells done (skipped ones included)."""
    cells = list(cells)
    paths = [cell_path(out, c) for c in cells]
    (Path(out) / "cells").mkdir(parents=True, exist_ok=True)
    todo = [(c, p) for c, p in zip(cells, paths) if not p.exists()]
    done = len(cells) - len(todo)
    if progress is not None:
        progress(done)
    if not todo:
        return paths
    if executor is None and workers <= 1:
        for c, p in todo:
            _run_and_write(c, str(p))
            done += 1
            if progress is not None:
                progress(done)
        return paths
    own = executor is None
    pool = ProcessPoolExecutor(max_workers=workers) if own else executor
    try:
        futures = [pool.submit(_run_and_write, c, str(p)) for c, p in todo]
        for fut in as_completed(futures):
            fut.result()
            done += 1
            if progress is not None:
                progress(done)
    finally:
        if own:
            pool.shutdown(cancel_futures=True)
    return paths


def load_cells(paths: Iterable[Path]) -> pd.DataFrame:
    """All per-round rows of the given cell files."""
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def summarize_cells(rounds: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its identifying columns and :func:`summarize` of its rounds."""
    rows = []
    for key, df in rounds.groupby("cell", sort=False):
        head = df.iloc[0]
        s = summarize(df.drop(columns=["cell", "policy", "label", "env", "seed"]))
        s.pop("utilization", None)
        rows.append({"cell": key, "policy": head["policy"], "label": head["label"],
                     "env": head["env"], "seed": int(head["seed"]), **s})
    return pd.DataFrame(rows)


def mean_ci(x: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (non-finite entries
    dropped; NaN half-width for fewer than 2 values)."""
    from scipy import stats

    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    if not len(a):
        return float("nan"), float("nan")
    if len(a) == 1:
        return float(a[0]), float("nan")
    q = float(stats.t.ppf(0.5 + level / 2, len(a) - 1))
    return float(a.mean()), float(q * a.std(ddof=1) / np.sqrt(len(a)))
