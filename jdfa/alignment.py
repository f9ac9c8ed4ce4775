"""How well a rule's update agrees with the true gradient, layer by layer.

The PyTorch report measured angles between the parameters of two models trained apart; here the
*updates* are compared on the same parameters and batch, which is what alignment theory is about.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jdfa import batch_modes, blocks, losses, metrics, model, rules, update
from jdfa.feedback import Feedback, check_feedback
from jdfa.model import MLP, Params


class Alignment(NamedTuple):
    """Per-layer agreement, each of shape (depth + 1,): hidden layers 1..depth, then the output.

    cosine: cosine similarity between the rule's update and the BP gradient of the layer (weights
      and bias flattened together); 0 where either is zero.
    angle: the angle between them in degrees.
    norm_ratio: ``|rule update| / |BP gradient|``.
    """

    cosine: jax.Array
    angle: jax.Array
    norm_ratio: jax.Array


def align(net: MLP, rule: rules.Rule, params: Params, feedback: Feedback, x: jax.Array,
          y: jax.Array, batch_mode: str = "mean",
          context: rules.StepContext | None = None) -> Alignment:
    """Compares ``rule``'s update with the BP gradient on the same params and batch.

    One forward pass serves both, without dropout (the net as evaluated); ``context`` is the step
    a rule that draws per step (`jdfa.mix`) draws for. The cost is about one BP step, so it can
    run every N steps inside a jitted loop.
    """
    if isinstance(net, blocks.BlockNet):  # BP's plan equals jax.grad (tested); the jit shares the forward
        u = blocks.compute_update(net, rule, params, feedback, x, y, batch_mode)[0]
        g = jax.grad(lambda p: losses.output_loss(net, blocks.apply(net, p, x), y))(params)
    else:
        model.check_inputs(net, x, y)
        batch_modes.check_batch_mode(batch_mode)
        check_feedback(net, rule, feedback)
        trace = model.forward(net, params, x, with_derivative=True)
        _, e = losses.output_error(net, trace.a_y, y)
        trace, e = batch_modes.average(net, params, trace, e, y, batch_mode)
        u = update.weight_update(trace, rule.deltas(net, params, feedback, trace, e, context), e)
        g = update.weight_update(trace, rules.bp().deltas(net, params, feedback, trace, e), e)
    uu, gg, ug = metrics.layer_dots(u, u), metrics.layer_dots(g, g), metrics.layer_dots(u, g)
    norm = jnp.sqrt(uu * gg)
    cosine = jnp.where(norm > 0, ug / jnp.where(norm > 0, norm, 1.0), 0.0)
    cosine = jnp.clip(cosine, -1.0, 1.0)
    return Alignment(cosine=cosine, angle=jnp.degrees(jnp.arccos(cosine)),
                     norm_ratio=jnp.sqrt(uu) / jnp.where(gg > 0, jnp.sqrt(gg), 1.0))
