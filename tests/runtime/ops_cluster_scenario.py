"""A coordinated run and a grid on a 2-node ``ray.cluster_utils.Cluster``.

Run as a script (its own Ray instance): prints one JSON line with what
``test_operate.py::test_two_nodes_run_and_grid`` checks. Usage:
``python ops_cluster_scenario.py WORKDIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

sys.path[:0] = [str(Path(__file__).parent.parent.parent)]
from coordinator.experiments import RayExecutor  # noqa: E402
from coordinator.job import run_job  # noqa: E402
from coordinator.ops import stop_job  # noqa: E402
from librex_alloc.evaluation import runner  # noqa: E402


def main(workdir: str) -> dict:
    work = Path(workdir)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1, resources={"cells": 2})
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace="ops", log_to_driver=False)
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
        # a coordinated run, detached (so its actors can be inspected while it plays)
        res = run_job(agents=400, shards=4, rounds=30, out=work / "o", name="mn",
                      namespace="ops", address=cluster.address, detached=True,
                      round_deadline_s=5.0, progress=False, stream=sys.stderr)
        shard_nodes = {f"mn-shard-{i}": ray.get(ray.get_actor(f"mn-shard-{i}",
                                                              namespace="ops").node_id.remote())
                       for i in range(4)}
        coord = ray.get_actor("mn-coordinator", namespace="ops")
        end = time.monotonic() + 120
        while ray.get(coord.status.remote())["round"] < res.summary["until_round"]:
            assert time.monotonic() < end, "the run did not finish"
            time.sleep(0.5)
        line = stop_job(argparse.Namespace(name="mn", namespace="ops", checkpoint_dir=None))
        rounds = runner.pd.read_parquet(work / "o" / "rounds.parquet")["round"].tolist()
        # a grid whose cells run on the worker node (custom resource), written by the driver
        written = []
        real = runner._write
        runner._write = lambda df, path: (written.append(str(path)), real(df, path))
        cells = [runner.Cell("constrained-ts", "synthetic", s, 6,
                             policy_kwargs={"oracle": "fast"},
                             env_kwargs={"n_agents": 4, "n_resources": 2}) for s in (0, 1)]
        paths = runner.run_grid(cells, work / "grid",
                                executor=RayExecutor(resources={"cells": 1}))
        worker = [n["NodeID"] for n in ray.nodes() if n["Alive"] and
                  n["Resources"].get("cells")][0]
        where = ray.get(ray.remote(resources={"cells": 1}, num_cpus=0)(
            lambda: ray.get_runtime_context().get_node_id()).remote())
        return {"nodes": nodes, "shard_nodes": shard_nodes, "stop": line,
                "rounds": rounds, "until": res.summary["until_round"],
                "written": sorted(written), "paths": sorted(map(str, paths)),
                "cells_node_is_worker": where == worker,
                "files": all(Path(p).is_file() for p in paths)}
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
