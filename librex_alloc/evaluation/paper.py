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
5. the peer cross-check against MABWiser, when the ``bench`` extra is installed;
6. the fairness knob ``max_reward_loss``: its promise against the reward it kept (every family,
   and early and late in a run), criterion 2 from the knob and from α with the two frontier
   curves, and the knob's cost per round (``--knob`` runs only this part: ``KNOB.md``).

Every table names its budget mode. Rewards are *expected* rewards of the chosen allocations
(the environment's true means), summed over the run; "reward kept" is relative to the
utilitarian constrained TS on the same instance and seed (paired).
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from librex_alloc import cli_args
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
    knob_early: int = 200  # T of the knob's early and late check (one family)
    knob_late: int = 5000
    knob_seeds: int = 10  # seeds of that check
    cost_ns: tuple = (156, 10_000)  # n of the knob's cost per round
    cost_rounds: int = 100


DEFAULT = Plan(seeds=20, rounds=1000, long_rounds=10_000, frontier_seeds=10, peer_rounds=2000)
QUICK = Plan(seeds=2, rounds=40, long_rounds=100, frontier_seeds=2, peer_rounds=100,
             n_agents=8, knob_early=20, knob_late=60, knob_seeds=2, cost_ns=(30,),
             cost_rounds=3)

#: ε of the reward-loss knob (on the α = 1 rule) measured against its promise.
KNOB_EPS = (0.05, 0.1, 0.2, 0.3)
#: α of the plain rule, the curve the knob's is compared with (α = 0 is the reference).
KNOB_ALPHAS = (0.1, 0.25, 0.5, 1.0)
#: The knob's label: α = 1 (proportional) with the bound ε.
KNOB_LABEL = "TS α=1, ε={eps}"

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


def _knob_settings() -> list[tuple[str, dict]]:
    """(label, policy kwargs) of the knob's curve and α's, beyond the reference "TS"."""
    out = [(KNOB_LABEL.format(eps=eps), {"fairness": {"mode": "proportional",
                                                      "max_reward_loss": eps}})
           for eps in KNOB_EPS]
    alphas = {1.0: "TS α=1 (proportional)"}
    for a in KNOB_ALPHAS:
        out.append((alphas.get(a, f"TS α={a}"),
                    {"fairness": "proportional" if a == 1.0 else a}))
    return out


def knob_cells(plan: Plan) -> dict[str, list[Cell]]:
    """The knob's experiments: ``criteria`` (every family at T, ``plan.seeds``: the knob's
    ε and α's curve, beside the utilitarian reference "TS"; the labels and arguments of the
    criteria's cells, so shared cells run once) and ``knob_horizons`` (one family at an early
    and a late T, ``plan.knob_seeds``)."""
    fam = families(plan)
    settings = [("TS", UTILITARIAN)] + _knob_settings()
    crit = [Cell("constrained-ts", env, seed, plan.rounds,
                 policy_kwargs={"oracle": "fast", **pkw}, env_kwargs=kw, label=f"{name}|{lab}")
            for name, (env, kw) in fam.items() for seed in range(plan.seeds)
            for lab, pkw in settings]
    env, kw = fam["tight-homogeneous"]
    hor = [Cell("constrained-ts", env, seed, t, policy_kwargs={"oracle": "fast", **pkw},
                env_kwargs=kw, sim_kwargs={"metrics_every": t}, label=f"T={t}|{lab}")
           for t in (plan.knob_early, plan.knob_late) for seed in range(plan.knob_seeds)
           for lab, pkw in settings[:1 + len(KNOB_EPS)]]
    return {"criteria": crit, "knob_horizons": hor}


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
    knob = knob_cells(plan)
    have = {c.key for c in cells["criteria"]}
    cells["criteria"] += [c for c in knob["criteria"] if c.key not in have]
    cells["knob_horizons"] = knob["knob_horizons"]
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


def kept_verdict(m: float, h: float, promise: float) -> str:
    """"kept" when the whole 95 % interval is at or above the promise, "kept (within the
    interval)" when only part of it is, "broken" when all of it is below."""
    if not np.isfinite(m):
        return "n/a"
    h = h if np.isfinite(h) else 0.0
    if m - h >= promise:
        return "kept"
    return "kept (within the interval)" if m + h >= promise else "broken"


def promised_table(summary: pd.DataFrame, groups: list[str], rounds: dict[str, int]
                   ) -> pd.DataFrame:
    """The knob's promise against what it kept: per group (a family, or "T=..."), per ε, the
    expected reward of α = 1 with the bound over the utilitarian TS's, paired by seed."""
    rows = []
    for g in groups:
        for eps in KNOB_EPS:
            kept = _paired(summary, KNOB_LABEL.format(eps=eps), "TS", "expected_reward", g)
            m, h = mean_ci(kept)
            rows.append({"instances": g, "T": rounds[g], "seeds": len(kept), "ε": eps,
                         "promised": f"≥ {1 - eps:.2f}", "kept": _fmt(m, h),
                         "lowest seed": float(kept.min()) if len(kept) else float("nan"),
                         "verdict": kept_verdict(m, h, 1 - eps)})
    return pd.DataFrame(rows)


def knob_curves(summary: pd.DataFrame, fam: str) -> pd.DataFrame:
    """Per setting of the knob's curve and α's (both ends included: α = 0 is the reference
    and α = 1 the knob at ε = 1): Gini(service) reduction and reward kept, paired with "TS"
    by seed, means and CI half-widths."""
    rows = [{"curve": "both", "setting": "TS", "gini_cut": 0.0, "gini_cut_ci": 0.0,
             "kept": 1.0, "kept_ci": 0.0}]
    for lab, _ in _knob_settings():
        g = 1.0 - _paired(summary, lab, "TS", "gini_service", fam)
        r = _paired(summary, lab, "TS", "expected_reward", fam)
        (gm, gh), (rm, rh) = mean_ci(g), mean_ci(r)
        curve = "knob" if "ε=" in lab else "α"
        rows.append({"curve": "both" if lab == "TS α=1 (proportional)" else curve,
                     "setting": lab, "gini_cut": gm, "gini_cut_ci": gh, "kept": rm,
                     "kept_ci": rh})
    return pd.DataFrame(rows)


def _on(curves: pd.DataFrame, name: str) -> pd.DataFrame:
    """The points of one curve (settings without cells left out), by Gini reduction."""
    c = curves[curves["curve"].isin((name, "both")) & np.isfinite(curves["gini_cut"])]
    return c.sort_values("gini_cut")


def criterion2_table(summary: pd.DataFrame, fams: list[str]) -> pd.DataFrame:
    """Criterion 2 per family, from the knob and from α: the largest Gini(service) reduction
    among the settings whose reward kept is ≥ 0.90 over the whole 95 % interval."""
    rows = []
    for fam in fams:
        curves = knob_curves(summary, fam)
        for name in ("knob", "α"):
            c = _on(curves, name)
            ok = c[(c["kept"] - c["kept_ci"].fillna(0.0) >= 0.90) & (c["setting"] != "TS")]
            if not len(ok):
                rows.append({"family": fam, "from": name, "best setting": "none qualifies",
                             "Gini(service) cut": "n/a", "reward kept": "n/a",
                             "verdict (−30 %)": "not met"})
                continue
            b = ok.loc[ok["gini_cut"].idxmax()]
            met = b["gini_cut"] - (b["gini_cut_ci"] if np.isfinite(b["gini_cut_ci"]) else 0)
            rows.append({"family": fam, "from": name, "best setting": b["setting"],
                         "Gini(service) cut": _fmt(b["gini_cut"], b["gini_cut_ci"], pct=True),
                         "reward kept": _fmt(b["kept"], b["kept_ci"]),
                         "verdict (−30 %)": "met" if met >= 0.30 else "not met"})
    return pd.DataFrame(rows)


def knob_vs_alpha(summary: pd.DataFrame, fams: list[str], points: str = "knob"
                  ) -> pd.DataFrame:
    """Where the knob's curve lies against α's: for each knob point, the reward α's curve
    keeps at the same Gini reduction (linear interpolation between α's points; outside
    their range: n/a) and the difference knob − α (positive: the knob is above).
    ``points="α"``: the other way round, each α point against the knob's curve (the
    difference is still knob − α)."""
    other = "α" if points == "knob" else "knob"
    rows = []
    for fam in fams:
        curves = knob_curves(summary, fam)
        a = _on(curves, other)
        x, y = a["gini_cut"].to_numpy(), a["kept"].to_numpy()
        for _, r in _on(curves, points).iterrows():
            if r["curve"] != points:
                continue
            g = r["gini_cut"]
            inside = len(x) > 1 and x.min() <= g <= x.max()
            there = float(np.interp(g, x, y)) if inside else float("nan")
            diff = (r["kept"] - there) * (1 if points == "knob" else -1)
            ok = r["kept"] + r["kept_ci"] >= there if points == "knob" else \
                r["kept"] - r["kept_ci"] <= there
            rows.append({"family": fam, points: r["setting"],
                         "Gini cut": _fmt(g, r["gini_cut_ci"], pct=True),
                         f"{points} kept": _fmt(r["kept"], r["kept_ci"]),
                         f"{other}'s curve kept there": _fmt(there, float("nan")),
                         "knob − α": f"{diff:+.3f}" if np.isfinite(diff) else "n/a",
                         f"{points}'s CI {'≥' if points == 'knob' else '≤'} {other}'s curve":
                         "n/a" if not np.isfinite(diff) else "yes" if ok else "no"})
    return pd.DataFrame(rows)


def knob_cost(ns, rounds: int, seed: int = 0) -> pd.DataFrame:
    """The knob's cost per round: twin constrained-TS policies (α = 1, and α = 1 with ε = 0.1)
    on the same instance, played in lockstep (alternately first, so drift of the machine's
    speed hits both alike) for ``rounds`` timed rounds after 3 warm-up rounds; per
    oracle method, the median CPU time of a round (allocate + observe; the process's CPU
    time, so that other processes on a shared machine do not count) of each and the median
    of the paired per-round difference in % of the plain rule's median. n = 156 is the Alibaba
    trace instance of ``bench round`` when the trace is available, else synthetic. Rows
    "same" replay one request every round (as ``bench round`` does: the reference is reused);
    "new" scale every request by U(0.9, 1.1) each round (the same for both twins), so the
    reference is never reused: "reference" says how it is computed then, by the oracle
    every round (the knob before the Lagrangian bound, kept for comparison) or by the
    Lagrangian bound between the oracle's solves (the knob today). "oracle solves" counts
    the timed rounds whose reference the oracle solved."""
    import time as _time

    from librex_alloc.evaluation.round_bench import alibaba_instance, synthetic_instance
    from librex_alloc.fairness import FairnessConfig
    from librex_alloc.metrics import gini
    from librex_alloc.policies import ConstrainedThompsonSampling

    rows = []
    for n in ns:
        inst, name = (alibaba_instance(n, seed=seed), "alibaba") if n == 156 else (None, "")
        if inst is None:
            inst, name = synthetic_instance(n, seed=seed), "synthetic"
        req, budget, mu = inst
        ids = np.arange(n)
        for method, rows_change, cheap in (("auto", False, True), ("fast", False, True),
                                           ("auto", True, False), ("auto", True, True)):
            twins = []
            for fair in (FairnessConfig(mode="proportional"),
                         FairnessConfig(mode="proportional", max_reward_loss=0.1)):
                twins.append((ConstrainedThompsonSampling(req.shape[1], fairness=fair,
                                                          oracle=method, seed=seed),
                              np.random.default_rng(seed + 1), []))
            twins[1][0].cheap_reference = cheap
            jitter = np.random.default_rng(seed + 2)
            solves = 0
            for t in range(rounds + 3):
                r_t = req * jitter.uniform(0.9, 1.1, req.shape) if rows_change else req
                for pol, rng, times in (twins if t % 2 == 0 else twins[::-1]):
                    t0 = _time.process_time()
                    a = pol.allocate_batch(ids, r_t, budget)
                    got = np.flatnonzero(a.selected)
                    pol.observe(a.round, got, rewards=(rng.random(len(got)) < mu[got]) * 1.0)
                    if t >= 3:
                        times.append(_time.process_time() - t0)
                        if pol is twins[1][0] and pol.fairness.reward_loss[6] == t:
                            solves += 1  # the oracle solved the reference in this round
            plain, knob = (np.array(tw[2]) for tw in twins)
            rows.append({"instance": name, "n": n, "K": req.shape[1], "oracle": method,
                         "rows": "new" if rows_change else "same",
                         "reference": "reused or Lagrangian" if cheap and rows_change
                         else "reused" if cheap else "oracle every round",
                         "rounds": rounds,
                         "oracle solves": solves, "α=1 CPU ms": 1e3 * float(np.median(plain)),
                         "α=1, ε=0.1 CPU ms": 1e3 * float(np.median(knob)),
                         "extra %": 100 * float(np.median(knob - plain) / np.median(plain)),
                         "reward kept (estimate)": float(twins[1][0].fairness
                                                         .reward_kept_estimate),
                         "Gini(service)": gini(twins[1][0].utilities("service")[1]),
                         "verdict (≤ 25 %)": "met" if np.median(knob - plain) <=
                         0.25 * np.median(plain) else "not met"})
    return pd.DataFrame(rows)


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


def knob_plot(out: Path, summary: pd.DataFrame, fams: list[str]) -> str:
    """``knob_frontier.png``: per family, reward kept against the Gini(service) reduction,
    the knob's curve (α = 1 with ε) beside α's (both from α = 0, the reference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(fams))
    rows = -(-len(fams) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    for ax, fam in zip(axes.ravel(), fams):
        curves = knob_curves(summary, fam)
        for name, style in (("α", "o-"), ("knob", "s-")):
            c = _on(curves, name)
            ax.errorbar(100 * c["gini_cut"], c["kept"], xerr=100 * c["gini_cut_ci"].fillna(0),
                        yerr=c["kept_ci"].fillna(0), fmt=style, capsize=2, ms=4,
                        label="α (plain rule)" if name == "α" else "knob: α=1 with ε")
            for _, r in c.iterrows():
                tag = r["setting"].replace("TS ", "").replace(" (proportional)", "")
                if tag != "TS" and (name == "knob") == ("ε" in tag):
                    ax.annotate(tag, (100 * r["gini_cut"], r["kept"]), fontsize=6,
                                xytext=(3, 3), textcoords="offset points")
        ax.axhline(0.9, color="grey", lw=0.8, ls="--")
        ax.axvline(30, color="grey", lw=0.8, ls=":")
        ax.set(title=fam, xlabel="Gini(service) reduction vs utilitarian TS (%)",
               ylabel="reward kept vs utilitarian TS")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(fams):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(out / "knob_frontier.png", dpi=110)
    plt.close(fig)
    return "knob_frontier.png"


def knob_report(plan: Plan, summary: pd.DataFrame, horizons: pd.DataFrame,
                cost: pd.DataFrame, level: str = "##") -> str:
    """The knob's sections (markdown): promised vs kept, criterion 2 from the knob and from α,
    where the knob's curve lies against α's, and its cost per round."""
    fams = list(families(plan))
    hor_groups = [f"T={t}" for t in (plan.knob_early, plan.knob_late)]
    rounds = {**dict.fromkeys(fams, plan.rounds),
              **{g: int(g[2:]) for g in hor_groups}}
    promised = pd.concat([promised_table(summary, fams, rounds),
                          promised_table(horizons, hor_groups, rounds)], ignore_index=True)
    promised.loc[promised["instances"].str.startswith("T="), "instances"] = \
        "tight-homogeneous"
    crit2 = criterion2_table(summary, fams)
    versus = knob_vs_alpha(summary, fams)
    reverse = knob_vs_alpha(summary, fams, points="α")
    below = pd.concat([versus[versus["knob − α"].str.startswith("-")].rename(
                           columns={"knob": "point"}),
                       reverse[reverse["knob − α"].str.startswith("-")].rename(
                           columns={"α": "point"})])
    where = "; ".join(f"{r['family']} at {r['point']} ({r['knob − α']})"
                      for _, r in below.iterrows()) or "nowhere"
    return f"""{level} The fairness knob: promised vs kept (budget mode: per round)

`max_reward_loss = ε` on the α = 1 rule promises that the expected reward (true means) of the
choices stays ≥ (1 − ε) of the utilitarian constrained TS's on the same instance and seed. Kept
is that ratio over the run, paired by seed (mean ± 95 % interval); "kept" means the whole
interval is at or above the promise, "kept (within the interval)" that only part of it is. The
policy sees only estimates: the reference is the oracle's bound on the utilitarian optimum of
its posterior means, and the fair choice is credited with its realized rewards
(`librex_alloc/fairness.py`). Every family at T = {plan.rounds} ({plan.seeds} seeds), and
tight-homogeneous early and late (T = {plan.knob_early} and {plan.knob_late},
{plan.knob_seeds} seeds).

{_md(promised)}

{level} Criterion 2 from the knob and from α (budget mode: per round)

The largest Gini(service) reduction, paired with the utilitarian TS by seed, among the settings
whose reward kept is ≥ 0.90 over its whole 95 % interval: the knob's curve is α = 1 with
ε ∈ {list(KNOB_EPS)} (and ε = 1, the plain α = 1), α's is α ∈ {list(KNOB_ALPHAS)}.
The verdict asks for the whole interval of the reduction at ≥ 30 %.

{_md(crit2)}

![knob frontier](knob_frontier.png)

{level} Where the knob's curve lies against α's

For every knob point, the reward α's curve keeps at the same Gini reduction (linear between
α's points), and for every α point the knob's curve there. The knob's curve is below α's (by
its mean) at: {where}.

{_md(versus)}

{_md(reverse)}

{level} The knob's cost per round

{_md(cost, "{:.2f}")}
"""


def run_knob(plan: Plan, out: Path, *, workers: int = 2, executor=None, progress=None,
             command: str = "librex-alloc bench paper --knob") -> Path:
    """Only the knob's experiments (cells shared with the full run) and ``out/KNOB.md``."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    cells = knob_cells(plan)
    promise = [c for c in cells["criteria"] if c.label.split("|")[1] in
               ("TS", *(KNOB_LABEL.format(eps=e) for e in KNOB_EPS))]
    first = ("TS α=1 (proportional)", "TS α=0.25", "TS α=0.1")  # α's curve, most useful first
    alphas = sorted((c for c in cells["criteria"] if c not in promise),
                    key=lambda c: first.index(c.label.split("|")[1])
                    if c.label.split("|")[1] in first else len(first))
    # the promise first, then the early and late runs, then α's curve
    commit = _commit()
    order = [("criteria", promise), ("knob_horizons", cells["knob_horizons"]),
             ("criteria", alphas)]
    done_before, paths = 0, {"criteria": [], "knob_horizons": []}
    for part, cs in order:
        def prog(done, base=done_before):
            if progress is not None:
                progress(base + done)
        paths[part] += run_grid(cs, out / part, workers=workers, executor=executor,
                                progress=prog)
        done_before += len(cs)
    summary = summarize_cells(load_cells(paths["criteria"]))
    horizons = summarize_cells(load_cells(paths["knob_horizons"]))
    cost = knob_cost(plan.cost_ns, plan.cost_rounds)
    knob_plot(out, summary, list(families(plan)))
    wall = time.perf_counter() - t0
    fam_lines = "\n".join(f"- **{k}**: `{e}` {kw}" for k, (e, kw) in families(plan).items())
    text = f"""# The fairness knob, measured

Command: `{command}` ({wall / 60:.1f} min on {_machine()}; commit {commit}).
Every policy uses the `fast` oracle; rewards are expected rewards (true means) of the chosen
allocations, summed over the run; ± is the half-width of the 95 % Student-t interval over seeds.

Instance families:
{fam_lines}

{knob_report(plan, summary, horizons, cost)}"""
    (out / "KNOB.md").write_text(text)
    return out / "KNOB.md"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
    cost = knob_cost(plan.cost_ns, plan.cost_rounds)
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
    knob_plot(out, summaries["criteria"], fams)
    knob_text = knob_report(plan, summaries["criteria"], summaries["knob_horizons"], cost,
                            level="###")
    wall = time.perf_counter() - t0
    commit = _commit()
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

## 6. The fairness knob (`max_reward_loss`)

{knob_text}"""
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

    p = cli_args.ArgumentParser(prog="librex-alloc bench paper", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a smoke-test size (minutes): checks the report, not the numbers")
    p.add_argument("--knob", action="store_true",
                   help="only the fairness knob's experiments (promised vs kept, criterion 2 "
                        "from the knob and from α, its cost): writes KNOB.md and "
                        "knob_frontier.png")
    p.add_argument("--knob-cost-only", action="store_true",
                   help="only the knob's cost per round (the last table of KNOB.md): prints "
                        "it as Markdown, writes nothing")
    p.add_argument("--out", default="out/paper", help="folder for RESULTS.md, plots and cells")
    p.add_argument("--workers", type=positive_int, default=2, help="parallel processes")
    p.add_argument("--ray", action="store_true",
                   help="run the cells as Ray tasks (RAY_ADDRESS or a local Ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    a = p.parse_args(argv)
    plan = QUICK if a.quick else DEFAULT
    if a.knob_cost_only:
        if a.knob or a.ray:
            p.error("--knob-cost-only runs alone: drop --knob and --ray")
        print(_md(knob_cost(plan.cost_ns, plan.cost_rounds), "{:.2f}"))
        return 0
    _check_data(p)
    out = prepare_out_dir(p, a.out)
    executor = None
    if a.ray:
        executor = plugin_executor("ray", p)
    total = sum(len(c) for c in (knob_cells(plan) if a.knob else _cells(plan)).values())
    cmd = "librex-alloc bench paper" + (" --quick" if a.quick else "") + \
        (" --knob" if a.knob else "")
    with Progress(total, "bench paper", unit="cells", enabled=not a.no_progress) as bar:
        path = (run_knob if a.knob else run)(plan, Path(out), workers=a.workers,
                                             executor=executor, progress=bar, command=cmd)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
