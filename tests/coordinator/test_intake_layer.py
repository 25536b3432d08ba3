"""The coordinator's outcome intake asks the policy (check_outcomes / observe_checked) and
never reads the policy's registry, ledger or posterior."""

from __future__ import annotations

import ast
import inspect

import coordinator.intake as intake
from coordinator.core import Coordinator


def test_intake_reads_no_policy_internals():
    tree = ast.parse(inspect.getsource(intake))
    read = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute) and node.value.attr == "policy"}
    assert read == {"check_outcomes", "observe_checked", "observe"}


def test_the_coordinator_takes_outcomes_through_the_intake():
    for name in ("report", "_apply_report", "_check_report", "_apply_reports", "_observe",
                 "_record_reports"):
        assert getattr(Coordinator, name) is getattr(intake.OutcomeIntake, name)
        assert name not in Coordinator.__dict__
