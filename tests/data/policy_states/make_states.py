"""Writes the fixture states of tests/core/test_saved_states.py.

Run from the root of a checkout of the commit whose states are to be kept (these were made at
dbbb5ad, before the policy base took a round context and typed parameters):

    PYTHONPATH=. python tests/data/policy_states/make_states.py tests/data/policy_states

For every registered policy: a few rounds played (one agent removed, some rounds left
unreported), its state saved (``<name>.parquet``), then the next rounds' values and selections
recorded (``<name>.npz``), which the policy restored from the file must repeat.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from librex_alloc.checkpoint import save_state
from librex_alloc.policies import POLICIES, make_policy

REQ = np.array([[1.0, 2.0], [2.0, 1.0], [1.5, 1.5], [3.0, 0.5], [0.5, 3.0], [1.0, 1.0]])
IDS = ["a", "b", "c", "d", "e", "f"]
BUDGET = np.array([4.0, 4.0])
PACE = np.array([2.5, 2.5])
MEANS = np.linspace(0.2, 0.8, 6)


def build(name: str):
    """The fixture's policy: its configuration is in the saved state."""
    divisible = name == "proportional-share"
    params = {"horizon": 40} if name == "irs-fh" else {}
    fairness = {"mode": "none", "min_share": 0.1} if name == "fair-learn" else "proportional"
    p = make_policy(name, n_resources=2, fairness=fairness, oracle="fast", seed=5,
                    max_pending_rounds=6, divisible=divisible, params=params)
    if hasattr(p, "set_true_means"):
        p.set_true_means(IDS, MEANS)
    return p


def play(p, rounds: int, rng: np.random.Generator, ids=IDS, req=REQ) -> list:
    """``rounds`` rounds with a pace; reports every round but every third."""
    from librex_alloc.request import RoundRequest

    out = []
    for t in range(rounds):
        request = RoundRequest.build(ids, req, BUDGET, None, n_resources=2, pace=PACE)
        a = p.allocate(request)
        out.append((a.values.copy(), a.fractions.copy()))
        got = a.allocated_agents()
        if t % 3 != 2 and got:
            p.observe(a.round, got, rewards=rng.uniform(0, 1, len(got)))
    return out


def main(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for name in sorted(POLICIES):
        p = build(name)
        rng = np.random.default_rng(1)
        play(p, 9, rng)
        p.remove_agents(["f"])
        play(p, 2, rng, IDS[:5], REQ[:5])
        save_state(p.get_state(), os.path.join(folder, f"{name}.parquet"))
        future = play(p, 4, np.random.default_rng(2), IDS[:5], REQ[:5])
        np.savez(os.path.join(folder, f"{name}.npz"),
                 values=np.stack([v for v, _ in future]),
                 fractions=np.stack([f for _, f in future]))
        print(name, p.round)


if __name__ == "__main__":
    main(sys.argv[1])
