"""The core library never imports Ray (agents/ and coordinator/ wrap it)."""

import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
import librex_alloc
for mod in pkgutil.walk_packages(librex_alloc.__path__, "librex_alloc."):
    importlib.import_module(mod.name)
bad = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))
print(len(list(pkgutil.walk_packages(librex_alloc.__path__))), bad)
assert not bad, bad
"""


def test_core_imports_no_ray():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[0]) >= 10  # the walk really imported the modules
