"""The hidden non-linearities ``f`` and, where it is a function of ``h = f(a)``, their derivative.

``f'`` itself comes from JAX (a JVP with a tangent of ones); for tanh and sigmoid `FPRIME_FROM_H`
gives the same bits from ``h``, which the forward pass keeps anyway, so ``f'`` need not be stored.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "linear": lambda a: a,
}


# f'(a) from h = f(a), as JAX's own JVPs of tanh and sigmoid compute it (so bit for bit the same).
FPRIME_FROM_H: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": lambda h: (1 + h) * (1 - h),
    "sigmoid": lambda h: h * (1 - h),
}
