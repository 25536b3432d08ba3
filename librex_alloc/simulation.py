"""Run a policy against an environment and record per-round metrics.

Per round t:

1. ``env.requests(t)``; agents that left since round t − 1 (``EnvironmentRound.left_ids``) are
   removed from the policy (``policy.remove_agents``) first.
2. A policy with a public ``set_true_means`` (the oracle baseline) gets the true means of the
   round's rows.
3. ``policy.allocate``; the allocated rows' rewards are drawn from the environment with the
   simulator's generator (seeded by ``seed``) and their feedback delays (when the environment
   has ``feedback_delays``) from a second generator, so the reward draws do not depend on the
   feedback settings.
4. Outcomes arriving in round t, this round's (delay 0) and older ones, are reported with
   ``policy.observe(their round, ids, rewards=...)``, oldest round first. An outcome never
   arrives with delay −1 (counted as lost); it is dropped and counted when its round is older
   than the policy's pending window (``max_pending_rounds``: expired) or its agent left after
   its round (orphaned).
5. The reference: the utilitarian oracle with the *current* true means on the same rows
   (``oracle_method``, default ``"auto"`` with a 10 s limit and no gap tolerance, so it searches
   until it proves optimality within the limit; solved again only when the rows,
   budget or means change). Regret is pseudo-regret: the oracle's expected reward minus the
   expected reward of the policy's choice (for a fairness policy it includes the price of
   fairness).

Budget modes. ``"round"``: the environment's budget B_t caps every round. ``"horizon"``: one
budget H (K,) covers the run (default: ``rounds`` × round 1's budget); round t's request has
``budget`` = what is left of H (the hard cap) and ``pace`` = left / rounds left; spending is
subtracted, so H is never exceeded. The reference is then the fluid benchmark: the LP
relaxation (divisible) of each round with budget H / rounds, an upper bound on the expected
reward per round of any policy on a static instance; utilization is relative to H / rounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from librex_alloc import oracles
from librex_alloc._validation import as_float_array, check_scalar
from librex_alloc.environments import Environment
from librex_alloc.errors import InvalidConfigError, InvalidInputError, NotAllocatedError
from librex_alloc.policies.base import AllocationPolicy
from librex_alloc.round_step import (
    FAIRNESS_COLUMNS,
    FeedbackSampler,
    Reference,
    fairness_columns,
    resource_names,
    round_row,
)

BUDGET_MODES = ("round", "horizon")
#: columns counting outcomes per round (see :func:`simulate`)
FEEDBACK_COLUMNS = ("n_reported", "n_lost", "n_expired", "n_orphaned")


def _count(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidConfigError(f"{name}: expected an int ≥ {low}, got {value!r}")
    return int(value)


def _budget_vector(value, k: int) -> np.ndarray:
    try:  # as every budget enters: no text, no complex (its imaginary part would be dropped)
        arr = as_float_array(value, "horizon_budget", finite=False)
    except InvalidInputError:
        raise InvalidConfigError(f"horizon_budget: expected {k} numbers, got {value!r}") \
            from None
    if arr.shape != (k,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InvalidConfigError(f"horizon_budget: expected {k} finite numbers ≥ 0, got "
                                 f"{value!r}")
    return arr.copy()


def simulate(policy: AllocationPolicy, env: Environment, rounds: int, seed: int = 0,
             *, oracle_method: str = "auto", oracle_time_limit: float = 10.0,
             metrics_every: int = 1,
             progress: Callable[[int], object] | None = None,
             budget_mode: str = "round", horizon_budget=None,
             first_round: int = 1) -> pd.DataFrame:
    """Simulate ``rounds`` rounds; returns one row per round.

    Columns: round, reward (realized), expected_reward, oracle_reward, regret, cum_regret,
    n_allocated, gini_reward, jain_reward, gini_service, jain_service (cumulative vectors over
    all agents, computed every ``metrics_every`` rounds, NaN in between), utilization_<r> for
    each resource r (named after the environment's resources when it names them, else 0 … K−1;
    spend over the round's budget; horizon mode: over H / rounds), oracle_s (seconds in the
    policy's oracle call), oracle_gap (its certificate), oracle_status (the reference oracle's
    status: "optimal" when proved); budget_mode; n_active (agents requesting), n_rows (option
    rows), n_joined, n_left; n_reported (outcomes applied this round, of any round), n_lost
    (this round's outcomes that will never arrive), n_expired and n_orphaned (outcomes dropped
    this round, see the module docstring); budget_<r> (the round's cap as the policy saw it,
    resource units), spend_<r> (granted), remaining_<r> (horizon mode: what is left of H after
    the round; NaN in round mode).

    budget_mode: "round" or "horizon"; horizon_budget: (K,) resource units, horizon mode only
    (default ``rounds`` × round 1's budget). progress: called with the number of rounds done
    after every round (for a progress bar). Every argument is checked before the first round.

    first_round: the environment round of the first row (rounds ``first_round`` … ``first_round
    + rounds − 1``), to continue a run in chunks with the same policy and environment (a sweep
    trial reports and checkpoints between chunks). A later chunk draws from generators seeded
    by ``(seed, first_round)``, so a chunked run is reproducible chunk by chunk (it differs
    from one call over all rounds); its Gini/Jain columns cover the chunk's allocations only,
    and outcomes still delayed at the end of a call are not delivered. Round mode only.
    """
    rounds = _count(rounds, "rounds", 0)
    metrics_every = _count(metrics_every, "metrics_every", 1)
    seed = _count(seed, "seed", 0)
    first_round = _count(first_round, "first_round", 1)
    if oracle_method not in oracles.METHODS:
        raise InvalidConfigError(f"oracle_method: expected one of {oracles.METHODS}, got "
                                 f"{oracle_method!r}")
    check_scalar(oracle_time_limit, "oracle_time_limit", low=0.0, low_open=True)
    if not isinstance(policy, AllocationPolicy):
        raise InvalidConfigError(f"policy: expected an AllocationPolicy, got {type(policy)!r}")
    if not isinstance(env, Environment):
        raise InvalidConfigError(f"env: {type(env)!r} does not implement the Environment "
                                 f"protocol")
    if env.n_resources != policy.n_resources:
        raise InvalidConfigError("environment and policy disagree on the number of resources")
    if progress is not None and not callable(progress):
        raise InvalidConfigError("progress: expected a callable or None")
    if not isinstance(budget_mode, str) or budget_mode not in BUDGET_MODES:
        raise InvalidConfigError(f"budget_mode: expected one of {BUDGET_MODES}, got "
                                 f"{budget_mode!r}")
    k = env.n_resources
    names = resource_names(env, k)
    horizon = budget_mode == "horizon"
    if horizon and first_round != 1:
        raise InvalidConfigError("first_round: only with budget_mode='round'")
    if horizon_budget is not None:
        if not horizon:
            raise InvalidConfigError("horizon_budget: only with budget_mode='horizon'")
        horizon_budget = _budget_vector(horizon_budget, k)

    if first_round == 1:
        rng = np.random.default_rng(seed)
        feedback_rng = np.random.default_rng([seed, 1])  # delays: a stream of their own
    else:  # a later chunk of a run: streams of its own
        rng = np.random.default_rng([seed, 2, first_round])
        feedback_rng = np.random.default_rng([seed, 3, first_round])
    sampler = FeedbackSampler(env)
    reference = Reference(oracle_method, time_limit=oracle_time_limit, gap_tolerance=0.0)
    set_true_means = getattr(policy, "set_true_means", None)
    set_true_means = set_true_means if callable(set_true_means) else None
    window = getattr(policy, "max_pending_rounds", None)
    registry = getattr(policy, "registry", None)
    n = env.n_agents
    if horizon:
        if horizon_budget is None:
            horizon_budget = rounds * np.asarray(env.requests(1).request.budget, np.float64)
        remaining = horizon_budget.copy()
        reference_budget = horizon_budget / max(rounds, 1)
    rec: dict[str, list] = {c: [] for c in (
        "round", "reward", "expected_reward", "oracle_reward", "regret", "n_allocated",
        "gini_reward", "jain_reward", "gini_service", "jain_service", "oracle_s",
        "oracle_gap", "oracle_status", "n_active", "n_rows", "n_joined", "n_left",
        *FEEDBACK_COLUMNS)}
    caps, spends, lefts, utils = (np.zeros((rounds, k)) for _ in range(4))
    lefts[:] = np.nan
    reward_sum = np.zeros(n)
    service = np.zeros(n)
    left_round = np.zeros(n, dtype=np.int64)  # the latest round in which each agent left
    queue: dict[int, list] = {}  # arrival round -> [(round t, round id, ids, agent idx, values)]
    for step in range(1, rounds + 1):
        t = first_round + step - 1
        env_round = env.requests(t)
        req, agent_index = env_round.request, env_round.agent_index
        left = np.asarray(getattr(env_round, "left", ()), dtype=np.int64)
        left_ids = list(getattr(env_round, "left_ids", ()))
        if len(left):
            left_round[left] = t
        if left_ids:
            known = [a for a in left_ids if registry is None or a in registry]
            if known:
                policy.remove_agents(known)
        mu_all = np.asarray(env.expected(agent_index, req.options), dtype=np.float64)
        if horizon:
            req = dataclasses.replace(req, budget=remaining.copy(),
                                      pace=remaining / (rounds - t + 1))
        if set_true_means is not None:
            set_true_means(req.agent_ids, means=mu_all, options=req.options)
        alloc = policy.allocate(req)
        rows = np.nonzero(alloc.fractions > 0)[0]
        frac = alloc.fractions[rows]
        rewards = env.sample(agent_index[rows], req.options[rows], rng)
        values = np.clip(rewards, 0.0, 1.0) if env.reward_family != "gaussian" else rewards
        if horizon:
            ref_budget, divisible = reference_budget, True
        else:
            ref_budget, divisible = req.budget, policy.divisible
        best = reference.solve(mu_all, req.requests, ref_budget, agent_index, divisible)
        row = round_row(t, alloc.fractions, req.requests, req.budget, mu_all, best.objective,
                        util_budget=reference_budget if horizon else None, oracle=alloc.oracle,
                        resources=names)
        used = row.pop("_used")
        utils[step - 1] = [row[f"utilization_{r}"] for r in names]
        caps[step - 1], spends[step - 1] = req.budget, used
        if horizon:
            remaining = np.maximum(remaining - used, 0.0)
            lefts[step - 1] = remaining
        # feedback: queue this round's outcomes by arrival round, then deliver round t's
        delays = sampler.draw(agent_index[rows], req.options[rows], feedback_rng)
        ids = [req.agent_ids[i] for i in rows]
        n_lost = int(np.count_nonzero(delays < 0))
        if len(rows) and not delays.any():
            queue.setdefault(t, []).append((t, alloc.round, ids, agent_index[rows], values))
        elif len(rows):
            for d in np.unique(delays[delays >= 0]).tolist():
                sel = np.flatnonzero(delays == d)
                queue.setdefault(t + d, []).append(
                    (t, alloc.round, [ids[i] for i in sel], agent_index[rows][sel],
                     values[sel]))
        counts = dict.fromkeys(FEEDBACK_COLUMNS, 0)
        counts["n_lost"] = n_lost
        for src, rid, out_ids, out_idx, out_values in sorted(queue.pop(t, []),
                                                             key=lambda e: e[0]):
            keep = left_round[out_idx] <= src  # the agent has not left since its round
            counts["n_orphaned"] += int(np.count_nonzero(~keep))
            if not keep.any():
                continue
            if not keep.all():
                out_ids = [a for a, kk in zip(out_ids, keep.tolist()) if kk]
                out_values = out_values[keep]
            if window is not None and rid <= policy.round - window:
                counts["n_expired"] += len(out_ids)
                continue
            try:
                counts["n_reported"] += int(policy.observe(rid, out_ids, rewards=out_values))
            except NotAllocatedError:  # a policy whose pending window works differently
                counts["n_expired"] += len(out_ids)
        np.add.at(reward_sum, agent_index[rows], rewards * frac)
        np.add.at(service, agent_index[rows], frac)
        for c in ("round", "expected_reward", "oracle_reward", "regret", "n_allocated"):
            rec[c].append(row[c])
        rec["reward"].append(float(np.sum(rewards * frac)))  # summed as the runtime sums
        rec["oracle_status"].append(best.status)
        if step % metrics_every == 0 or step == rounds:
            row.update(fairness_columns(reward_sum, service))
        for c in FAIRNESS_COLUMNS:
            rec[c].append(row.get(c, np.nan))
        rec["oracle_s"].append(row["oracle_s"])
        rec["oracle_gap"].append(row["oracle_gap"])
        rec["n_active"].append(len(np.unique(agent_index)))
        rec["n_rows"].append(len(agent_index))
        rec["n_joined"].append(len(getattr(env_round, "joined", ())))
        rec["n_left"].append(len(left_ids))
        for c in FEEDBACK_COLUMNS:
            rec[c].append(counts[c])
        if progress is not None:
            progress(step)
    extra = {c: rec.pop(c) for c in ("n_active", "n_rows", "n_joined", "n_left",
                                     *FEEDBACK_COLUMNS)}
    df = pd.DataFrame(rec)
    for j, r in enumerate(names):
        df[f"utilization_{r}"] = utils[:, j]
    df["cum_regret"] = df["regret"].cumsum()
    df["budget_mode"] = budget_mode
    for c, v in extra.items():
        df[c] = np.asarray(v, dtype=np.int64)
    for name, arr in (("budget", caps), ("spend", spends), ("remaining", lefts)):
        for j, r in enumerate(names):
            df[f"{name}_{r}"] = arr[:, j]
    return df


def summarize(df: pd.DataFrame) -> dict:
    """Whole-run summary of a :func:`simulate` frame."""
    last = df.ffill().iloc[-1] if len(df) else None
    util_cols = [c for c in df.columns if c.startswith("utilization_")]
    oracle_total = df["oracle_reward"].sum()
    out = {
        "rounds": len(df),
        "reward": float(df["reward"].sum()),
        "expected_reward": float(df["expected_reward"].sum()),
        "oracle_reward": float(oracle_total),
        "reward_vs_oracle": float(df["expected_reward"].sum() / oracle_total)
        if oracle_total > 0 else float("nan"),
        "cum_regret": float(df["regret"].sum()),
        "gini_reward": float(last["gini_reward"]) if last is not None else float("nan"),
        "jain_reward": float(last["jain_reward"]) if last is not None else float("nan"),
        "gini_service": float(last["gini_service"]) if last is not None else float("nan"),
        "jain_service": float(last["jain_service"]) if last is not None else float("nan"),
        "utilization": [float(df[c].mean()) for c in util_cols],
        "median_solve_ms": float(df["oracle_s"].median() * 1000) if len(df) else float("nan"),
        "oracle_proved": float((df["oracle_status"] == "optimal").mean()) if len(df)
        else float("nan"),
    }
    if "budget_mode" in df.columns:
        out["budget_mode"] = str(df["budget_mode"].iloc[0]) if len(df) else "round"
    for c in FEEDBACK_COLUMNS:
        if c in df.columns:
            out[c] = int(df[c].sum())
    spend_cols = [c for c in df.columns if c.startswith("spend_")]  # in resource order
    if spend_cols:
        out["spend"] = [float(df[c].sum()) for c in spend_cols]
        if out.get("budget_mode") == "horizon" and len(df):
            total = [s + float(df["remaining_" + c[len("spend_"):]].iloc[-1])
                     for s, c in zip(out["spend"], spend_cols)]
            out["budget_spent"] = [s / h if h > 0 else float("nan")
                                   for s, h in zip(out["spend"], total)]
    return out
