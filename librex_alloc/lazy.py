"""Lazy package faces (PEP 562): a public name is imported from its module on first use.

A package's ``__init__`` lists where each public name lives and installs the pair this
module returns::

    _WHERE = {"solve": "librex_alloc.oracles.solver", ...}
    __getattr__, __dir__ = lazy_module(__name__, _WHERE)

so ``import package`` loads none of those modules (nor what they import: CP-SAT, SciPy,
pandas, pyarrow), while ``package.solve`` and ``from package import solve`` keep working.
Type checkers do not run ``__getattr__``: the ``__init__`` repeats the same imports under
``if TYPE_CHECKING:`` (``tests/test_light_import.py`` checks that both lists agree).

This module imports nothing from the library, so ``agents`` and ``coordinator`` use it too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from importlib.util import find_spec
from typing import Any


def lazy_module(package: str, where: Mapping[str, str]
                ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module named ``package``.

    where: public name -> absolute name of the module that defines it. The first access imports
    that module and stores the value in the package's namespace (later accesses are plain
    attribute lookups). A name that is not in ``where`` but is a submodule is imported, as the
    eager package did (``import librex_alloc; librex_alloc.metrics``); any other name raises
    ``AttributeError`` as a module would.
    """
    where = dict(where)

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            if not name.startswith("__") and find_spec(f"{package}.{name}") is not None:
                return import_module(f"{package}.{name}")  # binds it in the package too
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
