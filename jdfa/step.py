"""The training state and the jitted step.

The step is one `jax.jit` of ``(state, x, y) -> (state, metrics)`` with the state donated. The
feedback matrices live in the state, beside the params, and are never seen by the optimizer. So
does a key: each step folds its index into it for the step's randomness (dropout masks, `jdfa.mix`'s
draws), so a resumed or vmapped run draws exactly what it would have drawn whole and alone.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jdfa import losses, parallel
from jdfa.net import Net
from jdfa.rules import Rule, StepContext


class TrainState(NamedTuple):
    step: jax.Array  # () int32, steps taken
    params: object  # the net's parameters (`jdfa.net.Net.init_params`)
    feedback: object  # fixed (`jdfa.net.Net.init_feedback`)
    opt_state: optax.OptState
    key: jax.Array  # raw PRNG key data (uint32), the root of every step's `StepContext`


def init(key: jax.Array, net: Net, rule: Rule) -> tuple[object, object]:
    """Draws ``(params, feedback)`` for ``net`` trained with ``rule``; the same key gives the
    same bits. Rules paired by an identity (e.g. ``dfa`` and ``bdfa(depth)``) get feedback of the
    same structure, so one feedback can be passed to both."""
    rule.check(net)
    k_params, k_feedback = jax.random.split(key)
    return net.init_params(k_params), net.init_feedback(k_feedback, rule)


def init_train_state(key: jax.Array, net: Net, rule: Rule,
                     optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh `TrainState`: `init` plus the optimizer's state of the params.

    `make_train_step`'s step donates the state it is given: after a call every array of that state
    (params, feedback, optimizer state) is deleted, so keep the state the step returns, and copy
    (``jax.tree.map(jnp.copy, state)``) what you want to keep, or arrays you put into a state
    yourself before the first step.
    """
    params, feedback = init(key, net, rule)
    steps_key = jax.random.fold_in(key, 1)  # a stream apart from `init`'s split
    if jnp.issubdtype(steps_key.dtype, jax.dtypes.prng_key):
        steps_key = jax.random.key_data(steps_key)
    return TrainState(jnp.zeros((), jnp.int32), params, feedback, optimizer.init(params), steps_key)


def step_context(state: TrainState) -> StepContext:
    """The `StepContext` of the step ``state`` is about to take."""
    return StepContext(state.step, jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step))


def train_step(net: Net, rule: Rule, optimizer: optax.GradientTransformation, state: TrainState,
               x: jax.Array, y: jax.Array, batch_mode: str = "mean", remat: bool = False,
               guard: bool = True) -> tuple[TrainState, dict]:
    """One un-jitted training step; `make_train_step` compiles it.

    Returns the new state and metrics: ``loss`` (batch-mean, before the step), ``accuracy`` (of the
    batch, before the step), ``layer_update_norms`` (depth + 1,) (the norm of each layer's update,
    hidden layers then output), ``update_norm`` (their global norm) and ``finite`` (False when the
    loss or any update is NaN or infinite; a layer whose norm is not finite is the culprit).

    With ``guard`` (the default) a step on invalid data is skipped inside the jit: when a label lies
    outside ``[0, classes)``, an input or target is not finite, or the update is not finite, the
    state comes back unchanged (``step`` included) and ``skipped`` is True, with ``bad_labels`` /
    ``bad_inputs`` saying which (neither: the update diverged); on invalid data ``loss`` and
    ``accuracy`` are NaN. ``guard=False`` applies every
    update as it is, for benchmarking the guard's cost.
    """
    g, (loss, a_y) = net.compute_update(rule, state.params, state.feedback, x, y, batch_mode, remat,
                                        step_context(state))
    # One pass over the update gives the per-layer norms, the global norm and the NaN/inf check:
    # a NaN or inf anywhere in a layer makes its sum of squares non-finite.
    sq = net.layer_dots(g, g)
    finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(sq))
    metrics = {
        "loss": loss,
        "accuracy": losses.accuracy(net, a_y, y),
        "layer_update_norms": jnp.sqrt(sq),
        "update_norm": jnp.sqrt(jnp.sum(sq)),
        "finite": finite,
    }

    def apply(_):
        updates, opt_state = optimizer.update(g, state.opt_state, state.params)
        return TrainState(state.step + 1, optax.apply_updates(state.params, updates), state.feedback,
                          opt_state, state.key)

    if not guard:
        return apply(None), metrics
    labels_ok, inputs_ok = losses.labels_valid(net, y), jnp.all(jnp.isfinite(x))
    ok = labels_ok & inputs_ok & finite
    # Invalid data has no loss or accuracy: out-of-range labels one-hot to zeros, a loss of -0.0.
    data_ok = labels_ok & inputs_ok
    metrics.update(loss=jnp.where(data_ok, loss, jnp.nan),
                   accuracy=jnp.where(data_ok, metrics["accuracy"], jnp.nan),
                   skipped=~ok, bad_labels=~labels_ok, bad_inputs=~inputs_ok)
    # A branch, not a select: the good path pays nothing for the state it does not copy.
    return lax.cond(ok, apply, lambda _: state, None), metrics


def make_train_step(net: Net, rule: Rule, optimizer: optax.GradientTransformation,
                    batch_mode: str = "mean", mesh=None, remat: bool = False, guard: bool = True):
    """Returns the jitted step ``(state, x, y) -> (state, metrics)``; the state is donated, so the
    old one must not be used after the call. Inputs are checked when the step is traced.

    mesh: an optional `jax.sharding.Mesh` from `jdfa.parallel.make_mesh`: the batch is split over
      its ``data`` axis and the stacked layers over its ``layers`` axis (`jdfa.parallel`). Place
      the state with `jdfa.parallel.shard_state` first.
    remat: DFA only: recompute activations instead of storing them (`jdfa.remat`).
    guard: skip steps on invalid data or non-finite updates (`train_step`).
    """
    net.check_run(rule, batch_mode, remat, 1 if mesh is None else mesh.size)

    def step(state, x, y):
        return train_step(net, rule, optimizer, state, x, y, batch_mode, remat, guard)

    if mesh is None:
        return jax.jit(step, donate_argnums=0)
    abstract = jax.eval_shape(lambda: init_train_state(jax.random.key(0), net, rule, optimizer))
    states = parallel.state_sharding(mesh, abstract, net)
    batch = parallel.batch_sharding(mesh)
    return jax.jit(step, in_shardings=(states, batch, batch),
                   out_shardings=(states, parallel.replicated(mesh)), donate_argnums=0)
