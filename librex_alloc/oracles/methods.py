"""The oracle methods, listed once: every argument choice, check and help text is built here.

``"auto"``: exact on small problems, else the relaxation improved within the time limit;
``"exact"``: CP-SAT (or enumeration) to the gap tolerance; ``"fast"``: the LP relaxation
rounded and repaired (every selection on tiny problems). See :func:`~librex_alloc.oracles.solve`.
"""

from __future__ import annotations

from librex_alloc.errors import InvalidConfigError

#: The methods of :func:`~librex_alloc.oracles.solve`, in the order help texts list them.
METHODS: tuple[str, ...] = ("auto", "exact", "fast")
#: The methods from the cheapest per round to the dearest (benchmark tables list them so).
CHEAPEST_FIRST: tuple[str, ...] = ("fast", "auto", "exact")


def describe(methods: tuple[str, ...] = METHODS, *, none: bool = False) -> str:
    """``"'auto', 'exact' or 'fast'"`` (``none``: with ``None`` first), for messages."""
    names = (["None"] if none else []) + [repr(m) for m in methods]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def check_method(method, name: str = "method", *, allow_none: bool = False) -> str | None:
    """``method`` if it is one of :data:`METHODS` (or None when ``allow_none``);
    :class:`InvalidConfigError` naming the argument ``name`` otherwise."""
    if method is None and allow_none:
        return None
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidConfigError(f"{name}: expected {describe(none=allow_none)}, got "
                                 f"{method!r}")
    return method


__all__ = ["CHEAPEST_FIRST", "METHODS", "check_method", "describe"]
