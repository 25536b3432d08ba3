"""The evaluation: the original design's claims, measured (``librex-alloc bench paper``).

One command runs every experiment through the resumable runner
(:mod:`librex_alloc.evaluation.runner`) and writes ``RESULTS.md`` and PNG plots:

1. the five success criteria of SPEC §7, each with its mean and 95 % confidence interval over
   seeds, per instance family, and a plain verdict (met / not met);
2. regret and reward / oracle on a log grid of horizons T;
3. the reward–fairness Pareto frontier (reward kept against the Gini and Jain indices) across
   α, minimum shares with η, and the reward-loss bound ε, with the baselines and the original
   design's three modes as points;
4. the horizon-budget comparison (one budget for the whole run, paced);
5. the peer cross-check against MABWiser, when the ``bench`` extra is installed.

Every table names its budget mode. Rewards are *expected* rewards of the chosen allocations
(the environment's true means), summed over the run; "reward kept" is relative to the
utilitarian constrained TS on the same instance and seed (paired).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from librex_alloc.evaluation.runner import (
    ENVIRONMENTS,
    Cell,
    load_cells,
    mean_ci,
    run_grid,
    summarize_cells,
)


@dataclass(frozen=True)
class Plan:
    """Sizes of one evaluation run."""

    seeds: int  # per cell of the criteria and the horizon comparison
    rounds: int  # T of the criteria, the frontier and the horizon comparison
    long_rounds: int  # the largest T of the log grid
    frontier_seeds: int
    peer_rounds: int
    n_agents: int = 20


DEFAULT = Plan(seeds=20, rounds=1000, long_rounds=10_000, frontier_seeds=10, peer_rounds=2000)
QUICK = Plan(seeds=2, rounds=40, long_rounds=100, frontier_seeds=2, peer_rounds=100,
             n_agents=8)

UTILITARIAN = {"fairness": "none"}


def families(plan: Plan) -> dict[str, tuple[str, dict]]:
    """Instance families: name → (environment, keyword arguments)."""
    n = plan.n_agents
    fam = {
        "tight-homogeneous": ("synthetic", {"n_agents": n, "n_resources": 3,
                                            "tightness": 0.3}),
        "loose-homogeneous": ("synthetic", {"n_agents": n, "n_resources": 3,
                                            "tightness": 0.6}),
        "tight-heterogeneous": ("synthetic", {"n_agents": n, "n_resources": 3,
                                              "tightness": 0.3, "heterogeneity": 0.7}),
    }
    envs = ENVIRONMENTS()
    if "orlib" in envs:
        fam["orlib-mknap1"] = ("orlib", {"instance": 6})
    if "alibaba" in envs:
        fam["alibaba-gpu"] = ("alibaba", {"n_agents": max(2 * n, 20), "tightness": 0.3})
    return fam


#: (label, policy, policy keyword arguments) of the fairness settings compared with "none"
def fairness_settings() -> list[tuple[str, str, dict]]:
    out = [("α=0 (none)", "constrained-ts", {"fairness": "none"})]
    for a in (0.25, 0.5, 0.75):
        out.append((f"α={a}", "constrained-ts", {"fairness": a}))
    out += [("α=1 (proportional)", "constrained-ts", {"fairness": "proportional"}),
            ("α=2", "constrained-ts", {"fairness": 2.0}),
            ("α=5", "constrained-ts", {"fairness": 5.0}),
            ("α=50 (maxmin)", "constrained-ts", {"fairness": "maxmin"})]
    for eps in (0.05, 0.1, 0.2, 0.3):
        out.append((f"α=1, ε={eps}", "constrained-ts",
                    {"fairness": {"mode": "proportional", "max_reward_loss": eps}}))
    for eta in (0.25, 1.0, 4.0):
        out.append((f"ρ=0.2, η={eta}", "constrained-ts",
                    {"fairness": {"mode": "none", "min_share": 0.2, "eta": eta}}))
    return out


def baseline_points(rounds: int) -> list[tuple[str, str, dict]]:
    return [
        ("CUCB", "cucb", {}), ("ε-greedy", "epsilon-greedy", {}), ("greedy", "greedy", {}),
        ("TS-unconstrained", "ts-unconstrained", {}), ("round-robin", "round-robin", {}),
        ("BTS", "bts", {}),
        ("Fair-Learn (ρ=0.2)", "fair-learn",
         {"fairness": {"mode": "none", "min_share": 0.2}, "params": {"alpha": 1.0}}),
        ("IRS.FH", "irs-fh", {"params": {"horizon": rounds}}), ("DRF", "drf", {}),
        ("design: none", "design", {"params": {"mode": "none"}}),
        ("design: proportional", "design", {"params": {"mode": "proportional"}}),
        ("design: maxmin", "design", {"params": {"mode": "maxmin"}}),
    ]


HORIZON_POLICIES = [("constrained TS, paced", "constrained-ts-pacing", {}),
                    ("BTS", "bts", {}), ("PD-BwK", "pd-bwk", {}),
                    ("constrained TS, unpaced (spends what remains)", "constrained-ts", {})]


def _cells(plan: Plan) -> dict[str, list[Cell]]:
    fam = families(plan)
    cells: dict[str, list[Cell]] = {"criteria": [], "long": [], "frontier": [], "horizon": []}
    crit = [("TS", "constrained-ts", UTILITARIAN), ("CUCB", "cucb", UTILITARIAN),
            ("TS α=1 (proportional)", "constrained-ts", {"fairness": "proportional"}),
            ("TS α=50 (maxmin)", "constrained-ts", {"fairness": "maxmin"}),
            ("TS α=1, ε=0.1", "constrained-ts",
             {"fairness": {"mode": "proportional", "max_reward_loss": 0.1}})]
    for name, (env, kw) in fam.items():
        for seed in range(plan.seeds):
            for label, pol, pkw in crit:
                cells["criteria"].append(Cell(pol, env, seed, plan.rounds,
                                              policy_kwargs={"oracle": "fast", **pkw},
                                              env_kwargs=kw, label=f"{name}|{label}"))
    env, kw = fam["tight-homogeneous"]
    for seed in range(plan.seeds):
        for label, pol in (("TS", "constrained-ts"), ("CUCB", "cucb")):
            cells["long"].append(Cell(pol, env, seed, plan.long_rounds,
                                      policy_kwargs={"oracle": "fast"}, env_kwargs=kw,
                                      sim_kwargs={"metrics_every": plan.long_rounds},
                                      label=label))
    for seed in range(plan.frontier_seeds):
        for label, pol, pkw in fairness_settings() + baseline_points(plan.rounds):
            cells["frontier"].append(Cell(pol, env, seed, plan.rounds,
                                          policy_kwargs={"oracle": "fast", **pkw},
                                          env_kwargs=kw, label=label))
    for seed in range(plan.seeds):
        for label, pol, pkw in HORIZON_POLICIES:
            cells["horizon"].append(Cell(pol, env, seed, plan.rounds,
                                         policy_kwargs={"oracle": "fast", **pkw},
                                         env_kwargs=kw, sim_kwargs={"budget_mode": "horizon"},
                                         label=label))
    return cells


# ------------------------------------------------------------------------------ analysis
def _fmt(m: float, h: float, pct: bool = False) -> str:
    if not np.isfinite(m):
        return "n/a"
    if pct:
        return f"{100 * m:+.1f} % ± {100 * h:.1f}" if np.isfinite(h) else f"{100 * m:+.1f} %"
    return f"{m:.3f} ± {h:.3f}" if np.isfinite(h) else f"{m:.3f}"


def _paired(summary: pd.DataFrame, a: str, b: str, col: str, fam: str) -> np.ndarray:
    """Per seed: value of ``col`` for label ``fam|a`` over ``fam|b``."""
    x = summary[summary["label"] == f"{fam}|{a}"].set_index("seed")[col]
    y = summary[summary["label"] == f"{fam}|{b}"].set_index("seed")[col]
    both = x.index.intersection(y.index)
    return (x[both] / y[both]).to_numpy(dtype=np.float64)


def criteria_table(summary: pd.DataFrame, fams: list[str]) -> pd.DataFrame:
    """The five criteria of SPEC §7 per instance family, with verdicts."""
    rows = []
    for fam in fams:
        gain = _paired(summary, "TS", "CUCB", "expected_reward", fam) - 1.0
        m, h = mean_ci(gain)
        lo = m - h if np.isfinite(h) else m
        rows.append({"family": fam, "criterion": "1. TS reward over UCB (claim +15–25 %)",
                     "measured": _fmt(m, h, pct=True),
                     "verdict": "met" if lo >= 0.15 else "not met"})
        rows.append({"family": fam, "criterion": "4. ablation: TS over UCB (claim +10–15 %)",
                     "measured": _fmt(m, h, pct=True),
                     "verdict": "met" if lo >= 0.10 else "not met"})
        best = None
        for label in ("TS α=1 (proportional)", "TS α=50 (maxmin)", "TS α=1, ε=0.1"):
            g = 1.0 - _paired(summary, label, "TS", "gini_service", fam)
            r = _paired(summary, label, "TS", "expected_reward", fam)
            (gm, gh), (rm, rh) = mean_ci(g), mean_ci(r)
            ok = (gm - gh >= 0.30) and (rm - rh >= 0.90)
            cand = (ok, gm, label, gm, gh, rm, rh)
            if best is None or cand[:2] > best[:2]:
                best = cand
            if label == "TS α=1 (proportional)":
                rows.append({"family": fam,
                             "criterion": "5. ablation: fairness (α=1) cuts Gini by ≥ 30 %",
                             "measured": f"Gini(service) {_fmt(-gm, gh, pct=True)}",
                             "verdict": "met" if gm - gh >= 0.30 else "not met"})
        ok, _, label, gm, gh, rm, rh = best
        rows.append({"family": fam,
                     "criterion": "2. fairness: Gini −30–40 % at ≥ 90 % of the reward",
                     "measured": f"best: {label}: Gini(service) {_fmt(-gm, gh, pct=True)}, "
                                 f"reward {_fmt(rm, rh)}",
                     "verdict": "met" if ok else "not met"})
        sel = summary[summary["label"] == f"{fam}|TS"]["reward_vs_oracle"]
        m, h = mean_ci(sel)
        rows.append({"family": fam, "criterion": "3. near-optimal: ≥ 95 % of the oracle",
                     "measured": _fmt(m, h), "verdict": "met" if m - h >= 0.95 else "not met"})
    return pd.DataFrame(rows).sort_values("criterion", kind="stable")


def log_grid_table(rounds: pd.DataFrame, horizons: list[int]) -> pd.DataFrame:
    rows = []
    for label, df in rounds.groupby("label", sort=False):
        for t in horizons:
            part = df[df["round"] <= t].groupby("seed")
            reg = part["regret"].sum().to_numpy()
            ratio = (part["expected_reward"].sum() / part["oracle_reward"].sum()).to_numpy()
            (rm, rh), (qm, qh) = mean_ci(reg), mean_ci(ratio)
            rows.append({"policy": label, "T": t, "regret": rm, "regret_ci": rh,
                         "reward_vs_oracle": qm, "ratio_ci": qh})
    return pd.DataFrame(rows)


def frontier_table(summary: pd.DataFrame) -> pd.DataFrame:
    ref = summary[summary["label"] == "α=0 (none)"].set_index("seed")
    rows = []
    for label, df in summary.groupby("label", sort=False):
        d = df.set_index("seed")
        both = d.index.intersection(ref.index)
        kept = (d.loc[both, "expected_reward"] / ref.loc[both, "expected_reward"]).to_numpy()
        row = {"setting": label}
        for col in ("gini_service", "jain_service", "gini_reward", "jain_reward"):
            row[col], row[col + "_ci"] = mean_ci(d[col])
        row["reward_kept"], row["reward_kept_ci"] = mean_ci(kept)
        row["vs_oracle"], _ = mean_ci(d["reward_vs_oracle"])
        rows.append(row)
    return pd.DataFrame(rows)


def horizon_table(summary: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for label, df in summary.groupby("label", sort=False):
        row = {"policy": label}
        row["reward"], row["reward_ci"] = mean_ci(df["expected_reward"])
        row["vs_oracle"], row["vs_oracle_ci"] = mean_ci(df["reward_vs_oracle"])
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ report
def _md(df: pd.DataFrame, floats: str = "{:.3f}") -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(floats.format(v) if isinstance(v, float) else str(v)
                                     for v in r) + " |")
    return "\n".join(out)


def _machine() -> str:
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                    if ln.startswith("model name")), platform.processor())
    except OSError:
        cpu = platform.processor()
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, numpy "
            f"{np.__version__}, {platform.system()} {platform.release()}")


def _plots(out: Path, grid: pd.DataFrame, frontier: pd.DataFrame,
           horizon: pd.DataFrame) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for label, df in grid.groupby("policy", sort=False):
        ax[0].errorbar(df["T"], df["regret"], yerr=df["regret_ci"], label=label, marker="o")
        ax[1].errorbar(df["T"], df["reward_vs_oracle"], yerr=df["ratio_ci"], label=label,
                       marker="o")
    ax[0].set(xscale="log", yscale="log", xlabel="T (rounds)", ylabel="cumulative regret",
              title="regret vs the utilitarian oracle")
    ax[1].set(xscale="log", xlabel="T (rounds)", ylabel="reward / oracle",
              title="reward relative to the oracle")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(out / "regret_log_grid.png", dpi=110)
    plt.close(fig)
    files.append("regret_log_grid.png")

    fig, ax = plt.subplots(1, 2, figsize=(12, 5))
    for j, (metric, name) in enumerate((("gini_service", "Gini of service (lower is fairer)"),
                                        ("jain_service", "Jain of service (higher is fairer)"))):
        for _, r in frontier.iterrows():
            lab = r["setting"]
            style = "s" if lab.startswith("design") else "o" if lab.startswith(
                ("α", "ρ")) else "^"
            ax[j].errorbar(r[metric], r["reward_kept"], xerr=r[metric + "_ci"],
                           yerr=r["reward_kept_ci"], fmt=style, capsize=2)
            ax[j].annotate(lab, (r[metric], r["reward_kept"]), fontsize=6,
                           xytext=(3, 3), textcoords="offset points")
        ax[j].set(xlabel=name, ylabel="reward kept vs utilitarian TS",
                  title="reward–fairness frontier (● rule, ▲ baseline, ■ design)")
        ax[j].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "pareto_frontier.png", dpi=110)
    plt.close(fig)
    files.append("pareto_frontier.png")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(horizon["policy"], horizon["vs_oracle"], xerr=horizon["vs_oracle_ci"])
    ax.set(xlabel="reward / per-round LP with budget H/T",
           title="horizon budget (one budget for the run)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "horizon_budget.png", dpi=110)
    plt.close(fig)
    files.append("horizon_budget.png")
    return files


def run(plan: Plan, out: Path, *, workers: int = 2, executor=None, progress=None,
        command: str = "librex-alloc bench paper") -> Path:
    """Run every experiment (resuming finished cells) and write ``out/RESULTS.md``."""
    from librex_alloc.evaluation import peer

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cells = _cells(plan)
    done_before = 0
    paths = {}
    for part, cs in cells.items():
        def prog(done, base=done_before):
            if progress is not None:
                progress(base + done)
        paths[part] = run_grid(cs, out / part, workers=workers, executor=executor,
                               progress=prog)
        done_before += len(cs)
    summaries = {part: summarize_cells(load_cells(p)) for part, p in paths.items()
                 if part != "long"}
    fams = list(families(plan))
    crit = criteria_table(summaries["criteria"], fams)
    horizons = [t for t in (10, 30, 100, 300, 1000, 3000, 10_000, 30_000)
                if t <= plan.long_rounds]
    if horizons[-1] != plan.long_rounds:
        horizons.append(plan.long_rounds)
    long_rounds = load_cells(paths["long"])
    grid = log_grid_table(long_rounds, horizons)
    frontier = frontier_table(summaries["frontier"])
    horizon = horizon_table(summaries["horizon"])
    pt = peer.peer_check(rounds=plan.peer_rounds, seeds=plan.seeds)
    pv = peer.verdicts(pt)
    _plots(out, grid, frontier, horizon)
    wall = time.perf_counter() - t0
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    fam_lines = "\n".join(f"- **{k}**: `{e}` {kw}" for k, (e, kw) in families(plan).items())
    text = f"""# Results: the original design's claims, measured

Command: `{command}` ({wall / 60:.1f} min on {_machine()}; commit {commit}).
Cells (policy × environment × seed) are cached under `{out}`; re-running resumes.

Sizes: {plan.seeds} seeds per cell, T = {plan.rounds} rounds (log grid up to
{plan.long_rounds}), frontier {plan.frontier_seeds} seeds. Rewards are expected rewards of the
chosen allocations (true means), summed over the run; ± is the half-width of the 95 %
Student-t confidence interval over seeds. Oracle: the utilitarian oracle with the true means
(method `auto`). Every policy uses the `fast` oracle (approximate-oracle CTS; SPEC §3).

Instance families:
{fam_lines}

## 1. The five success criteria (budget mode: per round)

"met" means the whole 95 % interval clears the claim's threshold.

{_md(crit)}

## 2. Regret and reward / oracle on a log grid of T (budget mode: per round, tight-homogeneous)

{_md(grid)}

![regret](regret_log_grid.png)

## 3. Reward–fairness frontier (budget mode: per round, tight-homogeneous)

Reward kept is paired with the utilitarian constrained TS (α = 0) on the same seed. The
design's modes are reimplemented as written (`librex_alloc/evaluation/design.py`): its
"proportional" heuristic and its max-min model (whose optimum is the empty allocation).

{_md(frontier)}

![frontier](pareto_frontier.png)

## 4. Horizon budget (budget mode: one budget for the whole run, tight-homogeneous)

The run's budget H is T times the per-round budget; each round may spend what remains and the
pacing policies steer towards remaining / remaining rounds. "vs oracle" is relative to the
per-round LP with budget H / T (the simulator's reference in this mode).

{_md(horizon)}

![horizon](horizon_budget.png)

## 5. Peer cross-check (plain Bernoulli bandit, {plan.peer_rounds} rounds, {plan.seeds} seeds)

One resource, every agent requests 1 unit, a budget of 1 unit: exactly one arm per round.
Arms' means {list(peer.DEFAULT_MEANS)}. Verdicts: {pv}.

{_md(pt) if len(pt) else "not run"}
"""
    (out / "RESULTS.md").write_text(text)
    return out / "RESULTS.md"


EXECUTOR_GROUP = "librex_alloc.executors"


def plugin_executor(name: str, parser=None):
    """An executor made by the installed plug-in ``name`` (entry point group
    :data:`EXECUTOR_GROUP`; ``coordinator`` provides ``ray``). The core names no plug-in."""
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=EXECUTOR_GROUP) if ep.name == name]
    if not found:
        msg = f"no {name!r} executor installed (entry point group {EXECUTOR_GROUP!r})"
        if parser is not None:
            parser.error(msg)
        raise LookupError(msg)
    return found[0].load()()


def _check_data(parser) -> None:
    """The trace families need their data: a one-line usage error before any cell runs."""
    from librex_alloc.datasets import find_data
    from librex_alloc.environments.orlib import MKNAP_FILE
    from librex_alloc.environments.traces import ALIBABA_DATASET, NODE_FILE, POD_FILE

    try:
        find_data(None, "orlib_mknap", MKNAP_FILE)
        for name in (POD_FILE, NODE_FILE):
            find_data(None, ALIBABA_DATASET, name)
    except FileNotFoundError as exc:
        parser.error(str(exc))


def main(argv=None) -> int:
    from librex_alloc.cli_args import HelpFormatter, positive_int, prepare_out_dir
    from librex_alloc.progress import Progress

    p = argparse.ArgumentParser(prog="librex-alloc bench paper", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a smoke-test size (minutes): checks the report, not the numbers")
    p.add_argument("--out", default="out/paper", help="folder for RESULTS.md, plots and cells")
    p.add_argument("--workers", type=positive_int, default=2, help="parallel processes")
    p.add_argument("--ray", action="store_true",
                   help="run the cells as Ray tasks (RAY_ADDRESS or a local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    a = p.parse_args(argv)
    _check_data(p)
    out = prepare_out_dir(p, a.out)
    plan = QUICK if a.quick else DEFAULT
    executor = None
    if a.ray:
        executor = plugin_executor("ray", p)
    total = sum(len(c) for c in _cells(plan).values())
    cmd = "librex-alloc bench paper" + (" --quick" if a.quick else "")
    with Progress(total, "bench paper", unit="cells", enabled=not a.no_progress) as bar:
        path = run(plan, Path(out), workers=a.workers, executor=executor, progress=bar,
                   command=cmd)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
