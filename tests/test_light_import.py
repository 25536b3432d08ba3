"""A light import: the package faces are lazy (``librex_alloc.lazy``), so importing the core,
its small modules, ``agents`` or ``coordinator`` loads no numerical back end until a name
that needs one is used.

Each case runs in a fresh interpreter (the test process has everything loaded already).
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BACK_ENDS = {"ortools", "scipy", "pandas", "pyarrow", "numba"}
EVERYTHING = BACK_ENDS | {"ray", "numpy"}

#: statement -> top-level packages it must not load.
LIGHT = {
    "import librex_alloc": EVERYTHING,
    "import librex_alloc.errors": EVERYTHING,
    "import librex_alloc.config": BACK_ENDS | {"ray"},
    "import librex_alloc.fairness": BACK_ENDS | {"ray"},
    "import agents": EVERYTHING,
    "import coordinator": EVERYTHING,
    # a synthetic environment and its requests: no trace readers, few ids hashed without pandas
    "from librex_alloc import SyntheticEnvironment, RoundRequest": BACK_ENDS | {"ray"},
    "import agents.shard": BACK_ENDS | {"ray"},
    # CP-SAT only in the exact oracle's code path, Parquet only where a checkpoint is written
    "from librex_alloc import LibrexAlloc, POLICIES, solve": {"ortools", "pandas", "pyarrow",
                                                            "ray", "numba"},
}

#: statement -> top-level packages it must load (the probe sees what an import pulls in).
HEAVY = {
    "import librex_alloc; librex_alloc.solve": {"scipy"},
    "import librex_alloc; librex_alloc.save_state": {"pyarrow"},
    "import librex_alloc; librex_alloc.AlibabaGpuEnvironment": {"pandas"},
}

PROBE = """
import json, sys
exec(sys.argv[1])
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def loaded_by(statement: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, statement], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("statement", sorted(LIGHT))
def test_import_loads_no_back_end(statement):
    assert sorted(loaded_by(statement) & LIGHT[statement]) == []


@pytest.mark.parametrize("statement", sorted(HEAVY))
def test_first_use_loads_the_back_end(statement):
    assert HEAVY[statement] <= loaded_by(statement)


def test_cp_sat_is_loaded_by_an_exact_solve_only():
    code = ("import numpy as np, sys\n"
            "from librex_alloc import solve\n"
            "from librex_alloc.oracles import solver\n"
            "solver.max_states = lambda *args: 0  # no enumeration: the exact path is CP-SAT\n"
            "r = np.random.default_rng(0)\n"
            "v, q = r.uniform(0, 1, 40), r.uniform(1, 10, (40, 3))\n"
            "solve(v, q, q.sum(axis=0) * 0.3, method='fast')\n"
            "assert 'ortools' not in sys.modules\n"
            "res = solve(v, q, q.sum(axis=0) * 0.3, method='exact')\n"
            "assert res.status == 'optimal', res.status")
    assert "ortools" in loaded_by(code)


# ------------------------------------------------------------------------------ the lazy faces

LAZY = ["librex_alloc", "librex_alloc.oracles", "librex_alloc.environments", "agents",
        "coordinator"]

#: ``librex_alloc.__all__`` before the faces became lazy: none of these may go away.
PUBLIC = [
    "LibrexAlloc", "ResourceManager", "BudgetTracker", "AllocationPolicy",
    "ConstrainedThompsonSampling", "make_policy", "POLICIES", "Allocation", "FairnessConfig",
    "PolicyConfig", "RoundRequest", "OutcomeLedger", "Environment", "EnvironmentRound",
    "SyntheticEnvironment", "OrlibEnvironment", "AlibabaGpuEnvironment", "BitbrainsEnvironment",
    "simulate", "summarize", "save_state", "load_state", "solve", "OracleResult", "LibrexError",
    "InvalidInputError", "InvalidConfigError", "UnknownAgentError", "NotAllocatedError",
    "StateError", "OracleError",
]


def type_checking_imports(package: str) -> dict[str, str]:
    """name -> module of the imports under ``if TYPE_CHECKING:`` in the package's __init__."""
    path = ROOT.joinpath(*package.split("."), "__init__.py")
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.dump(stmt)
                found.update({a.asname or a.name: stmt.module for a in stmt.names})
    return found


@pytest.mark.parametrize("package", LAZY)
def test_face_lists_agree(package):
    """``__all__``, the lazy table and the imports type checkers read name the same things."""
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(module._WHERE)
    assert type_checking_imports(package) == module._WHERE
    assert module.__getattr__.__module__ == "librex_alloc.lazy"  # one mechanism for all


@pytest.mark.parametrize("package", LAZY)
def test_every_public_name_resolves(package):
    module = importlib.import_module(package)
    assert set(module.__all__) <= set(dir(module))
    for name, where in module._WHERE.items():
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(where), name)
        scope: dict = {}
        exec(f"from {package} import {name}", scope)
        assert scope[name] is value
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018
    with pytest.raises(ImportError):
        exec(f"from {package} import not_a_name", {})


def test_public_names_kept():
    import librex_alloc

    assert set(PUBLIC) <= set(librex_alloc.__all__)
    scope: dict = {}
    exec("from librex_alloc import *", scope)
    assert set(PUBLIC) <= set(scope)


def test_first_use_caches_and_submodules_resolve():
    """A name is imported once, then is a plain attribute; a submodule that is not a public
    name still resolves as an attribute, as it did when the package imported it eagerly."""
    code = ("import sys, librex_alloc as la\n"
            "assert 'FairnessConfig' not in vars(la)\n"
            "f = la.FairnessConfig\n"
            "assert vars(la)['FairnessConfig'] is f\n"
            "assert la.metrics is sys.modules['librex_alloc.metrics']\n"
            "assert la.oracles.solve is sys.modules['librex_alloc.oracles.solver'].solve\n"
            "assert 'metrics' in dir(la)\n")
    loaded_by(code)
