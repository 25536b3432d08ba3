"""Boundary checks shared by every public function. They raise :class:`InvalidInputError`."""

from __future__ import annotations

import numpy as np

from librex_alloc.errors import InvalidConfigError, InvalidInputError, StateError


def as_float_array(
    x,
    name: str,
    *,
    ndim: int | None = None,
    shape: tuple[int | None, ...] | None = None,
    nonnegative: bool = False,
    finite: bool = True,
) -> np.ndarray:
    """Return ``x`` as a float64 array, checking dimension, shape, finiteness and sign.

    ``shape`` may hold ``None`` for a free axis. Text and complex values are refused (a
    complex array would lose its imaginary part). Raises :class:`InvalidInputError`.
    """
    try:
        raw = np.asarray(x)
        if raw.dtype.kind in "USV" or (raw.dtype.kind == "O" and any(
                isinstance(e, (str, bytes)) for e in raw.flat)):
            raise TypeError("text is not a number")
        if raw.dtype.kind == "c" or (raw.dtype.kind == "O" and any(
                isinstance(e, (complex, np.complexfloating)) for e in raw.flat)):
            raise TypeError("complex numbers are not accepted (the imaginary part would be "
                            "dropped)")
        arr = raw.astype(np.float64, copy=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"{name}: not convertible to a float array ({exc})") from None
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and arr.ndim != ndim:
        raise InvalidInputError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, arr.shape)):
            if want is not None and want != got:
                raise InvalidInputError(
                    f"{name}: expected shape {tuple('?' if s is None else s for s in shape)}, "
                    f"got {arr.shape} (axis {axis})"
                )
    if finite and arr.size and not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name}: contains NaN or infinite values")
    if nonnegative and arr.size and np.any(arr < 0):
        raise InvalidInputError(f"{name}: contains negative values")
    return arr


def as_float(x, name: str) -> float:
    """One finite number (int, float or a numpy number; not bool, not text) as a float."""
    if not is_real_number(x):
        raise InvalidInputError(f"{name}: expected a number, got {x!r}")
    try:
        v = float(x)
    except OverflowError:
        raise InvalidInputError(f"{name}: must be finite, got {x!r}") from None
    if v != v or v in (np.inf, -np.inf):
        raise InvalidInputError(f"{name}: must be finite, got {x!r}")
    return v


def as_int_array(x, name: str, *, ndim: int = 1, length: int | None = None) -> np.ndarray:
    """Return ``x`` as an int64 array; non-integral or non-finite entries are an error."""
    raw = np.asarray(x)
    if raw.ndim != ndim:
        raise InvalidInputError(f"{name}: expected a {ndim}-D array, got shape {raw.shape}")
    if length is not None and raw.shape[0] != length:
        raise InvalidInputError(f"{name}: expected length {length}, got {raw.shape[0]}")
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64, copy=False)
    if raw.dtype.kind == "b":
        return raw.astype(np.int64)
    if raw.dtype.kind not in "fO" or (raw.dtype.kind == "O" and any(
            isinstance(e, (str, bytes, complex, np.complexfloating)) for e in raw.flat)):
        raise InvalidInputError(f"{name}: expected integers, got dtype {raw.dtype}")
    try:
        f = raw.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name}: expected integers") from None
    if f.size and (not np.all(np.isfinite(f)) or np.any(f != np.round(f))):
        raise InvalidInputError(f"{name}: expected integers")
    return f.astype(np.int64)


def is_real_number(value) -> bool:
    """True for a Python or numpy int or float; False for bools, text, complex and the rest."""
    return isinstance(value, (int, float, np.integer, np.floating)) and \
        not isinstance(value, (bool, np.bool_))


def check_scalar(
    value,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    error: type[Exception] = InvalidConfigError,
) -> float:
    """Return ``value`` as a finite float inside the given (closed unless ``*_open``) bounds.

    Only real numbers are accepted: Python or numpy ints and floats. A bool, a string (even
    ``"0.1"``), a complex number, None or any other object is refused, as are NaN and ±inf.
    """
    if not is_real_number(value):
        raise error(f"{name}: expected a number (int or float), got {value!r}")
    try:
        v = float(value)
    except OverflowError:
        raise error(f"{name}: out of range, got {value!r}") from None
    if not np.isfinite(v):
        raise error(f"{name}: must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise error(f"{name}: must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise error(f"{name}: must be {'<' if high_open else '<='} {high}, got {v}")
    return v


# -- state dictionaries (set_state): every failure is a StateError --------------------------
def expect_keys(state, keys, name: str) -> dict:
    """``state`` as a dict with exactly ``keys``; :class:`StateError` otherwise."""
    if not isinstance(state, dict):
        raise StateError(f"{name}: expected a dict, got {type(state).__name__}")
    if set(state) != set(keys):
        missing = sorted(set(keys) - set(state))
        unknown = sorted(map(str, set(state) - set(keys)))
        raise StateError(f"{name}: missing keys {missing}, unknown keys {unknown}")
    return state


def state_array(value, name: str, *, kinds: str = "f", length: int | None = None,
                finite: bool = True, low: float | None = None,
                high: float | None = None) -> np.ndarray:
    """A copy of a 1-D numpy array whose dtype is float64 (``"f"`` in ``kinds``), int64 or
    uint64 (``"iu"``, returned as int64) or bool (``"b"``): exactly what ``get_state`` wrote.

    Checks length, finiteness and closed bounds; raises :class:`StateError`.
    """
    allowed = {"f": ("float64",), "i": ("int64",), "u": ("uint64",), "b": ("bool",)}
    names = [d for k in kinds for d in allowed.get(k, ())]
    if not (isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.name in names):
        raise StateError(f"{name}: expected a 1-D array of dtype {' or '.join(names)}")
    if length is not None and len(value) != length:
        raise StateError(f"{name}: expected length {length}, got {len(value)}")
    if value.dtype.kind == "u" and len(value) and value.max() > np.iinfo(np.int64).max:
        raise StateError(f"{name}: values out of range")
    out = value.astype(np.int64 if value.dtype.kind in "iu" else value.dtype, copy=True)
    if out.dtype.kind == "f" and finite and not np.all(np.isfinite(out)):
        raise StateError(f"{name}: contains NaN or infinite values")
    if low is not None and len(out) and np.any(out < low):
        raise StateError(f"{name}: values below {low}")
    if high is not None and len(out) and np.any(out > high):
        raise StateError(f"{name}: values above {high}")
    return out


def pcg64_state(state) -> dict:
    """Check a ``numpy.random.PCG64`` state dict exactly (types and ranges);
    :class:`StateError` otherwise. Returns it."""
    def is_int(x, bits):
        return type(x) is int and 0 <= x < 2**bits

    ok = (isinstance(state, dict) and set(state) == {"bit_generator", "state", "has_uint32",
                                                      "uinteger"}
          and state["bit_generator"] == "PCG64" and isinstance(state["state"], dict)
          and set(state["state"]) == {"state", "inc"}
          and is_int(state["state"]["state"], 128) and is_int(state["state"]["inc"], 128)
          and state["state"]["inc"] % 2 == 1
          and is_int(state["has_uint32"], 1) and is_int(state["uinteger"], 32))
    if not ok:
        raise StateError("rng: expected a PCG64 state {bit_generator, state: {state, inc}, "
                         "has_uint32, uinteger} with integers in range")
    return state
