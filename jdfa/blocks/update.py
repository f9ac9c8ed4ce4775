"""The update of a `jdfa.blocks.BlockNet`: one forward pass that keeps each block's VJP, the
deltas of the feedback points as the rule's `jdfa.rules.Rule.plan` says, then every block's
parameter update from its own VJP with its own delta.

What is sequential and what is not: the forward pass is a chain of blocks. The deltas are
sequential only where the plan chains them (BP and FA: block by block from the top; FP: over its
top ``bp_depth`` blocks; BDFA: from block group to block group); DFA's deltas all read ``e`` at
once. The parameter updates never depend on each other: ``depth + 1`` independent VJPs, which XLA
is free to run in parallel. A block's VJP is its weight-gradient contraction, the blocks'
counterpart of `jdfa.weight_update`'s einsum; a BP step reuses the one VJP call for both its
input's delta and its parameters' update.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jdfa import losses
from jdfa.blocks.feedback import BlockFeedback, check_feedback
from jdfa.blocks.net import BlockNet, BlockParams, block_apply, check_params
from jdfa.model import check_inputs
from jdfa.rules import FeedbackRule, Rule, StepContext


class Point(NamedTuple):
    """What the forward pass keeps of one feedback point (``N`` the batch size).

    h_in: (N, ...) the block's input.
    a: (N, ...) the feedback point: the block's output, before the activation.
    fprime: ``f'(a)`` times the dropout mask where units were dropped; None when not asked for.
    keep: the dropout mask (``0`` or ``1 / (1 - dropout)``), None when no unit was dropped.
    vjp: the block's VJP at this batch: ``delta -> (param update, input cotangent)``.
    """

    h_in: jax.Array
    a: jax.Array
    fprime: jax.Array | None
    keep: jax.Array | None
    vjp: object


def forward(net: BlockNet, params: BlockParams, x: jax.Array, with_derivative: bool = True,
            key: jax.Array | None = None):
    """The forward pass of flat inputs ``x`` (N, in_features), keeping every block's VJP.

    Returns ``(points, h_top, a_y, vjp_out)``: a `Point` per feedback point, bottom-up, the output
    block's input, the logits (N, out_features) and the output block's VJP.
    """
    drop = net.dropout > 0 and key is not None
    keys = jax.random.split(key, net.depth) if drop else [None] * net.depth
    h, points = jnp.reshape(x, (-1,) + net.input_shape), []
    for i, k in enumerate(keys):
        a, vjp = jax.vjp(functools.partial(block_apply, net, i), params.blocks[i], h)
        if with_derivative:  # the JVP with ones is f'(a) for an elementwise f
            h_next, fprime = jax.jvp(net.f, (a,), (jnp.ones_like(a),))
        else:
            h_next, fprime = net.f(a), None
        keep = None
        if drop:
            keep = jax.random.bernoulli(k, 1.0 - net.dropout, a.shape) / (1.0 - net.dropout)
            h_next, fprime = h_next * keep, None if fprime is None else fprime * keep
        points.append(Point(h, a, fprime, keep, vjp))
        h = h_next
    a_y, vjp_out = jax.vjp(functools.partial(block_apply, net, net.depth), params.output, h)
    return points, h, a_y, vjp_out


def compute_update(net: BlockNet, rule: Rule, params: BlockParams, feedback: BlockFeedback,
                   x: jax.Array, y: jax.Array, batch_mode: str = "mean", remat: bool = False,
                   context: StepContext | None = None):
    """`jdfa.update.compute_update` for a `BlockNet`: ``(update, (loss, a_y))``, the update shaped
    like ``params`` (for ``bp``, the gradient ``jax.grad`` gives)."""
    check_inputs(net, x, y)
    check_params(net, params)
    check_feedback(net, rule, feedback)
    check_supported(net, rule, batch_mode, remat)
    plan = rule.plan(net.depth)
    k_dropout = jax.random.split(context.key)[0] if context is not None else None
    points, h_top, a_y, vjp_out = forward(net, params, x, plan is not None, k_dropout)
    loss, e = losses.output_error(net, a_y, y)
    if plan is None:
        zeros = tuple(jax.tree.map(jnp.zeros_like, p) for p in params.blocks)
        return BlockParams(zeros, vjp_out(e)[0]), (loss, a_y)
    taken = {}  # block -> its param update, where a BP step already ran the block's VJP
    vjps = [p.vjp for p in points] + [vjp_out]
    inputs = [p.h_in for p in points] + [h_top]
    deltas = [None] * net.depth
    for i in reversed(range(net.depth)):
        source, above = plan[i], deltas[i + 1] if i + 1 < net.depth else e
        if source.kind == "backprop":
            taken[i + 1], signal = vjps[i + 1](above)
        elif source.kind == "fa":
            own = params.blocks[i + 1] if i + 1 < net.depth else params.output
            stand_in = jax.tree.map(lambda b, p: b if b.ndim >= 2 else p, feedback.layers[i], own)
            _, vjp_h = jax.vjp(functools.partial(block_apply, net, i + 1, stand_in), inputs[i + 1])
            signal = vjp_h(above)[0]
        else:
            s = e if source.kind == "error" else deltas[source.of]
            signal = jnp.reshape(s, (s.shape[0], -1)) @ feedback.layers[i].T
        fprime = points[i].fprime if source.kind == "backprop" else _feedback_fprime(rule, points[i])
        deltas[i] = jnp.reshape(signal, points[i].a.shape) * fprime
    blocks = tuple(taken[i] if i in taken else vjps[i](deltas[i])[0] for i in range(net.depth))
    output = taken[net.depth] if net.depth in taken else vjp_out(e)[0]
    return BlockParams(blocks, output), (loss, a_y)


def _feedback_fprime(rule: Rule, point: Point):
    """``f'(a)`` for a feedback delta; without ``use_derivative`` the dropout mask, or 1."""
    if not isinstance(rule, FeedbackRule) or rule.use_derivative:
        return point.fprime
    return point.keep if point.keep is not None else 1.0


def check_supported(net: BlockNet, rule: Rule, batch_mode: str, remat: bool) -> None:
    """Raises ``ValueError`` for what `BlockNet`s do not support: averaged batch modes (a
    feedback point's shape differs from layer to layer), remat, rules without a plan."""
    if batch_mode != "mean" or remat:
        raise ValueError(f"jdfa.blocks nets train with batch_mode='mean' and without remat; got "
                         f"batch_mode={batch_mode!r}, remat={remat}")
    rule.plan(net.depth)  # raises for rules without a plan


def layer_dots(u: BlockParams, v: BlockParams) -> jax.Array:
    """(depth + 1,) per-block inner products of two params-shaped trees, the output block last."""
    def dot(a, b):
        return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    return jnp.stack([dot(a, b) for a, b in zip(u.blocks + (u.output,), v.blocks + (v.output,))])
