"""The data order of a run and the jitted chunk of training steps that draws its batches.

Epoch ``k`` visits the training set in the order ``permutation(fold_in(data_key, k))``, dropping
the last incomplete batch; step ``s`` takes batch ``s mod steps_per_epoch`` of epoch
``s div steps_per_epoch``. The order is a function of the seed and the step alone, so the same
seed gives the same numbers, also across a resume.
"""

from __future__ import annotations

import jax
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


def make_chunk(net: MLP, rule: Rule, optimizer, batch_size: int, batch_mode: str, remat: bool,
               n_train: int, data_key, mesh=None):
    """Returns the jitted ``(state, x, y, n_steps) -> (state, metrics)`` that runs ``n_steps``
    training steps in one `lax.scan`, drawing each batch on the device (as `batch_indices` says;
    the epoch's permutation is drawn once per epoch and carried). Metrics are stacked per step.
    With a ``mesh``, each batch is split over its ``data`` axis and the state laid out as
    `jdfa.parallel.state_sharding` says."""
    steps_per_epoch = n_train // batch_size

    def chunk(state, x, y, n_steps):
        def body(carry, _):
            state, order = carry
            epoch, i = state.step // steps_per_epoch, state.step % steps_per_epoch
            order = lax.cond(i == 0, lambda: epoch_order(data_key, epoch, n_train), lambda: order)
            idx = lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
            xb, yb = x[idx], y[idx]
            if mesh is not None:
                xb = lax.with_sharding_constraint(xb, parallel.batch_sharding(mesh))
                yb = lax.with_sharding_constraint(yb, parallel.batch_sharding(mesh))
            state, metrics = train_step(net, rule, optimizer, state, xb, yb, batch_mode, remat)
            return (state, order), metrics

        order = epoch_order(data_key, state.step // steps_per_epoch, n_train)
        (state, _), metrics = lax.scan(body, (state, order), None, length=n_steps)
        return state, metrics

    if mesh is None:
        return jax.jit(chunk, static_argnums=3)
    abstract = jax.eval_shape(lambda: init_train_state(jax.random.key(0), net, rule, optimizer))
    states, rep = parallel.state_sharding(mesh, abstract), parallel.replicated(mesh)
    return jax.jit(chunk, static_argnums=3, in_shardings=(states, rep, rep),
                   out_shardings=(states, rep))
