"""How well a rule's update agrees with the true gradient, layer by layer.

The PyTorch report measured angles between the parameters of two models trained apart; here the
*updates* are compared on the same parameters and batch, which is what alignment theory is about.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jdfa import rules
from jdfa.net import Net, feedback_or_none


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


def align(net: Net, rule: rules.Rule, params, feedback, x: jax.Array, y: jax.Array,
          batch_mode: str = "mean", context: rules.StepContext | None = None) -> Alignment:
    """Compares ``rule``'s update with the BP gradient on the same params and batch (``feedback``
    as `jdfa.update_direction` takes it: None for a rule that reads none).

    Both are formed without dropout (the net as evaluated), the gradient as the net forms BP's
    update under ``batch_mode`` (`jax.grad` for ``"mean"``); ``context`` is the step a rule that
    draws per step (`jdfa.mix`) draws for. The cost is about one BP step plus one of the rule (XLA
    shares their forward pass), so it can run every N steps inside a jitted loop.
    """
    feedback = feedback_or_none(net, rule, feedback)
    u = net.compute_update(rule, params, feedback, x, y, batch_mode, context=context, dropout=False)[0]
    bp = rules.bp()
    g = net.compute_update(bp, params, feedback_or_none(net, bp, None), x, y, batch_mode)[0]
    uu, gg, ug = net.layer_dots(u, u), net.layer_dots(g, g), net.layer_dots(u, g)
    norm = jnp.sqrt(uu * gg)
    cosine = jnp.where(norm > 0, ug / jnp.where(norm > 0, norm, 1.0), 0.0)
    cosine = jnp.clip(cosine, -1.0, 1.0)
    return Alignment(cosine=cosine, angle=jnp.degrees(jnp.arccos(cosine)),
                     norm_ratio=jnp.sqrt(uu) / jnp.where(gg > 0, jnp.sqrt(gg), 1.0))
