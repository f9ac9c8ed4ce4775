"""Fixtures shared by the test modules, and one XLA compilation cache for the whole session."""

import os
import shutil
import tempfile

# Many tests compile the same programs, in this process and in the `jdfa` processes they start:
# a persistent cache shared by all of them (and by pytest-xdist's workers, which inherit the
# environment) compiles each program once. It lives for this session only; a cached executable is
# the same program as a fresh compile, so no result depends on it. Set before jax is imported.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jdfa-tests-xla-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(os.environ.pop("JAX_COMPILATION_CACHE_DIR"), ignore_errors=True)


@pytest.fixture(params=[True, False], ids=["with_jit", "without_jit"])
def variant(request):
    """Runs a function under `jax.jit` and as it is: the tests hold with and without jit."""
    return jax.jit if request.param else (lambda fn: fn)
