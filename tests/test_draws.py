"""jdfa's initialisers draw flat and reshape (`jdfa.draws`): the values are jax.random's own for the
shape, bit for bit, whichever threefry mode is on, so seeds give the weights they always gave."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jdfa import draws

SHAPES = [(7,), (200, 10), (3, 20, 10), (2, 3, 4, 5), (0, 4)]


@pytest.mark.parametrize("partitionable", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_flat_draws_are_jax_randoms_values_for_the_shape(shape, partitionable):
    before = jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", partitionable)
    try:
        key = jax.random.key(11)
        np.testing.assert_array_equal(draws.uniform(key, shape, -0.3, 0.5),
                                      jax.random.uniform(key, shape, jnp.float32, -0.3, 0.5))
        np.testing.assert_array_equal(draws.normal(key, shape), jax.random.normal(key, shape, jnp.float32))
        assert draws.uniform(key, shape, 0.0, 1.0).shape == shape
    finally:
        jax.config.update("jax_threefry_partitionable", before)
