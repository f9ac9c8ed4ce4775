"""The update of every layer from its delta: one shared contraction, and the update pipeline.

Every rule ends here: the weight update of layer ``i`` is ``sum over the batch of h_{i-1} delta_i^T``
(``(fan_in, fan_out)`` in the row convention) and its bias update the batch sum of ``delta_i``.
Because ``e`` carries the ``1/N`` of the batch-mean loss, these sums are batch means, scaled exactly
as `jax.grad` scales the BP gradient. The hidden-to-hidden updates of all layers are ONE batched
contraction over the layer axis.

The pipeline of `jdfa.MLP` (`compute_update`, which `jdfa.MLP.compute_update` answers the net
protocol with): forward pass -> output error ``e`` -> batch mode (`jdfa.batch_modes`) -> the rule's
deltas (`jdfa.rules.Rule.deltas`) -> `weight_update`. Shapes: ``N`` is the batch size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdfa import batch_modes, losses, model
from jdfa.feedback import Feedback, check_feedback
from jdfa.model import Dense, Params, Trace
from jdfa.net import Net
from jdfa.remat import check_remat, dfa_update
from jdfa.rules import Rule, StepContext


def weight_update(trace: Trace, deltas: jax.Array | None, e: jax.Array) -> Params:
    """The update of every layer, shaped like the params.

    Args:
      trace: the forward pass (`jdfa.model.Trace`).
      deltas: (depth, N, width) hidden deltas, bottom-up; None means no hidden layer learns.
      e: (N, out_features) the output error.
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
        hidden=Dense(jnp.einsum("lni,lnj->lij", h_in, deltas[1:]), jnp.sum(deltas[1:], axis=1)),
        output=output,
    )


def compute_update(net: Net, rule: Rule, params: Params, feedback: Feedback, x: jax.Array,
                   y: jax.Array, batch_mode: str = "mean", remat: bool = False,
                   context: StepContext | None = None,
                   dropout: bool = True) -> tuple[Params, tuple[jax.Array, jax.Array]]:
    """`jdfa.update_direction` of a `jdfa.MLP`, plus ``(loss, a_y)`` of the same forward pass."""
    model.check_inputs(net, x, y)
    model.check_params(net, params)
    batch_modes.check_batch_mode(batch_mode)
    check_feedback(net, rule, feedback)
    check_dropout(net, batch_mode, remat)
    if remat:
        check_remat(net, rule, batch_mode)
        return dfa_update(net, rule, params, feedback, x, y)
    # One key drops units, the other is the rule's: a rule's draw never repeats the masks'.
    k_dropout, k_rule = jax.random.split(context.key) if context is not None else (None, None)
    k_dropout = k_dropout if dropout else None
    trace = model.forward(net, params, x, with_derivative=rule.needs_fprime, key=k_dropout)
    loss, e = losses.output_error(net, trace.a_y, y)
    trace_u, e_u = batch_modes.average(net, params, trace, e, y, batch_mode)
    rule_context = context._replace(key=k_rule) if context is not None else None
    deltas = rule.deltas(net, params, feedback, trace_u, e_u, rule_context)
    return weight_update(trace_u, deltas, e_u), (loss, trace.a_y)


def check_run(net: Net, rule: Rule, batch_mode: str, remat: bool) -> None:
    """Raises ``ValueError`` for a run that cannot train: a rule that does not fit the net, an
    unknown batch mode, dropout or remat where they cannot apply (the step's and `Config`'s check)."""
    rule.check(net)
    batch_modes.check_batch_mode(batch_mode)
    check_dropout(net, batch_mode, remat)
    if remat:
        check_remat(net, rule, batch_mode)


def check_dropout(net: Net, batch_mode: str, remat: bool) -> None:
    """Raises ``ValueError`` where dropout cannot apply: the averaged batch modes (a mask is per
    example) and remat (the recomputed pass would need the same masks)."""
    if net.dropout and (batch_mode != "mean" or remat):
        raise ValueError(f"dropout={net.dropout} works with batch_mode='mean' and without remat; "
                         f"got batch_mode={batch_mode!r}, remat={remat}")
