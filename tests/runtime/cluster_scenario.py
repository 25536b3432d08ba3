"""The coordinator's node is removed from a 2-node ``ray.cluster_utils.Cluster``.

Run as a script (its own Ray instance, so not inside the test session's): prints one JSON
line with what the test checks. Usage: ``python cluster_scenario.py CHECKPOINT_DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

# the repository before tests/: tests/agents (a folder of tests) must not shadow the agents package
_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent.parent), str(_HERE.parent)]
from runtime_helpers import local_run, make_config, make_env  # noqa: E402

from agents.actors import start_shards  # noqa: E402
from coordinator.actor import admin_credential, get_or_create_coordinator  # noqa: E402


def main(checkpoint_dir: str) -> dict:
    t0 = time.monotonic()
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "resources": {"head": 100}})
    first = cluster.add_node(num_cpus=1, resources={"coordinator": 1})
    try:
        ray.init(address=cluster.address, namespace="cluster", log_to_driver=False)
        env = make_env(200)
        cfg = make_config(env, Path(checkpoint_dir) / "ckpt", checkpoint_every=8)
        coord = get_or_create_coordinator(cfg, "coord", resources={"coordinator": 0.01})
        adm = admin_credential(cfg.checkpoint_dir)
        shards = start_shards(env, 2, "coord", seed=11, resources={"head": 1})  # keep them
        ray.get(coord.run.remote(until_round=10, admin=adm))
        node_before = ray.get(coord.node_id.remote())
        cluster.add_node(num_cpus=1, resources={"coordinator": 1})
        cluster.wait_for_nodes()
        running = coord.run.remote(until_round=40, admin=adm)
        end = time.monotonic() + 120
        while ray.get(coord.status.remote())["round"] < 15:
            assert time.monotonic() < end, "the run did not reach round 15"
            time.sleep(0.05)
        t_remove = time.monotonic()
        cluster.remove_node(first)
        final = ray.get(running, timeout=180)
        recovered_s = time.monotonic() - t_remove
        node_after = ray.get(coord.node_id.remote())
        state = ray.get(coord.policy_state.remote(admin=adm))
        rows = ray.get(coord.metrics_since.remote(0, 10_000, admin=adm))["round"]
        del shards
    finally:
        ray.shutdown()
        cluster.shutdown()
    ref, _, _ = local_run(env, Path(checkpoint_dir) / "reference", rounds=40)
    from runtime_helpers import assert_state_equal

    try:
        assert_state_equal(state, ref.policy_state())
        equal = True
    except AssertionError as exc:
        equal = str(exc)
    return {"node_before": node_before, "first_node": first.node_id, "node_after": node_after,
            "round": final["round"], "restarts": final["counters"]["restarts"],
            "applied": final["counters"]["outcomes_applied"],
            "reference_applied": ref.counters["outcomes_applied"], "state_equal": equal,
            "rounds": rows == list(range(1, 41)), "recovered_s": recovered_s,
            "total_s": time.monotonic() - t0}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
