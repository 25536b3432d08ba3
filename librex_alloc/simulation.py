"""Run a policy against an environment and record per-round metrics.

Per round: the environment's requests go to the policy; allocated agents' rewards are drawn
and reported back; the utilitarian oracle with the *true* means is solved on the same
requests for the regret (``oracle_method``, default ``"auto"`` with a 10 s limit; it is
solved again only when the requests, budget or means change). Regret is pseudo-regret: the
oracle's expected reward minus the expected reward of the policy's choice. For a fairness
policy it includes the price of fairness.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from librex_alloc import metrics, oracles
from librex_alloc._validation import check_scalar
from librex_alloc.environments import Environment
from librex_alloc.errors import InvalidConfigError
from librex_alloc.policies.base import AllocationPolicy


def _count(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidConfigError(f"{name}: expected an int ≥ {low}, got {value!r}")
    return int(value)


def simulate(policy: AllocationPolicy, env: Environment, rounds: int, seed: int = 0,
             *, oracle_method: str = "auto", oracle_time_limit: float = 10.0,
             metrics_every: int = 1,
             progress: Callable[[int], object] | None = None) -> pd.DataFrame:
    """Simulate ``rounds`` rounds; returns one row per round.

    Columns: round, reward (realized), expected_reward, oracle_reward, regret, cum_regret,
    n_allocated, gini_reward, jain_reward, gini_service, jain_service (cumulative vectors over
    all agents, computed every ``metrics_every`` rounds, NaN in between), utilization_k for
    each resource, solve_time (s, the policy's oracle call), oracle_gap (its certificate),
    oracle_status (the reference oracle's status: "optimal" when proved).
    progress: called with the number of rounds done after every round (for a progress bar).
    Every argument is checked before the first round.
    """
    rounds = _count(rounds, "rounds", 0)
    metrics_every = _count(metrics_every, "metrics_every", 1)
    seed = _count(seed, "seed", 0)
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
    rng = np.random.default_rng(seed)
    method = oracle_method
    k = env.n_resources
    n = env.n_agents
    rec: dict[str, list] = {c: [] for c in (
        "round", "reward", "expected_reward", "oracle_reward", "regret", "n_allocated",
        "gini_reward", "jain_reward", "gini_service", "jain_service", "solve_time",
        "oracle_gap", "oracle_status")}
    util = [[] for _ in range(k)]
    cached = None
    reward_sum = np.zeros(n)
    service = np.zeros(n)
    for t in range(1, rounds + 1):
        env_round = env.requests(t)
        req, agent_index = env_round.request, env_round.agent_index
        alloc = policy.allocate(req)
        rows = np.nonzero(alloc.fractions > 0)[0]
        frac = alloc.fractions[rows]
        mu_all = env.expected(agent_index, req.options)
        expected = float(mu_all[rows] @ frac)
        rewards = env.sample(agent_index[rows], req.options[rows], rng)
        if len(rows):
            policy.observe(alloc.round, [req.agent_ids[i] for i in rows],
                           rewards=np.clip(rewards, 0.0, 1.0) if env.reward_family != "gaussian"
                           else rewards)
        np.add.at(reward_sum, agent_index[rows], rewards * frac)
        np.add.at(service, agent_index[rows], frac)
        key = (req.requests, req.budget, agent_index, mu_all)
        if cached is None or not all(np.array_equal(a, b) for a, b in zip(key, cached[0])):
            best = oracles.solve(mu_all, req.requests, req.budget, groups=agent_index,
                                 method=method, time_limit=oracle_time_limit,
                                 divisible=policy.divisible)
            cached = (key, best)  # static environments solve the reference once
        best = cached[1]
        rec["round"].append(t)
        rec["reward"].append(float(rewards @ frac))
        rec["expected_reward"].append(expected)
        rec["oracle_reward"].append(best.objective)
        rec["oracle_status"].append(best.status)
        rec["regret"].append(best.objective - expected)
        rec["n_allocated"].append(len(rows))
        if t % metrics_every == 0 or t == rounds:
            rec["gini_reward"].append(metrics.gini(np.maximum(reward_sum, 0)))
            rec["jain_reward"].append(metrics.jain(np.maximum(reward_sum, 0)))
            rec["gini_service"].append(metrics.gini(service))
            rec["jain_service"].append(metrics.jain(service))
        else:
            for c in ("gini_reward", "jain_reward", "gini_service", "jain_service"):
                rec[c].append(np.nan)
        rec["solve_time"].append(alloc.oracle.solve_time)
        rec["oracle_gap"].append(alloc.oracle.gap)
        used = frac @ req.requests[rows] if len(rows) else np.zeros(k)
        for j in range(k):
            util[j].append(used[j] / req.budget[j] if req.budget[j] > 0 else 0.0)
        if progress is not None:
            progress(t)
    df = pd.DataFrame(rec)
    for j in range(k):
        df[f"utilization_{j}"] = util[j]
    df["cum_regret"] = df["regret"].cumsum()
    return df


def summarize(df: pd.DataFrame) -> dict:
    """Whole-run summary of a :func:`simulate` frame."""
    last = df.ffill().iloc[-1] if len(df) else None
    util_cols = [c for c in df.columns if c.startswith("utilization_")]
    oracle_total = df["oracle_reward"].sum()
    return {
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
        "median_solve_ms": float(df["solve_time"].median() * 1000) if len(df) else float("nan"),
        "oracle_proved": float((df["oracle_status"] == "optimal").mean()) if len(df)
        else float("nan"),
    }
