"""Live agents doing real work: hashing workers compete for CPU and memory on a local Ray.

Each worker offers two options, (1 CPU, 16 MiB) and (2 CPU, 64 MiB), for a job that needs
32 MiB of working memory and must finish within its deadline. The coordinator's Thompson
sampling learns from the real outcomes which option succeeds, under a budget that cannot
grant the large option to everyone. Run: ``python examples/live_workers.py`` (a new local
Ray, even beside a running one) or ``python examples/live_workers.py --address HOST:PORT``
(or ``RAY_ADDRESS``) to join a cluster; an unreachable cluster is one line, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import numpy as np
import ray

from agents.actors import start_live_agent
from agents.examples import HashingWorker
from coordinator import CoordinatorConfig
from coordinator.actor import admin_credential, get_or_create_coordinator
from coordinator.job import CONNECT_TIMEOUT_S, RayConnectError, connect_ray
from librex_alloc import PolicyConfig


def main(n_workers: int = 4, rounds: int = 30, address: str | None = None,
         connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    started, _ = connect_ray(address, "live-example", connect_timeout_s)
    try:
        _play(n_workers, rounds)
    finally:
        if started:
            ray.shutdown()


def _play(n_workers: int, rounds: int) -> None:
    config = CoordinatorConfig(
        PolicyConfig(2, fairness="proportional", oracle="fast", seed=0),
        budget=(4.0, 160.0),  # 4 CPUs and 160 MiB per round for all workers together
        checkpoint_dir=tempfile.mkdtemp(prefix="live-example-"))
    coord = get_or_create_coordinator(config, "coordinator")
    admin = admin_credential(config.checkpoint_dir)  # control calls and state reads need it
    workers = [start_live_agent(f"worker-{i}", HashingWorker(
        [(1, 16), (2, 64)], work_mib=8, need_mib=32, deadline_s=2.0), 2, "coordinator",
        agent_id=f"w{i}") for i in range(n_workers)]
    ray.get(coord.run.remote(until_round=rounds, admin=admin))
    print(f"{'worker':<8}{'jobs':>6}{'option 1 share':>16}{'success':>9}"
          f"{'P(ok | opt 0)':>15}{'P(ok | opt 1)':>15}")
    for i, w in enumerate(workers):
        history = ray.get(w.agent_attribute.remote(f"w{i}", "history", admin=admin))
        opt = np.array([h["option"] for h in history])
        ok = np.array([h["success"] for h in history])
        means = [ray.get(coord.agent_stats.remote([f"w{i}"], j, admin=admin))["mean"][0]
                 for j in (0, 1)]
        print(f"w{i:<7}{len(history):>6}{opt.mean():>16.0%}{ok.mean():>9.0%}"
              f"{means[0]:>15.2f}{means[1]:>15.2f}")
    counters = ray.get(coord.status.remote())["counters"]
    print(f"\noutcomes applied: {counters['outcomes_applied']} (each once); rejected: "
          f"{sum(v for k, v in counters.items() if k.startswith('rejected'))}")


if __name__ == "__main__":
    from librex_alloc.cli_args import finite_positive_float, positive_int

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=positive_int, default=4, help="live workers")
    parser.add_argument("--rounds", type=positive_int, default=30, help="rounds to play")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (default: RAY_ADDRESS, else a new local Ray)")
    parser.add_argument("--connect-timeout", type=finite_positive_float,
                        default=CONNECT_TIMEOUT_S, help="seconds to wait for the cluster")
    args = parser.parse_args()
    try:
        main(args.workers, args.rounds, args.address, args.connect_timeout)
    except RayConnectError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"\n{parser.prog}: interrupted", file=sys.stderr)
        sys.exit(130)
