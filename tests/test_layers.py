"""The layers point one way: the core (``librex_alloc``) imports no Ray, no ``agents`` and no
``coordinator``; ``agents`` imports no ``coordinator``.

Checked twice: statically, every import statement of every module (also those inside functions,
``try`` and ``if TYPE_CHECKING:`` blocks, ``import_module("...")`` calls and the lazy faces'
``_WHERE`` tables), and dynamically, by importing every module of the package in a fresh
interpreter and reading ``sys.modules`` (what the import really pulled in, however indirectly).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> top-level packages it must never import.
FORBIDDEN = {
    "librex_alloc": {"ray", "agents", "coordinator"},
    "agents": {"coordinator"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in the source of module ``name``."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                found.append((node.lineno, ".".join(parts + [node.module or ""]).strip(".")))
            else:
                found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "id", getattr(node.func, "attr", None))
              in ("import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
        elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
              and any(getattr(t, "id", None) == "_WHERE" for t in node.targets)):
            found += [(v.lineno, v.value) for v in node.value.values
                      if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return found


def violations(package: str, source: str, name: str, is_package: bool = False) -> list[str]:
    return [f"{name}:{line} imports {module}"
            for line, module in imported_modules(source, name, is_package)
            if module.split(".")[0] in FORBIDDEN[package]]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_forbidden_import_statement(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert len(files) >= 5, files  # the walk really found the package's modules
    bad = [v for path in files
           for v in violations(package, path.read_text(encoding="utf-8"), module_name(path),
                               path.name == "__init__.py")]
    assert bad == []


HIDDEN = {
    "import ray": "ray",
    "def f():\n    from ray import remote": "ray",
    "try:\n    import coordinator.core as c\nexcept ImportError:\n    pass": "coordinator.core",
    "if TYPE_CHECKING:\n    from agents import Report": "agents",
    "M = importlib.import_module('ray.util')": "ray.util",
    "M = __import__('coordinator')": "coordinator",
    "_WHERE = {'Thing': 'agents.shard'}": "agents.shard",
    "from ...agents import shard": "agents",
}


@pytest.mark.parametrize("snippet", sorted(HIDDEN))
def test_static_check_sees_every_kind_of_import(snippet):
    """The checker is not blind: a forbidden import, appended in each way it may be written to
    a real core module, is reported."""
    source = (ROOT / "librex_alloc" / "oracles" / "exact.py").read_text(encoding="utf-8")
    name = "librex_alloc.oracles.exact"
    assert violations("librex_alloc", source, name) == []
    bad = violations("librex_alloc", source + "\n" + snippet + "\n", name)
    assert [b.split(" imports ")[1] for b in bad] == [HIDDEN[snippet]]


#: Imports every module of one package (walk_packages), then prints what it loaded.
WALK = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [sys.argv[1]] + [m.name for m in pkgutil.walk_packages(package.__path__, sys.argv[1] + ".")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def import_everything(package: str) -> dict:
    out = subprocess.run([sys.executable, "-c", WALK, package], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_every_module_loads_no_forbidden_package(package):
    result = import_everything(package)
    on_disk = {module_name(p) for p in (ROOT / package).rglob("*.py")}
    assert on_disk <= set(result["modules"])  # every module really was imported
    assert sorted(FORBIDDEN[package] & set(result["loaded"])) == []


def test_dynamic_check_sees_an_indirect_import():
    """The subprocess probe reports what an import pulls in indirectly: the ``agents`` walk
    loads Ray (``agents.actors``), which the core's walk must not."""
    assert "ray" in import_everything("agents")["loaded"]


def private_core_imports(source: str) -> list[str]:
    """Imports of a private part of the core (a module or name starting with ``_``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found += [f"{node.lineno}: {n}" for n in names if n.split(".")[0] == "librex_alloc"
                  and any(p.startswith("_") for p in n.split(".")[1:])]
    return found


@pytest.mark.parametrize("package", ["agents", "coordinator"])
def test_the_runtime_uses_only_the_cores_public_modules(package):
    bad = [f"{path.relative_to(ROOT)}:{hit}" for path in sorted((ROOT / package).rglob("*.py"))
           for hit in private_core_imports(path.read_text(encoding="utf-8"))]
    assert bad == []


def test_private_import_check_sees_one():
    assert private_core_imports("from librex_alloc._lazy import lazy_module") != []
    assert private_core_imports("from librex_alloc.oracles import _problem") != []
    assert private_core_imports("from librex_alloc.lazy import lazy_module") == []
