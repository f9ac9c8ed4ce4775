"""Per-layer measurements of params-shaped trees, shared by the train step and `jdfa.align`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdfa.blocks.net import BlockParams
from jdfa.blocks.update import layer_dots as block_dots
from jdfa.model import Params


def layer_dots(u: Params, v: Params) -> jax.Array:
    """(depth + 1,) per-layer inner products of two params-shaped trees, weights and bias
    together: hidden layers 1..depth, then the output layer (blocks, then the output block, for
    a `jdfa.blocks` net)."""
    if isinstance(u, BlockParams):
        return block_dots(u, v)
    first = jnp.vdot(u.input.w, v.input.w) + jnp.vdot(u.input.b, v.input.b)
    hidden = jnp.einsum("lij,lij->l", u.hidden.w, v.hidden.w) + jnp.einsum(
        "li,li->l", u.hidden.b, v.hidden.b)
    last = jnp.vdot(u.output.w, v.output.w) + jnp.vdot(u.output.b, v.output.b)
    return jnp.concatenate([first[None], hidden, last[None]])
