"""Fixtures shared by the test modules."""

import jax
import pytest


@pytest.fixture(params=[True, False], ids=["with_jit", "without_jit"])
def variant(request):
    """Runs a function under `jax.jit` and as it is: the tests hold with and without jit."""
    return jax.jit if request.param else (lambda fn: fn)
