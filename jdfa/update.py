"""The update of every layer from its delta: one shared contraction, and the batch modes.

Every rule ends here: the weight update of layer ``i`` is ``sum over the batch of h_{i-1} delta_i^T``
(``(fan_in, fan_out)`` in the row convention) and its bias update the batch sum of ``delta_i``.
Because ``e`` carries the ``1/B`` of the batch-mean loss, these sums are batch means, scaled exactly
as `jax.grad` scales the BP gradient. The hidden-to-hidden updates of all layers are ONE batched
contraction over the layer axis.

Batch modes (the PyTorch report, sections 4.5-4.6), all with fixed shapes under `jit`:

* ``"mean"``: the mean of per-example updates (standard).
* ``"batch_average"``: one "master" example per batch: ``x``, ``h`` and ``a`` averaged over the batch,
  and the error the mean of the per-example errors -- for softmax/sigmoid cross-entropy and identity
  MSE exactly the report's ``master_output - master_target``.
* ``"class_average"``: one master example per class present in the batch, the update the mean over
  present classes; classes absent from the batch get a zero error, so they add nothing.

In the averaged modes ``a`` is not stored: the mean of ``a_i = h_{i-1} W_i + b_i`` over a group is
``mean(h_{i-1}) W_i + b_i`` exactly, so ``f'(mean a)`` is recomputed from the averaged inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdfa import model, rules
from jdfa.feedback import Feedback, check_feedback
from jdfa.model import MLP, Dense, Params, Trace

BATCH_MODES = ("mean", "batch_average", "class_average")


def weight_update(trace: Trace, deltas: jax.Array | None, e: jax.Array) -> Params:
    """The update of every layer, shaped like the params.

    Args:
      trace: the forward pass (`jdfa.model.Trace`).
      deltas: (depth, B, width) hidden deltas, bottom-up; None means no hidden layer learns.
      e: (B, out_features) the output error.
    """
    h_in, dtype = trace.h_in, trace.h_top.dtype
    output = Dense(trace.h_top.T @ e, jnp.sum(e, axis=0))
    if deltas is None:
        n_hidden, width = h_in.shape[0], trace.h_top.shape[1]
        return Params(input=Dense(jnp.zeros((trace.x.shape[1], width), dtype),
                                  jnp.zeros((width,), dtype)),
                      hidden=Dense(jnp.zeros((n_hidden, width, width), dtype),
                                   jnp.zeros((n_hidden, width), dtype)),
                      output=output)
    return Params(
        input=Dense(trace.x.T @ deltas[0], jnp.sum(deltas[0], axis=0)),
        hidden=Dense(jnp.einsum("lbi,lbj->lij", h_in, deltas[1:]), jnp.sum(deltas[1:], axis=1)),
        output=output,
    )


def layer_dots(u: Params, v: Params) -> jax.Array:
    """(depth + 1,) per-layer inner products of two params-shaped trees, weights and bias
    together: hidden layers 1..depth, then the output layer."""
    first = jnp.vdot(u.input.w, v.input.w) + jnp.vdot(u.input.b, v.input.b)
    hidden = jnp.einsum("lij,lij->l", u.hidden.w, v.hidden.w) + jnp.einsum(
        "li,li->l", u.hidden.b, v.hidden.b)
    last = jnp.vdot(u.output.w, v.output.w) + jnp.vdot(u.output.b, v.output.b)
    return jnp.concatenate([first[None], hidden, last[None]])


def _groups(net: MLP, y: jax.Array, batch_mode: str) -> tuple[jax.Array, jax.Array]:
    """``(m, scale)``: the (G, B) averaging matrix of the groups and the factor that turns the
    group sums of ``e`` into the mode's master errors."""
    batch = y.shape[0]
    if batch_mode == "batch_average":
        return jnp.full((1, batch), 1.0 / batch), jnp.asarray(float(batch))
    labels = y if jnp.issubdtype(y.dtype, jnp.integer) else jnp.argmax(y, axis=-1)
    n_classes = max(net.out_features, 2)
    member = jax.nn.one_hot(labels, n_classes, dtype=jnp.float32).T  # (C, B)
    count = jnp.sum(member, axis=1, keepdims=True)
    n_present = jnp.sum(count > 0)
    return member / jnp.maximum(count, 1.0), batch / n_present


def average(net: MLP, params: Params, trace: Trace, e: jax.Array, y: jax.Array,
            batch_mode: str) -> tuple[Trace, jax.Array]:
    """Replaces the batch by its master examples (``batch_average``: 1, ``class_average``: one
    per class) for the update; ``"mean"`` returns its inputs unchanged.

    Returns the averaged trace (batch axis G) and the master errors (G, out_features).
    """
    if batch_mode == "mean":
        return trace, e
    m, scale = _groups(net, y, batch_mode)
    x = m @ trace.x
    h_in = jnp.einsum("gb,lbw->lgw", m, trace.h_in)
    h_top = m @ trace.h_top
    inputs = jnp.concatenate([(x @ params.input.w + params.input.b)[None],
                              jnp.einsum("lgi,lij->lgj", h_in, params.hidden.w)
                              + params.hidden.b[:, None]])
    _, fprime = jax.jvp(net.f, (inputs,), (jnp.ones_like(inputs),))
    a_y = h_top @ params.output.w + params.output.b
    # Per-example errors are e * B; a group's master error is their mean, divided among the groups.
    e_master = (m @ e) * scale
    return Trace(x, h_in, h_top, fprime, a_y), e_master


def check_batch_mode(batch_mode: str) -> None:
    if batch_mode not in BATCH_MODES:
        raise ValueError(f"unknown batch_mode {batch_mode!r}; expected one of {list(BATCH_MODES)}")


def check_remat(net: MLP, rule: rules.Rule, batch_mode: str) -> None:
    if rule.feedback_layout(net) != (net.depth, 0) or batch_mode != "mean":
        raise ValueError(f"remat is implemented for DFA (every hidden layer reading e: dfa, fp(0), "
                         f"bdfa(K >= depth)) with batch_mode='mean', not {rule} with "
                         f"batch_mode={batch_mode!r}")


def _dfa_update_remat(net: MLP, rule: rules.Rule, params: Params, feedback: Feedback,
                      x: jax.Array, y: jax.Array):
    """DFA without storing activations: a first forward finds ``e``, a second recomputes each
    layer and forms its update in the same scan step (a 2-D matmul per layer). Memory for the
    activations no longer grows with depth; the price is a second forward pass."""
    a_y = model.forward(net, params, x, with_derivative=False).a_y
    loss, e = model.output_error(net, a_y, y)

    def layer_update(h, w, b, fb):
        h_next, fp = model._layer(net.f, h, w, b, True)
        d = e @ fb.T
        d = d * fp if rule.use_derivative else d
        return h_next, Dense(h.T @ d, jnp.sum(d, axis=0))

    h, g_in = layer_update(x, params.input.w, params.input.b, feedback.output[0])
    h_top, g_hidden = jax.lax.scan(lambda h, xs: layer_update(h, *xs), h,
                                   (params.hidden.w, params.hidden.b, feedback.output[1:]))
    g = Params(g_in, g_hidden, Dense(h_top.T @ e, jnp.sum(e, axis=0)))
    return g, (loss, a_y)


def compute_update(net: MLP, rule: rules.Rule, params: Params, feedback: Feedback, x: jax.Array,
                   y: jax.Array, batch_mode: str = "mean",
                   remat: bool = False) -> tuple[Params, tuple[jax.Array, jax.Array]]:
    """`update_direction` plus ``(loss, a_y)`` of the same forward pass, for the train step."""
    model.check_inputs(net, x, y)
    model.check_params(net, params)
    check_batch_mode(batch_mode)
    check_feedback(net, rule, feedback)
    if remat:
        check_remat(net, rule, batch_mode)
        return _dfa_update_remat(net, rule, params, feedback, x, y)
    trace = model.forward(net, params, x, with_derivative=rule.name != "shallow")
    loss, e = model.output_error(net, trace.a_y, y)
    trace_u, e_u = average(net, params, trace, e, y, batch_mode)
    deltas = rules.hidden_deltas(net, rule, params, feedback, trace_u, e_u)
    return weight_update(trace_u, deltas, e_u), (loss, trace.a_y)


def update_direction(net: MLP, rule: rules.Rule, params: Params, feedback: Feedback, x: jax.Array,
                     y: jax.Array, batch_mode: str = "mean", remat: bool = False) -> Params:
    """The update direction of ``rule`` for every parameter, shaped like ``params``.

    It plays the role of the gradient: for ``bp`` it equals ``jax.grad(jdfa.loss)``; an optimizer
    steps against it. Every layer's update comes from one forward pass and one batched contraction.

    Args:
      x: (B, in_features) float inputs.
      y: (B,) integer class labels, or (B, out_features) float targets.
      batch_mode: one of `BATCH_MODES`.
      remat: DFA only: recompute the activations in a second forward scan instead of storing
        them -- activation memory flat in depth, for about one more forward pass of time.
    """
    return compute_update(net, rule, params, feedback, x, y, batch_mode, remat)[0]
