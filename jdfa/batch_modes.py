"""Batch modes (the PyTorch report, sections 4.5-4.6): which examples the update is formed from.

All keep fixed shapes under `jit`:

* ``"mean"``: the mean of per-example updates (standard).
* ``"batch_average"``: one "master" example per batch: ``x``, ``h`` and ``a`` averaged over the batch,
  and the error the mean of the per-example errors -- for softmax/sigmoid cross-entropy and identity
  MSE exactly the report's ``master_output - master_target``.
* ``"class_average"``: one master example per class present in the batch, the update the mean over
  present classes; classes absent from the batch get a zero error, so they add nothing.

In the averaged modes ``a`` is not stored: the mean of ``a_i = h_{i-1} W_i + b_i`` over a group is
``mean(h_{i-1}) W_i + b_i`` exactly, so ``f'(mean a)`` is recomputed from the averaged inputs.
Shapes: ``N`` is the batch size, ``G`` the number of master examples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdfa.model import Params, Trace
from jdfa.net import Net
from jdfa.validate import check_choice

BATCH_MODES = ("mean", "batch_average", "class_average")


def check_batch_mode(batch_mode: str) -> None:
    """Raises ``ValueError`` for a name that is not in `BATCH_MODES`."""
    check_choice("batch_mode", batch_mode, BATCH_MODES)


def _groups(net: Net, y: jax.Array, batch_mode: str) -> tuple[jax.Array, jax.Array]:
    """``(m, scale)``: the (G, N) averaging matrix of the groups and the factor that turns the
    group sums of ``e`` into the mode's master errors."""
    batch = y.shape[0]
    if batch_mode == "batch_average":
        return jnp.full((1, batch), 1.0 / batch), jnp.asarray(float(batch))
    labels = y if jnp.issubdtype(y.dtype, jnp.integer) else jnp.argmax(y, axis=-1)
    n_classes = max(net.out_features, 2)
    member = jax.nn.one_hot(labels, n_classes, dtype=jnp.float32).T  # (C, N)
    count = jnp.sum(member, axis=1, keepdims=True)
    n_present = jnp.sum(count > 0)
    return member / jnp.maximum(count, 1.0), batch / n_present


def average(net: Net, params: Params, trace: Trace, e: jax.Array, y: jax.Array,
            batch_mode: str) -> tuple[Trace, jax.Array]:
    """Replaces the batch by its master examples (``batch_average``: 1, ``class_average``: one
    per class) for the update; ``"mean"`` returns its inputs unchanged.

    Returns the averaged trace (batch axis G) and the master errors (G, out_features).
    """
    if batch_mode == "mean":
        return trace, e
    m, scale = _groups(net, y, batch_mode)
    x = m @ trace.x
    h_in = jnp.einsum("gn,lnw->lgw", m, trace.h_in)
    h_top = m @ trace.h_top
    inputs = jnp.concatenate([(x @ params.input.w + params.input.b)[None],
                              jnp.einsum("lgi,lij->lgj", h_in, params.hidden.w)
                              + params.hidden.b[:, None]])
    _, fprime = jax.jvp(net.f, (inputs,), (jnp.ones_like(inputs),))
    a_y = h_top @ params.output.w + params.output.b
    # Per-example errors are e * N; a group's master error is their mean, divided among the groups.
    e_master = (m @ e) * scale
    return Trace(x, h_in, h_top, fprime, a_y), e_master
