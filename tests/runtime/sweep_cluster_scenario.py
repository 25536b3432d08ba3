"""A sweep on a 2-node ``ray.cluster_utils.Cluster`` whose worker node is removed mid-sweep.

Run as a script (its own Ray instance): prints one JSON line with what the test checks.
Usage: ``python sweep_cluster_scenario.py TMP_DIR``. Each node has one CPU, so two trials run
at once, one per node; once a trial on the worker node has reported (and checkpointed), the
node is removed. Tune restarts that trial (``max_failures``) on the head from its checkpoint.
Storage is a local folder: on one machine it is "a path every node sees".
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from coordinator.sweep import TrialSettings, run_sweep
from librex_alloc.sweep_space import SweepSpace


def main(tmp: str) -> dict:
    tmp_path = Path(tmp)
    marks = tmp_path / "marks"
    marks.mkdir()
    t0 = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    removed = {}
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        worker_id = worker.node_id

        def hook(m):
            (marks / f"{m['node_id']}~{m['trial_id']}~{m['rounds_done']}").touch()
            time.sleep(0.4)  # keep the trials running while the node goes

        def remove_when_a_worker_trial_reported():
            while time.monotonic() - t0 < 120:
                seen = [p.name.split("~") for p in marks.iterdir()]
                on_worker = [s for s in seen if s[0] == worker_id]
                if on_worker:
                    removed["trials"] = sorted({s[1] for s in on_worker})
                    removed["reports_before"] = [p.name for p in marks.iterdir()
                                                 if p.name.startswith(worker_id)]
                    cluster.remove_node(worker)
                    removed["at_s"] = time.monotonic() - t0
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=remove_when_a_worker_trial_reported, daemon=True)
        watcher.start()
        space = SweepSpace.from_params(["fairness.alpha=0,1", "seed=0:2", "env.agents=12"])
        result = run_sweep(space, storage=str(tmp_path / "store"), out=tmp_path / "out",
                           settings=TrialSettings(rounds=60, report_every=10,
                                                  runner="inprocess"),
                           max_failures=3, verbose=0, on_report=hook, plot=False)
        watcher.join(timeout=5)
    finally:
        ray.shutdown()
        cluster.shutdown()
    t = result.trials
    moved = []
    for tid in removed.get("trials", []):
        row = t[t["trial_id"] == tid].iloc[0]
        moved.append({"trial_id": tid, "status": row["status"],
                      "restored_from": int(row["restored_from"]),
                      "final_node_is_worker": row["node_id"] == worker_id})
    # what trials on the removed node wrote to the storage (their reported results) is there
    files = missing = 0
    for tid in removed.get("trials", []):
        path = Path(t[t["trial_id"] == tid].iloc[0]["path"])
        rows = [json.loads(line) for line in (path / "result.json").read_text().splitlines()]
        on_worker = {r["rounds_done"] for r in rows if r.get("node_id") == worker_id}
        files += len(on_worker)
        reported = {int(n.split("~")[2]) for n in removed["reports_before"]
                    if n.split("~")[1] == tid}
        missing += len(reported - on_worker)
    nodes = {p.name.split("~")[0] for p in marks.iterdir()}
    return {"trials": len(t), "statuses": list(t["status"]), "nodes_used": len(nodes),
            "moved": [m for m in moved if m["status"] == "done" and
                      not m["final_node_is_worker"]],
            "removed_at_s": removed.get("at_s"), "removed_node_files": files,
            "removed_node_files_missing": missing, "seconds": time.monotonic() - t0}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
