"""Sweeps over the policy configuration on Ray Tune: ``librex-alloc sweep`` and :func:`run_sweep`.

The space (:class:`librex_alloc.sweep_space.SweepSpace`) is checked cell by cell before Ray
starts. Grid and random search expand it here (deterministically) and hand Tune one
``grid_search`` over the cells; ``search="optuna"`` gives Tune's ``OptunaSearch`` the space
(Optuna is an optional extra, imported only then).

Each trial is a simulation of one cell, run in chunks of ``report_every`` rounds:

- ``inprocess`` (small instances): :func:`librex_alloc.simulate` in the trial's process;
- ``coordinator`` (large ones, synthetic environment): :func:`coordinator.job.run_job` (its
  ``policy_config``) with a coordinator actor and ``shards`` shard actors, continued chunk by
  chunk from the coordinator's own checkpoint folder (``resume=True``).

Its resources are reserved by a placement group (one bundle for the trial, one CPU per shard
for coordinator trials). After every chunk the trial calls ``ray.tune.report`` with the run's
metrics so far (reward vs the utilitarian oracle on the true means, regret, Gini/Jain of
reward and service, utilization, and ``reward_kept``: expected reward over the utilitarian
constrained-TS run's on the same instance and seed, run alongside) and a ``tune.Checkpoint``
of the state (policy and environment ``get_state()`` through :mod:`librex_alloc.checkpoint`,
or the coordinator's checkpoint folder), so a trial restarted on another node continues from
its last chunk. ``Tuner.restore`` resumes an interrupted sweep (``resume=True``; finished
trials are not run again). Outputs in ``out``: ``trials.parquet`` (one row per trial,
parameter-named columns), ``pareto.png`` and ``summary.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from librex_alloc import cli_args
from librex_alloc.errors import LibrexError
from librex_alloc.oracles.methods import METHODS, describe
from librex_alloc.sweep_space import (
    FAIRNESS,
    REWARD,
    SEARCHES,
    SweepSpace,
    SweepSpaceError,
    is_utilitarian,
    make_environment,
    pick_settings,
    resolve_cell,
    settings_table,
    summary_markdown,
)

RUNNERS = ("auto", "inprocess", "coordinator")
META = "librex-sweep.json"
#: metrics every trial reports (besides Tune's own)
METRICS = ("rounds_done", "reward", "expected_reward", "oracle_reward", REWARD, "cum_regret",
           "gini_reward", "jain_reward", "gini_service", "jain_service", "utilization",
           "reference_expected_reward", "reward_kept", "restored_from", "wall_s")


class SweepError(LibrexError):
    """A sweep that cannot start or resume (storage, a resume with another space, ...)."""


@dataclass(frozen=True)
class TrialSettings:
    """How each trial runs (the same for every cell of a sweep).

    rounds: rounds per trial; report_every: rounds per chunk (a report and a checkpoint each);
    runner: "inprocess", "coordinator" or "auto" (coordinator from ``coordinator_above``
    agents on); shards: shard actors of a coordinator trial; cpus: CPUs of a trial's first
    bundle; reference: also run the utilitarian twin for ``reward_kept`` (skipped, and 1,
    when the cell itself is utilitarian); reference_oracle: the oracle method of the regret
    reference on the true means in in-process trials (coordinator trials use the
    coordinator's, "fast")."""

    rounds: int = 200
    report_every: int = 50
    runner: str = "auto"
    coordinator_above: int = 5000
    shards: int = 1
    cpus: float = 1.0
    reference: bool = True
    reference_oracle: str = "auto"

    def __post_init__(self):
        for name in ("rounds", "report_every", "coordinator_above", "shards"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SweepSpaceError(f"{name}: expected an int >= 1, got {v!r}")
        if self.runner not in RUNNERS:
            raise SweepSpaceError(f"runner: expected one of {RUNNERS}, got {self.runner!r}")
        if not isinstance(self.cpus, (int, float)) or not 0 < self.cpus <= 1024:
            raise SweepSpaceError(f"cpus: expected a number > 0, got {self.cpus!r}")
        if self.reference_oracle not in METHODS:
            raise SweepSpaceError(f"reference_oracle: expected {describe()}, got "
                                  f"{self.reference_oracle!r}")

    def runner_for(self, env: dict) -> str:
        if self.runner != "auto":
            return self.runner
        big = env["family"] == "synthetic" and env["agents"] >= self.coordinator_above
        return "coordinator" if big else "inprocess"


@dataclass
class SweepResult:
    """What :func:`run_sweep` produced."""

    trials: pd.DataFrame
    settings: pd.DataFrame
    picks: dict
    parquet: Path
    plot: Path | None
    summary: Path
    experiment: str
    errors: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- checks
def check_cells_for_runner(cells: list[dict], settings: TrialSettings) -> None:
    """Coordinator trials run the synthetic environment (agent shards host its agents)."""
    for cell in cells:
        _, env, _ = resolve_cell(cell)
        if settings.runner_for(env) == "coordinator" and env["family"] != "synthetic":
            raise SweepSpaceError(f"env.family: coordinator trials run the synthetic "
                                  f"environment, got {env['family']!r} (use --runner "
                                  f"inprocess)")


def _is_uri(storage: str) -> bool:
    return "://" in storage and not storage.startswith("file://")


def _storage_fs(storage: str):
    """(pyarrow filesystem, root path) of a storage path or URI."""
    import pyarrow.fs as pafs

    if _is_uri(storage):
        try:
            return pafs.FileSystem.from_uri(storage)
        except Exception as exc:  # pyarrow raises several types for bad URIs
            raise SweepError(f"--storage {storage!r}: {str(exc).splitlines()[0]}") from None
    path = storage[7:] if storage.startswith("file://") else storage
    return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())


def prepare_storage(storage: str, name: str) -> tuple[str, object, str]:
    """Check that the storage can be written (a local folder is created); returns (storage
    path for Tune, filesystem, experiment path)."""
    fs, root = _storage_fs(storage)
    if not _is_uri(storage):
        p = Path(root)
        try:
            p.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=p):
                pass
        except FileExistsError:
            raise SweepError(f"--storage {storage!r}: exists and is not a folder") from None
        except OSError as exc:
            raise SweepError(f"--storage {storage!r}: not writable "
                             f"({exc.strerror or exc})") from None
        return root, fs, str(p / name)
    return storage, fs, f"{root.rstrip('/')}/{name}"


def _exists(fs, path: str) -> bool:
    import pyarrow.fs as pafs

    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _write_meta(fs, exp: str, meta: dict) -> None:
    fs.create_dir(exp, recursive=True)
    with fs.open_output_stream(f"{exp}/{META}") as f:
        f.write(json.dumps(meta, indent=1, sort_keys=True).encode())


def _read_meta(fs, exp: str) -> dict:
    try:
        with fs.open_input_stream(f"{exp}/{META}") as f:
            return json.loads(f.read().decode())
    except (OSError, ValueError):
        raise SweepError(f"{exp!r} holds no librex-alloc sweep to resume") from None


def _meta(space: SweepSpace, search: str, samples: int, search_seed: int,
          settings: TrialSettings, metric: str) -> dict:
    return {"space": space.to_json(), "search": search, "samples": samples,
            "search_seed": search_seed, "settings": asdict(settings), "metric": metric}


# --------------------------------------------------------------------------- the trial
def _totals() -> dict:
    return {"rounds_done": 0, "reward": 0.0, "expected_reward": 0.0, "oracle_reward": 0.0,
            "cum_regret": 0.0, "util_sum": None, "reference_expected_reward": 0.0,
            "restored_from": 0, "wall_s": 0.0}


def _metrics(tot: dict, fair: dict, utilitarian: bool, reference: bool) -> dict:
    util = tot["util_sum"] or [float("nan")]
    n = max(tot["rounds_done"], 1)
    out = {k: tot[k] for k in ("rounds_done", "reward", "expected_reward", "oracle_reward",
                               "cum_regret", "reference_expected_reward", "restored_from",
                               "wall_s")}
    out[REWARD] = tot["expected_reward"] / tot["oracle_reward"] \
        if tot["oracle_reward"] > 0 else float("nan")
    names = tot.get("util_cols") or [f"utilization_{j}" for j in range(len(util))]
    for c, u in zip(names, util):  # the rounds file's names (named resources when named)
        out[c] = u / n
    out["utilization"] = float(np.mean(util)) / n
    if utilitarian:
        out["reward_kept"] = 1.0
    elif reference and tot["reference_expected_reward"] > 0:
        out["reward_kept"] = tot["expected_reward"] / tot["reference_expected_reward"]
    else:
        out["reward_kept"] = float("nan")
    out.update(fair)
    return out


def _fairness_of(policy) -> dict:
    from librex_alloc.round_step import fairness_columns

    _, rew = policy.utilities("reward")
    _, srv = policy.utilities("service")
    return fairness_columns(rew, np.asarray(srv, dtype=np.float64))


def _add_chunk(tot: dict, df: pd.DataFrame) -> None:
    tot["reward"] += float(df["reward"].sum())
    tot["expected_reward"] += float(df["expected_reward"].sum())
    tot["oracle_reward"] += float(df["oracle_reward"].sum())
    tot["cum_regret"] += float(df["regret"].sum())
    tot["util_cols"] = [c for c in df.columns if c.startswith("utilization_")]
    util = [float(df[c].sum()) for c in tot["util_cols"]]
    tot["util_sum"] = util if tot["util_sum"] is None else \
        [a + b for a, b in zip(tot["util_sum"], util)]


def run_inprocess_trial(cell: dict, settings: TrialSettings, report, checkpoint_dir=None,
                        on_report=None) -> dict:
    """One in-process trial: chunks of :func:`simulate`; ``report(metrics, state_dir)`` after
    each (the Tune reporter, or a plain callable); restores from ``checkpoint_dir`` if given.
    Returns the last metrics."""
    from librex_alloc import ConstrainedThompsonSampling, FairnessConfig
    from librex_alloc.checkpoint import load_state, save_state
    from librex_alloc.simulation import simulate

    config, env_spec, _ = resolve_cell(cell)
    seed = config.seed or 0
    policy_dict = config.to_dict()
    env = make_environment(env_spec, policy_dict)
    policy = ConstrainedThompsonSampling.from_config(config)
    utilitarian = is_utilitarian(config)
    twin = twin_env = None
    if settings.reference and not utilitarian:
        twin = ConstrainedThompsonSampling.from_config(config.replace(fairness=FairnessConfig()))
        twin_env = make_environment(env_spec, policy_dict)
    tot = _totals()
    if checkpoint_dir is not None:
        d = Path(checkpoint_dir)
        tot = json.loads((d / "totals.json").read_text())
        policy.set_state(load_state(d / "policy.parquet"))
        env.set_state(load_state(d / "env.parquet"))
        if twin is not None:
            twin.set_state(load_state(d / "twin.parquet"))
            twin_env.set_state(load_state(d / "twin_env.parquet"))
        tot["restored_from"] = tot["rounds_done"]
    out = _metrics(tot, _fairness_of(policy), utilitarian, settings.reference)
    while tot["rounds_done"] < settings.rounds:
        t0 = time.perf_counter()
        n = min(settings.report_every, settings.rounds - tot["rounds_done"])
        first = tot["rounds_done"] + 1
        df = simulate(policy, env, n, seed=seed, first_round=first, metrics_every=n,
                      oracle_method=settings.reference_oracle)
        _add_chunk(tot, df)
        if twin is not None:
            tdf = simulate(twin, twin_env, n, seed=seed, first_round=first, metrics_every=n,
                           oracle_method=settings.reference_oracle)
            tot["reference_expected_reward"] += float(tdf["expected_reward"].sum())
        tot["rounds_done"] += n
        tot["wall_s"] += time.perf_counter() - t0
        out = _metrics(tot, _fairness_of(policy), utilitarian, settings.reference)
        with tempfile.TemporaryDirectory(prefix="librex-trial-") as tmp:
            d = Path(tmp)
            save_state(policy.get_state(), d / "policy.parquet")
            save_state(env.get_state(), d / "env.parquet")
            if twin is not None:
                save_state(twin.get_state(), d / "twin.parquet")
                save_state(twin_env.get_state(), d / "twin_env.parquet")
            (d / "totals.json").write_text(json.dumps(tot))
            report(out, d)
        if on_report is not None:
            on_report(dict(out))
    return out


def _job_kwargs(cell: dict, env: dict, settings: TrialSettings) -> dict:
    """``run_job`` keywords of a coordinator trial's cell (the policy comes as
    ``policy_config``; ``fairness`` labels the run)."""
    config, _, k = resolve_cell(cell)
    f = config.fairness
    fairness = f.alpha if f.mode == "alpha" else f.mode
    return {"agents": env["agents"], "shards": min(settings.shards, env["agents"]),
            "fairness": fairness, "resources": k, "tightness": float(env["tightness"]),
            "oracle": config.oracle, "seed": config.seed or 0}


def _job_chunk(kw: dict, n: int, work: Path, key: str, name: str, done: int) -> pd.DataFrame:
    """Rounds ``done + 1 … done + n`` through :func:`run_job` (checkpoint folder ``work/key``,
    resumed after the first chunk); their metrics rows."""
    import io

    from coordinator.job import read_rounds, run_job

    res = run_job(**kw, rounds=n, out=work / f"out-{key}", checkpoint_dir=work / key,
                  resume=done > 0, name=name, progress=False, plot=False, stream=io.StringIO(),
                  fairness_every=n)
    df = read_rounds(res.parquet)  # every part of the run: keep this chunk's rounds
    return df[df["round"] > done].reset_index(drop=True)


def _kill_leftovers(name: str, shards: int) -> None:
    """End the actors of an earlier attempt of this trial (Ray may have restarted them after
    their node died): the restarted trial starts its own from its checkpoint."""
    import ray

    for actor in [f"{name}-coordinator", *(f"{name}-shard-{i}" for i in range(shards))]:
        try:
            ray.kill(ray.get_actor(actor, namespace="librex-alloc"), no_restart=True)
        except ValueError:  # no such actor: the usual case
            pass


def run_coordinator_trial(cell: dict, settings: TrialSettings, report, checkpoint_dir=None,
                          on_report=None, name: str = "sweep") -> dict:
    """One coordinator trial: :func:`run_job` chunk by chunk (a coordinator and shard actors,
    named after ``name``), continued from its checkpoint folder. ``report`` as for
    :func:`run_inprocess_trial`; the trial works in ``<tmp>/librex-sweep-trials/<name>``."""
    from librex_alloc import FairnessConfig

    config, env, _ = resolve_cell(cell)
    utilitarian = is_utilitarian(config)
    kwargs = _job_kwargs(cell, env, settings)
    twin_config = config.replace(fairness=FairnessConfig())
    runs = {"main": {**kwargs, "policy_config": config.to_dict()},
            "twin": {**kwargs, "fairness": "none", "policy_config": twin_config.to_dict()}}
    if not settings.reference or utilitarian:
        del runs["twin"]
    # the coordinator's checkpoint records its folder: a restart (on any node) continues in a
    # folder of the same path, filled from the trial's checkpoint
    work = Path(tempfile.gettempdir()) / "librex-sweep-trials" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tot = _totals()
    try:
        if checkpoint_dir is not None:
            src = Path(checkpoint_dir)
            tot = json.loads((src / "totals.json").read_text())
            for key in runs:
                _kill_leftovers(f"{name}-{key}", settings.shards)
                shutil.copytree(src / key, work / key)
            tot["restored_from"] = tot["rounds_done"]
        fair = {}
        while tot["rounds_done"] < settings.rounds:
            t0 = time.perf_counter()
            n = min(settings.report_every, settings.rounds - tot["rounds_done"])
            for key, kw in runs.items():
                df = _job_chunk(kw, n, work, key, f"{name}-{key}", tot["rounds_done"])
                if key == "main":
                    _add_chunk(tot, df)
                    last = df.ffill().iloc[-1]
                    fair = {c: float(last[c]) for c in ("gini_reward", "jain_reward",
                                                        "gini_service", "jain_service")}
                else:
                    tot["reference_expected_reward"] += float(df["expected_reward"].sum())
            tot["rounds_done"] += n
            tot["wall_s"] += time.perf_counter() - t0
            out = _metrics(tot, fair, utilitarian, settings.reference)
            with tempfile.TemporaryDirectory(prefix="librex-trial-ckpt-") as tmp:
                d = Path(tmp)
                for key in runs:
                    shutil.copytree(work / key, d / key)
                (d / "totals.json").write_text(json.dumps(tot))
                report(out, d)
            if on_report is not None:
                on_report(dict(out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _metrics(tot, fair, utilitarian, settings.reference)


def _trainable(config: dict, settings: dict, on_report=None):
    """The Tune function trainable: one cell (``config["cell"]``, or the flat config of an
    Optuna trial)."""
    import ray
    from ray import tune

    cell = dict(config["cell"]) if "cell" in config else dict(config)
    ts = TrialSettings(**settings)
    ctx = tune.get_context()
    node = ray.get_runtime_context().get_node_id()

    def report(metrics: dict, state_dir: Path) -> None:
        tune.report({**metrics, "node_id": node},
                    checkpoint=tune.Checkpoint.from_directory(str(state_dir)))

    hook = None if on_report is None else \
        (lambda m: on_report({**m, "node_id": node, "trial_id": ctx.get_trial_id(),
                              "cell": cell}))

    ckpt = tune.get_checkpoint()
    _, env, _ = resolve_cell(cell)
    runner = ts.runner_for(env)

    def go(path):
        if runner == "coordinator":
            return run_coordinator_trial(cell, ts, report, path, hook,
                                         name=f"sweep-{ctx.get_trial_id()}")
        return run_inprocess_trial(cell, ts, report, path, hook)

    if ckpt is None:
        go(None)
    else:
        with ckpt.as_directory() as path:
            go(path)


# --------------------------------------------------------------------------- the sweep
def _param_space(space: SweepSpace, cells: list[dict] | None, search: str):
    from ray import tune

    if search != "optuna":
        return {"cell": tune.grid_search(cells)}
    out = {}
    for key, v in space.dims.items():
        if isinstance(v, list):
            out[key] = tune.choice(v) if len(v) > 1 else v[0]
        elif hasattr(v, "kind"):
            out[key] = {"uniform": lambda a: tune.uniform(*a),
                        "loguniform": lambda a: tune.loguniform(*a),
                        "randint": lambda a: tune.randint(*a),
                        "choice": lambda a: tune.choice(list(a))}[v.kind](v.args)
        else:
            out[key] = v
    return out


def _optuna_search(metric: str):
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise SweepError("--search optuna needs Optuna: pip install 'librex-alloc[optuna]' "
                         "(or pip install optuna)") from None
    from ray.tune.search.optuna import OptunaSearch

    return OptunaSearch(metric=metric, mode="max")


def _resources(config: dict, settings: TrialSettings):
    """The placement group of a trial: a bundle for the trial's process, and for coordinator
    trials one CPU per shard (their actors)."""
    from ray import tune

    cell = config["cell"] if "cell" in config else config
    _, env, _ = resolve_cell(cell)
    bundles = [{"CPU": settings.cpus}]
    if settings.runner_for(env) == "coordinator":
        bundles += [{"CPU": 1}] * min(settings.shards, env["agents"])
    return tune.PlacementGroupFactory(bundles)


def _expand(space: SweepSpace, search: str, samples: int, search_seed: int, metric: str,
            settings: TrialSettings):
    """(cells, searcher): the checked cells of a grid or random sweep, or Optuna's searcher
    after the space's bounds are checked."""
    if search == "optuna":
        space.validate()
        check_cells_for_runner([{k: (v[0] if isinstance(v, list) else v)
                                 for k, v in space.dims.items() if not hasattr(v, "kind")}],
                               settings)
        return None, _optuna_search(metric)
    cells = space.cells(search, samples, search_seed)
    check_cells_for_runner(cells, settings)
    return cells, None


def run_sweep(space: SweepSpace | None = None, *, storage: str, name: str = "sweep",
              out: str | os.PathLike = "out/sweep", search: str = "grid", samples: int = 1,
              search_seed: int = 0, settings: TrialSettings | None = None,
              metric: str = REWARD, reward_floor: float | None = None,
              max_failures: int = 3, max_concurrent: int = 0, resume: bool = False,
              address: str | None = None, verbose: int = 1, on_report=None,
              plot: bool = True) -> SweepResult:
    """Run (or ``resume``) a sweep; returns a :class:`SweepResult`.

    storage: a folder every node sees, or a bucket URI; the experiment lives in
    ``storage/name`` (a new sweep refuses an existing one: nothing is overwritten). out: a
    local folder for trials.parquet, pareto.png and summary.md. On ``resume`` the space and
    settings are read from the experiment; a given ``space`` (or ``settings``) must be the same.
    max_failures: restarts of a failed trial from its last checkpoint (a lost node is one).
    on_report: called in the trial's process after each report with its metrics, ``node_id``,
    ``trial_id`` and ``cell`` (a test hook: it may
    raise). Raises :class:`SweepSpaceError` / :class:`SweepError` before any trial starts.
    """
    if search not in SEARCHES:
        raise SweepSpaceError(f"search: expected one of {SEARCHES}, got {search!r}")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise SweepError(f"--name: expected a plain folder name, got {name!r}")
    if reward_floor is not None and not (isinstance(reward_floor, (int, float))
                                         and math.isfinite(reward_floor)):
        raise SweepSpaceError(f"reward_floor: expected a number, got {reward_floor!r}")
    if not resume:  # the space first: a bad one changes nothing, not even the storage
        if space is None or not space.dims:
            raise SweepSpaceError("an empty space: give --param KEY=VALUES or --space FILE")
        settings = settings or TrialSettings()
        cells, searcher = _expand(space, search, samples, search_seed, metric, settings)
    tune_storage, fs, exp = prepare_storage(storage, name)
    if resume:
        meta = _read_meta(fs, exp)
        stored = SweepSpace(meta["space"])
        if space is not None and space.fingerprint() != stored.fingerprint():
            raise SweepError(f"--resume: the sweep in {exp!r} has another space "
                             f"({stored.fingerprint()}); resume it without a space, or start a "
                             f"new one (--name)")
        stored_settings = TrialSettings(**meta["settings"])
        if settings is not None and settings != stored_settings:
            raise SweepError(f"--resume: the sweep in {exp!r} ran with other trial settings "
                             f"({asdict(stored_settings)})")
        space, settings = stored, stored_settings
        search, samples, search_seed = meta["search"], meta["samples"], meta["search_seed"]
        metric = meta["metric"]
        cells, searcher = _expand(space, search, samples, search_seed, metric, settings)
    elif _exists(fs, exp):
        raise SweepError(f"{exp!r} holds an earlier sweep: resume it (--resume) or choose "
                         f"another --name")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise SweepError(f"--out {str(out)!r}: not a writable folder "
                         f"({exc.strerror or exc})") from None
    if not resume:
        try:
            _write_meta(fs, exp, _meta(space, search, samples, search_seed, settings, metric))
        except OSError as exc:
            raise SweepError(f"--storage {storage!r}: cannot write ({exc})") from None

    import ray
    from ray import tune

    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
        started = True
    try:
        trainable = tune.with_parameters(_trainable, settings=asdict(settings),
                                         on_report=on_report)
        trainable = tune.with_resources(trainable, lambda config: _resources(config, settings))
        if resume:
            tuner = tune.Tuner.restore(exp if not _is_uri(storage) else exp_uri(storage, name),
                                       trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable, param_space=_param_space(space, cells, search),
                tune_config=tune.TuneConfig(
                    search_alg=searcher, num_samples=samples if search == "optuna" else 1,
                    max_concurrent_trials=max_concurrent or None),
                run_config=tune.RunConfig(
                    name=name, storage_path=tune_storage, verbose=verbose,
                    failure_config=tune.FailureConfig(max_failures=max_failures),
                    # in-process checkpoints are small: keep them all (keeping a few forces
                    # an experiment snapshot on every report); a coordinator's folder grows
                    checkpoint_config=tune.CheckpointConfig(
                        num_to_keep=None if settings.runner == "inprocess" else 2)))
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    return write_outputs(grid, space, settings, out, exp, reward_floor=reward_floor, plot=plot)


def exp_uri(storage: str, name: str) -> str:
    return f"{storage.rstrip('/')}/{name}"


def trials_frame(grid, space: SweepSpace, settings: TrialSettings) -> tuple[pd.DataFrame, dict]:
    """One row per trial of a Tune ``ResultGrid``: the parameters (their dotted keys as column
    names), ``status`` ("done" when all rounds ran, else "error"/"unfinished"), the last
    reported metrics, ``node_id`` and ``trial_id``."""
    rows, errors = [], {}
    keys = list(space.dims)
    for res in grid:
        cfg = res.config or {}
        cell = cfg.get("cell", cfg)
        m = res.metrics or {}
        row = {k: cell.get(k) for k in keys}
        row["trial_id"] = m.get("trial_id") or Path(res.path).name
        done = m.get("rounds_done", 0) >= settings.rounds
        row["status"] = "done" if done else ("error" if res.error else "unfinished")
        if res.error is not None:
            errors[row["trial_id"]] = str(res.error).strip().splitlines()[-1][:300]
        for c in (*METRICS, *(k for k in m if k.startswith("utilization_")), "node_id"):
            row[c] = m.get(c, float("nan") if c != "node_id" else None)
        row["path"] = res.path
        rows.append(row)
    df = pd.DataFrame(rows)
    for k in keys:  # mixed types (e.g. "none" and 0.5) as text, so Parquet takes them
        if k in df.columns and df[k].map(type).nunique() > 1:
            df[k] = df[k].map(lambda v: v if v is None else str(v))
    return df, errors


def plot_front(table: pd.DataFrame, trials: pd.DataFrame, png: Path, params: list[str],
               title: str = "") -> None:
    """Reward vs Gini of every trial (dots) and setting (mean over seeds, rings), the Pareto
    front of the settings drawn as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    ok = trials[trials["status"] == "done"]
    ax.scatter(ok[FAIRNESS], ok[REWARD], s=12, alpha=0.35, color="tab:gray", label="trials")
    ax.scatter(table[FAIRNESS], table[REWARD], s=46, facecolors="none", edgecolors="tab:blue",
               label="settings (mean over seeds)")
    front = table[table["front"]].sort_values(FAIRNESS)
    ax.step(front[FAIRNESS], front[REWARD], where="post", color="tab:red", lw=1.8,
            label="Pareto front")
    ax.scatter(front[FAIRNESS], front[REWARD], s=46, color="tab:red", zorder=3)
    keys = [p for p in params if p != "seed" and p in table.columns]
    for _, row in front.iterrows():
        label = ", ".join(f"{k.split('.')[-1]}={_short(row[k])}" for k in keys)
        ax.annotate(label, (row[FAIRNESS], row[REWARD]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set(xlabel="Gini of cumulative reward (lower is fairer)",
           ylabel="expected reward / utilitarian oracle", title=title or "reward–fairness")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)


def write_outputs(grid, space: SweepSpace, settings: TrialSettings, out: Path, exp: str, *,
                  reward_floor=None, plot: bool = True) -> SweepResult:
    trials, errors = trials_frame(grid, space, settings)
    params = space.varying or list(space.dims)
    table = settings_table(trials, params)
    picks = pick_settings(table, reward_floor)
    parquet = out / "trials.parquet"
    tmp = parquet.with_suffix(".parquet.tmp")
    trials.to_parquet(tmp, index=False)
    os.replace(tmp, parquet)
    n_failed = int((trials["status"] != "done").sum()) if len(trials) else 0
    md = summary_markdown(table, picks, params, reward_floor=reward_floor,
                          title=f"Sweep {Path(exp).name}", n_trials=len(trials),
                          n_failed=n_failed)
    summary = out / "summary.md"
    summary.write_text(md)
    png = None
    if plot and len(table):
        png = out / "pareto.png"
        plot_front(table, trials, png, params, title=f"sweep {Path(exp).name!r}: "
                   f"{settings.rounds} rounds per trial")
    return SweepResult(trials, table, picks, parquet, png, summary, exp, errors)


# --------------------------------------------------------------------------- command line
def _one_line_error(p: argparse.ArgumentParser) -> None:
    """Usage errors of ``p`` as one line on stderr (``PROG: error: MESSAGE``), exit 2."""

    def error(message: str):
        print(f"{p.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)

    p.error = error


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _one_line_error(p)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUES",
                   help="a dimension: fairness.alpha=0,0.5,1 (grid), seed=0:5 (0-4), "
                   "uniform(0,1), loguniform(1e-3,1), randint(0,9), choice(a,b), or one value; "
                   "repeatable; over --space")
    p.add_argument("--space", default=None, metavar="FILE",
                   help="a JSON or TOML space in the shape of PolicyConfig.to_dict() plus an "
                   "env table; leaves: a value, a list (grid) or {uniform|loguniform|randint|"
                   "choice: [...]}")
    p.add_argument("--search", choices=SEARCHES, default="grid",
                   help="grid, random (--samples draws of the distributions per grid cell) or "
                   "optuna (needs the optuna extra)")
    p.add_argument("--samples", type=_int(1), default=1, help="random/optuna: samples")
    p.add_argument("--search-seed", type=_int(0), default=0, help="random: the sampling seed")
    p.add_argument("--rounds", type=_int(1), default=None, help="rounds per trial (200)")
    p.add_argument("--report-every", type=_int(1), default=None,
                   help="rounds between reports and checkpoints (50)")
    p.add_argument("--runner", choices=RUNNERS, default=None,
                   help="inprocess, coordinator (run_job: a coordinator and shard actors), or "
                   "auto: coordinator from --coordinator-above agents (auto)")
    p.add_argument("--coordinator-above", type=_int(1), default=None,
                   help="auto runner: agents from which a trial uses a coordinator (5000)")
    p.add_argument("--shards", type=_int(1), default=None, help="coordinator trials: shards (1)")
    p.add_argument("--cpus-per-trial", type=_float_pos, default=None, help="CPUs (1)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the utilitarian twin run (no reward_kept)")
    p.add_argument("--storage", required=True,
                   help="where Tune keeps trials and checkpoints: a folder every node sees, or "
                   "a bucket URI (s3://..., gs://...)")
    p.add_argument("--name", default="sweep", help="the experiment's folder in --storage")
    p.add_argument("--out", default="out/sweep",
                   help="local folder for trials.parquet, pareto.png, summary.md")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep --storage/--name (finished trials are kept)")
    p.add_argument("--reward-floor", type=_float_any, default=None,
                   help="also name the fairest setting with reward_vs_oracle >= this")
    p.add_argument("--max-failures", type=_int(0), default=3,
                   help="restarts of a failed trial from its checkpoint")
    p.add_argument("--max-concurrent", type=_int(0), default=0,
                   help="trials at once (0: as resources allow)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default RAY_ADDRESS, else a new local Ray)")
    p.add_argument("--quiet", action="store_true", help="no progress table")
    return p


def _int(low: int):
    def parse(text: str) -> int:
        try:
            v = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
        return v

    return parse


def _float_any(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def _float_pos(text: str) -> float:
    v = _float_any(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return v


def _settings_from_args(args) -> TrialSettings | None:
    given = {"rounds": args.rounds, "report_every": args.report_every, "runner": args.runner,
             "coordinator_above": args.coordinator_above, "shards": args.shards,
             "cpus": args.cpus_per_trial}
    given = {k: v for k, v in given.items() if v is not None}
    if args.no_reference:
        given["reference"] = False
    if args.resume and not given:
        return None
    return TrialSettings(**given)


def sweep_command(args, parser: argparse.ArgumentParser) -> int:
    """Run the parsed ``sweep`` options; usage errors exit 2 with one line."""
    try:
        space = None
        if args.space is not None:
            space = SweepSpace.from_file(args.space)
        if args.param:
            extra = SweepSpace.from_params(args.param)
            space = extra if space is None else space.merged(extra)
        settings = _settings_from_args(args)
        result = run_sweep(space, storage=args.storage, name=args.name, out=args.out,
                           search=args.search, samples=args.samples,
                           search_seed=args.search_seed, settings=settings,
                           reward_floor=args.reward_floor, max_failures=args.max_failures,
                           max_concurrent=args.max_concurrent, resume=args.resume,
                           address=args.address, verbose=0 if args.quiet else 1)
    except (SweepSpaceError, SweepError) as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; continue with --resume", file=sys.stderr)
        return 130
    try:
        print(result.summary.read_text())
        print(f"trials: {result.parquet}\nsummary: {result.summary}"
              + (f"\nplot: {result.plot}" if result.plot else "")
              + f"\nexperiment: {result.experiment}", flush=True)
    except BrokenPipeError:  # e.g. | head: end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    status = result.trials["status"] if len(result.trials) else pd.Series([], dtype=object)
    if (status == "unfinished").any():  # Tune stopped on Ctrl-C and saved its state
        print(f"{parser.prog}: interrupted; {int((status != 'done').sum())} trials did not "
              f"finish: continue with --resume", file=sys.stderr)
        return 130
    if (status != "done").any():
        print(f"{int((status != 'done').sum())} trials failed (retry them with --resume):",
              file=sys.stderr)
        for tid, err in result.errors.items():
            print(f"  {tid}: {err}", file=sys.stderr)
        return 1
    return 0


def register(subparsers):
    """Plug-in hook of ``librex-alloc`` (entry point ``librex_alloc.commands: sweep``)."""
    parser = configure_parser(subparsers.add_parser(
        "sweep", help="sweep policy settings on Ray Tune",
        description="Sweep PolicyConfig settings (fairness, priors, discount, oracle, gap "
        "tolerance), the environment and seeds on Ray Tune; writes trials.parquet, a "
        "reward-fairness Pareto plot and a markdown summary.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter))
    return parser, sweep_command


def main(argv=None) -> int:
    parser = configure_parser(cli_args.ArgumentParser(
        prog="python -m coordinator.sweep",
        description="Sweep policy settings on Ray Tune (same as 'librex-alloc sweep')."))
    return sweep_command(parser.parse_args(argv), parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
