"""Shared fixtures and helpers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings


def assert_state_equal(a, b, path="state"):
    """Deep equality of nested get_state() dicts (arrays bitwise, with dtype)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            assert_state_equal(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, path
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), path
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_state_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and a != a:
        assert isinstance(b, float) and b != b, path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# CI runs a fixed set of examples (derandomized) so a green run is reproducible; local runs
# keep exploring new random examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def ray_session():
    """One Ray instance for the whole test session, started by the first test that needs it
    (``ray.init`` costs seconds): 2 CPUs, no dashboard, token authentication as Ray sets it.
    Always a new local Ray (``address="local"``), never a cluster that happens to run here."""
    import ray

    if ray.is_initialized():  # pragma: no cover - someone else's session
        yield ray
        return
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             namespace="librex-runtime-tests",
             log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
