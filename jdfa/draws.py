"""Random arrays of any shape drawn flat and reshaped: the same values, a fraction of the compile.

JAX's threefry counts through the flattened shape (with ``jax_threefry_partitionable`` on or off),
so ``uniform(key, (n * m,)).reshape(n, m)`` equals ``uniform(key, (n, m))`` bit for bit; but
XLA:CPU compiles the draw of a small last axis far more slowly than the flat one (jax 0.10: 3.3 s
against 0.56 s for (100, 200, 10), the DFA feedback of a 100-layer MNIST MLP), and every such draw
is compiled once per process. These helpers are what jdfa's initialisers call.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def uniform(key: jax.Array, shape: tuple[int, ...], low: float, high: float) -> jax.Array:
    """float32 ``shape`` uniform in [low, high): `jax.random.uniform`'s values for ``shape``."""
    return jax.random.uniform(key, (math.prod(shape),), jnp.float32, low, high).reshape(shape)


def normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """float32 ``shape`` standard normal: `jax.random.normal`'s values for ``shape``."""
    return jax.random.normal(key, (math.prod(shape),), jnp.float32).reshape(shape)
