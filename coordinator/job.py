"""The main job: a coordinator and agent shards on Ray, N rounds / a duration / until stopped.

:func:`run_job` starts a local Ray when no ``address`` (or ``RAY_ADDRESS``) is given and joins
the cluster otherwise (token authentication stays as Ray configures it: on by default). It
shows a progress line, streams the per-round metrics into ``<out>/rounds.parquet``
(``ParquetWriter``, row groups of at most ``ROW_GROUP`` rows: bounded memory), then prints a
summary table and writes ``<out>/run.png``. The coordinator checkpoints into
``checkpoint_dir`` (default ``<out>/checkpoint``; on a cluster give a path every node can
reach) and can resume from it (``resume=True``).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from coordinator.core import CoordinatorConfig
from coordinator.metrics_log import columns
from librex_alloc import PolicyConfig, SyntheticEnvironment

ROW_GROUP = 1000
PHASES = ("t_submit", "t_solve", "t_commit", "t_push", "t_report", "t_metrics", "t_checkpoint")


@dataclass
class JobResult:
    """What :func:`run_job` produced: the summary numbers and the files."""

    summary: dict
    parquet: Path
    plot: Path | None
    checkpoint_dir: Path
    table: str = field(repr=False, default="")


def _connect(address: str | None, namespace: str) -> tuple[bool, str]:
    """Connect to Ray; returns (started here, description)."""
    import ray

    if ray.is_initialized():
        return False, "existing Ray session"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, namespace=namespace, log_to_driver=False)
        return True, f"Ray cluster at {address}"
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, namespace=namespace,
             log_to_driver=False)
    return True, f"local Ray ({os.cpu_count()} CPUs)"


def _prepare_checkpoint_dir(out: Path, checkpoint_dir, resume: bool) -> Path:
    default = checkpoint_dir is None
    ckpt = out / "checkpoint" if default else Path(checkpoint_dir)
    if ckpt.exists() and any(ckpt.iterdir()) and not resume:
        if not default:
            raise FileExistsError(f"checkpoint directory {str(ckpt)!r} holds a previous run: "
                                  f"resume it (--resume) or choose another directory")
        shutil.rmtree(ckpt)  # our own default folder: a fresh run starts over
    ckpt.mkdir(parents=True, exist_ok=True)
    return ckpt


def run_job(*, agents: int = 10_000, shards: int = 4, rounds: int | None = 1000,
            duration_s: float | None = None, fairness: str | float = "proportional",
            resources: int = 3, tightness: float = 0.3, oracle: str = "fast", seed: int = 0,
            address: str | None = None, out: str | os.PathLike = "out/run",
            checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
            round_deadline_s: float = 5.0, checkpoint_every: int = 100,
            fairness_every: int = 10, pending_window: int = 50, name: str = "librex-alloc",
            namespace: str = "librex-alloc", progress: bool = True, plot: bool = True,
            stream=None) -> JobResult:
    """Run the coordinator and ``shards`` agent shards hosting ``agents`` synthetic agents.

    rounds: rounds to play (None: until ``duration_s`` seconds pass, or until the
    coordinator is stopped — ``ray.get_actor(f"{name}-coordinator").stop.remote(admin=...)``
    with the admin credential (``coordinator.actor.admin_credential``) — or
    Ctrl-C). pending_window: rounds in which late outcomes are still accepted. Returns a
    :class:`JobResult`; the summary table is printed to ``stream`` (default stdout).
    """
    import ray

    from agents.actors import start_shards
    from coordinator.actor import admin_credential, get_or_create_coordinator
    from librex_alloc.progress import Progress

    stream = sys.stdout if stream is None else stream
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = _prepare_checkpoint_dir(out, checkpoint_dir, resume)
    env = SyntheticEnvironment(n_agents=agents, n_resources=resources, tightness=tightness,
                               seed=seed)
    config = CoordinatorConfig(
        PolicyConfig(resources, fairness=fairness, oracle=oracle, seed=seed,
                     max_pending_rounds=pending_window),
        env.budget, str(ckpt.resolve()), round_deadline_s=round_deadline_s,
        checkpoint_every=checkpoint_every, fairness_every=fairness_every)
    started, where = _connect(address, namespace)
    coord = handles = None
    t_start = time.perf_counter()
    try:
        coord_name = f"{name}-coordinator"
        coord = get_or_create_coordinator(config, coord_name, namespace=namespace)
        admin = admin_credential(ckpt)  # control calls need it (README, "Trust model")
        handles = start_shards(env, shards, coord_name, prefix=f"{name}-shard",
                               namespace=namespace, seed=seed)
        t_ready = time.perf_counter()
        first = ray.get(coord.status.remote())["round"]
        target = None if rounds is None else first + int(rounds)
        parquet = out / "rounds.parquet"
        schema = pa.schema(columns(resources))
        writer = pq.ParquetWriter(parquet, schema)
        written, pending = first, None
        total = rounds if rounds is not None else (math.ceil(duration_s) if duration_s else 0)
        bar = Progress(total, "run", unit="rounds" if rounds is not None else "s",
                       enabled=progress and total > 0, stream=sys.stderr)
        t_run = time.perf_counter()
        try:
            with bar:
                while True:
                    info = ray.get(coord.run.remote(until_round=target, max_seconds=0.5,
                                                    admin=admin))
                    while True:  # stream the new rows, ROW_GROUP at a time
                        rows = ray.get(coord.metrics_since.remote(written, ROW_GROUP,
                                                                  admin=admin))
                        if not rows["round"]:
                            break
                        writer.write_table(pa.table(rows, schema=schema))
                        written = rows["round"][-1]
                    elapsed = time.perf_counter() - t_run
                    bar.update(info["round"] - first if rounds is not None else elapsed)
                    if info["stopped"] or (target is not None and info["round"] >= target) \
                            or (duration_s is not None and elapsed >= duration_s):
                        break
        except KeyboardInterrupt:
            pending = "interrupted"
            ray.get(coord.stop.remote(admin=admin))
        finally:
            writer.close()
        wall = time.perf_counter() - t_run
        ray.get(coord.close.remote(admin=admin))  # final snapshot; the directory is released
        status = ray.get(coord.status.remote())
    finally:
        for h in ([coord] if coord is not None else []) + list(handles or []):
            ray.kill(h, no_restart=True)
        if started:
            ray.shutdown()
    summary = summarize(pq.read_table(parquet).to_pandas(), status, wall=wall,
                        setup=t_ready - t_start)
    summary.update(agents=agents, shards=shards, fairness=str(fairness), oracle=oracle,
                   where=where, interrupted=pending is not None)
    table = format_summary(summary, parquet, ckpt)
    png = None
    if plot and summary["rounds"]:
        png = out / "run.png"
        plot_run(parquet, png, title=f"{agents:,} agents in {shards} shards, fairness "
                 f"{fairness}")
        table += f"\nplot: {png}"
    print(table, file=stream, flush=True)
    return JobResult(summary, parquet, png, ckpt, table)


# --------------------------------------------------------------------------- summary
def summarize(df, status: dict, *, wall: float, setup: float) -> dict:
    """Whole-run numbers from the rounds table (pandas) and the coordinator's status."""
    n = len(df)
    last = df.ffill().iloc[-1] if n else None
    util = [c for c in df.columns if c.startswith("utilization_")]
    oracle_total = float(df["oracle_reward"].sum()) if n else float("nan")
    expected_total = float(df["expected_reward"].sum()) if n else float("nan")
    out = {
        "rounds": n, "wall_s": wall, "setup_s": setup,
        "rounds_per_s": n / wall if wall > 0 else float("nan"),
        "reward": float(df["reward"].sum()) if n else 0.0,
        "expected_reward": expected_total, "oracle_reward": oracle_total,
        "reward_vs_oracle": expected_total / oracle_total if oracle_total > 0 else float("nan"),
        "cum_regret": float(df["regret"].sum()) if n else float("nan"),
        "utilization": [float(df[c].mean()) for c in util],
        "phases_ms": {p[2:]: float(df[p].median() * 1e3) if n else float("nan")
                      for p in PHASES},
        "round_ms": float(df["t_round"].median() * 1e3) if n else float("nan"),
        "checkpoint_ms": float(df.loc[df["t_checkpoint"] > 0, "t_checkpoint"].median() * 1e3)
        if n and (df["t_checkpoint"] > 0).any() else float("nan"),
        "missing_rounds": int((df["n_missing"] > 0).sum()) if n else 0,
        "counters": status["counters"],
    }
    for key in ("gini_reward", "jain_reward", "gini_service", "jain_service"):
        out[key] = float(last[key]) if last is not None else float("nan")
    return out


def format_summary(s: dict, parquet: Path, ckpt: Path) -> str:
    c = s["counters"]
    rejected = {k[9:]: v for k, v in c.items() if k.startswith("rejected_")}
    ph = s["phases_ms"]
    lines = [
        f"librex-alloc run: {s['agents']:,} agents in {s['shards']} shards, fairness "
        f"{s['fairness']}, oracle '{s['oracle']}' on {s['where']}"
        + (" (interrupted)" if s["interrupted"] else ""),
        "",
        f"{'rounds':<13}{s['rounds']:,} in {s['wall_s']:.1f} s = {s['rounds_per_s']:.1f} "
        f"rounds/s end to end (start-up {s['setup_s']:.1f} s)",
        f"{'round (ms)':<13}median {s['round_ms']:.1f}: submit {ph['submit']:.1f} | solve "
        f"{ph['solve']:.1f} | commit {ph['commit']:.1f} | push {ph['push']:.1f} | report "
        f"{ph['report']:.1f} | metrics {ph['metrics']:.1f}; snapshot {s['checkpoint_ms']:.0f} "
        f"ms each",
        f"{'reward':<13}realized {s['reward']:,.0f}; expected {s['expected_reward']:,.0f} = "
        f"{s['reward_vs_oracle']:.1%} of the utilitarian oracle on true means "
        f"({s['oracle_reward']:,.0f}), regret {s['cum_regret']:,.0f}",
        f"{'fairness':<13}Gini {s['gini_reward']:.3f} / Jain {s['jain_reward']:.3f} on "
        f"cumulative reward; Jain {s['jain_service']:.3f} on rounds served",
        f"{'utilization':<13}" + " / ".join(f"{u:.3f}" for u in s["utilization"])
        + " of the per-round budget per resource",
        f"{'outcomes':<13}{c['outcomes_applied']:,} applied (each once); "
        f"{c['duplicate_reports']} retransmissions recognized; rejected "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rejected.items()),
        f"{'faults':<13}{c['restarts']} coordinator restarts; {s['missing_rounds']} rounds "
        f"closed without a submitter",
        f"{'files':<13}{parquet} ({s['rounds']:,} rows); checkpoint {ckpt}",
    ]
    return "\n".join(lines)


def plot_run(parquet: Path, png: Path, title: str = "") -> None:
    """Four panels: reward per round, cumulative regret, fairness, phase times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pq.read_table(parquet).to_pandas()
    w = max(1, len(df) // 100)
    fig, ax = plt.subplots(2, 2, figsize=(13, 7.5))
    r = df["round"]
    ax[0, 0].plot(r, df["reward"].rolling(w, min_periods=1).mean(), label="realized")
    ax[0, 0].plot(r, df["expected_reward"].rolling(w, min_periods=1).mean(), label="expected")
    ax[0, 0].plot(r, df["oracle_reward"], "--", label="utilitarian oracle")
    ax[0, 0].set(title=f"reward per round (rolling mean of {w})", xlabel="round")
    ax[0, 1].plot(r, df["regret"].cumsum())
    ax[0, 1].set(title="cumulative regret vs the utilitarian oracle", xlabel="round")
    fair = df[["round", "jain_reward", "gini_reward", "jain_service"]].dropna()
    for col in ("jain_reward", "gini_reward", "jain_service"):
        ax[1, 0].plot(fair["round"], fair[col], label=col)
    ax[1, 0].set(title="fairness of cumulative utilities", xlabel="round", ylim=(0, 1.02))
    phases = [p for p in PHASES if p != "t_checkpoint"]
    smooth = [df[p].rolling(w, min_periods=1).median() * 1e3 for p in phases]
    ax[1, 1].stackplot(r, np.vstack(smooth), labels=[p[2:] for p in phases])
    top = float(np.nanpercentile(np.sum(smooth, axis=0), 95)) if len(df) else 1.0
    ax[1, 1].set(title=f"round phases, ms (rolling median of {w})", xlabel="round",
                 ylim=(0, 1.5 * top if top > 0 else 1.0))
    for a in ax.flat:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
