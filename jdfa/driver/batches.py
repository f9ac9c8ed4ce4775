"""The data order of a run and the jitted chunk of training steps that draws its batches.

Epoch ``k`` visits the training set in the order ``permutation(fold_in(data_key, k))``, dropping
the last incomplete batch; step ``s`` takes batch ``s mod steps_per_epoch`` of epoch
``s div steps_per_epoch``. The order is a function of the seed and the step alone, so the same
seed gives the same numbers, also across a resume.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jdfa import parallel
from jdfa.model import MLP
from jdfa.rules import Rule
from jdfa.step import init_train_state, train_step


def run_keys(seed: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(init, data, eval)`` keys of a run: params and feedback, the data order (`batch_indices`),
    and the fixed examples of the training-accuracy and alignment measurements."""
    return tuple(jax.random.split(jax.random.key(seed), 3))


def epoch_order(data_key, epoch, n_train: int) -> jax.Array:
    """The order (n_train,) in which epoch ``epoch`` visits the training examples."""
    return jax.random.permutation(jax.random.fold_in(data_key, epoch), n_train)


def batch_indices(data_key, step, n_train: int, batch_size: int) -> jax.Array:
    """The training examples (batch_size,) of the batch at counter ``step`` (the ``step + 1``-th
    step): a slice of epoch ``step // steps_per_epoch``'s order; the last partial batch is dropped."""
    steps_per_epoch = n_train // batch_size
    order = epoch_order(data_key, step // steps_per_epoch, n_train)
    return lax.dynamic_slice_in_dim(order, (step % steps_per_epoch) * batch_size, batch_size)


class ChunkMetrics(NamedTuple):
    """What a chunk of steps reports: its good steps, the interval's running sums, the last good
    step's update norms, and the first skipped step (`jdfa.train_step`'s guard), after which the
    state stays put. The chunk continues the sums it is given one step at a time, so they do not
    depend on where the driver split the interval into chunks (a resumed run sums like a whole one)."""

    steps: jax.Array  # () int32: good steps taken in this chunk
    loss_sum: jax.Array  # () batch-mean losses of the interval's good steps, summed
    accuracy_sum: jax.Array  # () batch accuracies, summed likewise
    update_norm: jax.Array  # () of the last good step
    layer_update_norms: jax.Array  # (depth + 1,) of the last good step
    skipped_at: jax.Array  # () int32: the number (1-based) of the first skipped step; 0 for none
    bad_labels: jax.Array  # () bool: the skipped step's labels were out of range
    bad_inputs: jax.Array  # () bool: the skipped step's inputs were not finite
    bad_layer_norms: jax.Array  # (depth + 1,) the skipped step's update norms (inf/NaN: the culprit)

    @classmethod
    def start(cls, n_layers: int, loss_sum, accuracy_sum) -> ChunkMetrics:
        f, i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        false, norms = jnp.zeros((), bool), jnp.zeros((n_layers,), jnp.float32)
        return cls(i, jnp.float32(loss_sum), jnp.float32(accuracy_sum), f, norms, i, false, false, norms)


def make_chunk(net: MLP, rule: Rule, optimizer, batch_size: int, batch_mode: str, remat: bool,
               n_train: int, data_key, mesh=None):
    """Returns the jitted ``(state, x, y, n_steps, loss_sum, accuracy_sum) -> (state, ChunkMetrics)``
    that runs up to ``n_steps`` (a traced int: one compilation serves every length) guarded
    training steps, continuing the interval's sums (float32 scalars), in one
    loop, drawing each batch on the device as `batch_indices` says (the epoch's permutation is
    drawn once per epoch and carried). From the first skipped step on, the state stays the last
    good one. With a ``mesh``, each batch is split over its ``data`` axis and
    the state laid out as `jdfa.parallel.state_sharding` says."""
    steps_per_epoch = n_train // batch_size

    def chunk(state, x, y, n_steps, loss_sum, accuracy_sum):
        def step(carry):
            state, order, acc = carry
            epoch, i = state.step // steps_per_epoch, state.step % steps_per_epoch
            order = lax.cond(i == 0, lambda: epoch_order(data_key, epoch, n_train), lambda: order)
            idx = lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
            xb, yb = x[idx], y[idx]
            if mesh is not None:
                xb = lax.with_sharding_constraint(xb, parallel.batch_sharding(mesh))
                yb = lax.with_sharding_constraint(yb, parallel.batch_sharding(mesh))
            new, m = train_step(net, rule, optimizer, state, xb, yb, batch_mode, remat, guard=True)
            bad = m["skipped"]
            acc = ChunkMetrics(
                steps=acc.steps + ~bad, loss_sum=acc.loss_sum + jnp.where(bad, 0.0, m["loss"]),
                accuracy_sum=acc.accuracy_sum + jnp.where(bad, 0.0, m["accuracy"]),
                update_norm=jnp.where(bad, acc.update_norm, m["update_norm"]),
                layer_update_norms=jnp.where(bad, acc.layer_update_norms, m["layer_update_norms"]),
                skipped_at=jnp.where(bad, state.step + 1, 0), bad_labels=m["bad_labels"],
                bad_inputs=m["bad_inputs"], bad_layer_norms=m["layer_update_norms"])
            return new, order, acc

        # A skipped step leaves the state, its step count included, unchanged: every later step of
        # the chunk draws the same batch and is skipped the same way, so nothing needs to stop it.
        order = epoch_order(data_key, state.step // steps_per_epoch, n_train)
        acc = ChunkMetrics.start(net.depth + 1, loss_sum, accuracy_sum)
        state, _, acc = lax.fori_loop(0, n_steps, lambda _, c: step(c), (state, order, acc))
        return state, acc

    if mesh is None:
        return jax.jit(chunk)
    abstract = jax.eval_shape(lambda: init_train_state(jax.random.key(0), net, rule, optimizer))
    states, rep = parallel.state_sharding(mesh, abstract), parallel.replicated(mesh)
    return jax.jit(chunk, in_shardings=(states, rep, rep, rep, rep, rep), out_shardings=(states, rep))
