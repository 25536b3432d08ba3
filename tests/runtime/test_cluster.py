"""The coordinator survives the removal of its node from a 2-node Ray cluster (slow, ~25 s).

``ray.cluster_utils.Cluster`` needs its own Ray instance, so the scenario runs in a subprocess
(cluster_scenario.py); the checkpoint directory is a path every node can reach (here: local).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_coordinator_moves_to_another_node_and_resumes_exactly(tmp_path):
    script = Path(__file__).with_name("cluster_scenario.py")
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["node_before"] == result["first_node"]
    assert result["node_after"] != result["first_node"]  # restarted on the other node
    assert result["round"] == 40 and result["restarts"] == 1
    assert result["state_equal"] is True  # posteriors of an uninterrupted run
    assert result["applied"] == result["reference_applied"]  # none lost, none twice
    assert result["rounds"] is True  # one metrics row per round
