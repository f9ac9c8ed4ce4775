"""The pieces a plan's stacked ops are made of (`jdfa.rules.stacked`): direct feedback to many
layers at once, and a layer-by-layer chain. Shapes: ``N`` is the batch size, ``L`` a number of
stacked layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def direct(b: jax.Array, s: jax.Array, fprime: jax.Array) -> jax.Array:
    """Feedback from one signal to many layers at once: ``(B_l s) * f'(a_l)`` for every ``l``.

    b: (L, width, src), s: (N, src), fprime: (L, N, width) or broadcastable -> (L, N, width).
    """
    return jnp.einsum("ns,lws->lnw", s, b) * fprime


def chain(top: jax.Array, mats: jax.Array, fprime: jax.Array) -> jax.Array:
    """Layer-by-layer feedback: ``delta_l = (M_l delta_{l+1}) * f'(a_l)`` for ``l = L-1 .. 0``.

    top: (N, width) delta of the layer above the stack; mats: (L, width, width) with ``M_l``
    mapping layer ``l`` to ``l + 1`` (``W_{l+1}`` for BP, ``B_l`` for FA); fprime: (L, N, width).
    Returns the deltas (L, N, width).
    """

    def step(delta, m_fprime):
        m, fprime_l = m_fprime
        delta = (delta @ m.T) * fprime_l
        return delta, delta

    return lax.scan(step, top, (mats, fprime), reverse=True)[1]


def stack(*parts: jax.Array) -> jax.Array:
    """Concatenates layer stacks along the layer axis, skipping empty ones."""
    return jnp.concatenate([p for p in parts if p.shape[0]])
