"""The fixed random feedback of a rule on a `jdfa.blocks.BlockNet`, shaped to each feedback point.

A rule's `jdfa.rules.Rule.plan` says what each feedback point reads; the feedback holds, per point:

* ``"error"``: ``B_i`` of shape ``(size_i, out_features)``, where ``size_i`` is the point's number
  of units (a conv map H x W x C has ``H*W*C``): ``delta_i = (e @ B_i.T)`` reshaped to the map.
* ``"delta"`` from point ``j``: ``B_i`` of shape ``(size_i, size_j)``.
* ``"fa"``: the block above's parameters with every weight (each array of rank >= 2: Dense
  and Conv kernels) redrawn at random; its biases and scales are the block's own in the backward,
  so only the weights are stand-ins, as Feedback Alignment defines them.
* ``"backprop"``: nothing (None).

Memory: DFA holds ``sum_i size_i * out_features`` floats -- for `jdfa.blocks.ConvNet` on MNIST
(points 24x24x20, 8x8x50 and 500) with 10 classes, 152,200 floats (0.6 MB); FP and BDFA reading a
conv map's delta hold ``size_i * size_j``, which grows as the product of two maps' sizes
(11520 x 3200 floats, 147 MB, for ConvNet's first map reading its second).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jdfa.blocks.net import BlockNet, init_params, points_size
from jdfa.feedback import draw
from jdfa.rules import FeedbackRule, Rule


class BlockFeedback(NamedTuple):
    """One entry per feedback point, bottom-up, as the module docstring lays them out."""

    layers: tuple


def init_feedback(key: jax.Array, net: BlockNet, rule: Rule) -> BlockFeedback:
    """Draws the feedback of ``rule`` for ``net``, shaped as its plan needs."""
    rule.check(net)
    plan = rule.plan(net.depth)
    if plan is None:
        return BlockFeedback(())
    if isinstance(rule, FeedbackRule) and rule.shared_feedback:
        raise ValueError("shared_feedback needs feedback of one shape for every layer; the feedback "
                         "points of a jdfa.blocks net differ in shape, so draw them apart "
                         "(shared_feedback=False)")
    sizes, keys = points_size(net), jax.random.split(key, net.depth)
    above = init_params(jax.random.key(0), net)  # shapes only: the "fa" kernels' shapes
    layers = []
    for i, source in enumerate(plan):
        if source.kind == "backprop":
            layers.append(None)
        elif source.kind == "fa":
            block = above.blocks[i + 1] if i + 1 < net.depth else above.output
            leaves, tree = jax.tree.flatten(block)
            drawn = [draw(k, rule, w.shape, w.size // w.shape[-2]) if w.ndim >= 2 else jnp.zeros_like(w)
                     for k, w in zip(jax.random.split(keys[i], len(leaves)), leaves)]
            layers.append(tree.unflatten(drawn))
        else:
            src = net.out_features if source.kind == "error" else sizes[source.of]
            layers.append(draw(keys[i], rule, (sizes[i], src), src))
    return BlockFeedback(tuple(layers))


def check_feedback(net: BlockNet, rule: Rule, feedback: BlockFeedback) -> None:
    """Raises a clear error if ``feedback`` is not laid out for ``rule`` on ``net``."""
    if not isinstance(feedback, BlockFeedback):
        raise TypeError(f"feedback for a jdfa.blocks net must be a BlockFeedback, got "
                        f"{type(feedback).__name__}; draw it with jdfa.init(key, net, rule)")
    want = jax.tree.map(jnp.shape, jax.eval_shape(lambda: init_feedback(jax.random.key(0), net, rule)))
    got = jax.tree.map(jnp.shape, feedback)
    if got != want:
        raise ValueError(f"feedback does not fit {rule} on {type(net).__name__}: expected shapes "
                         f"{want}, got {got}; draw it with jdfa.init(key, net, rule)")
