"""The fixed random feedback matrices ``B``: layout and seeded initialisation.

``B_i`` is stored with the shape the papers give it, ``(width, src)``, where ``src`` is the size of
the signal it reads (``out_features`` for ``e``, ``width`` for a hidden delta); in the row-vector
convention a layer's feedback is ``s @ B_i.T``. This is the shape of the forward weight it stands in
for, so an FA chain and the BP chain are the same code with ``B`` in place of ``W``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jdfa import draws
from jdfa.net import Net
from jdfa.rules import FeedbackRule, Rule


class Feedback(NamedTuple):
    """The feedback matrices of one rule, never trained.

    output: (n_output, width, out_features) -- the ``B_i`` that read the output error ``e``, for the
      top ``n_output`` hidden layers, bottom-up.
    hidden: (n_hidden, width, width) -- the ``B_i`` that read a hidden layer's delta, bottom-up over
      the layers that need one.

    `Rule.feedback_layout` gives ``(n_output, n_hidden)`` for a rule and net; each rule's
    docstring says which layer's ``B`` sits where.
    """

    output: jax.Array
    hidden: jax.Array


def draw(key, rule: FeedbackRule, shape: tuple[int, ...], fan: int, widest: int) -> jax.Array:
    """One feedback array of ``shape`` drawn as ``rule.feedback_init`` says, where ``fan`` is the
    size of the signal each of its rows reads (``src`` for a ``(width, src)`` matrix) and
    ``widest`` the size of the net's widest feedback point (``"tinydfa"`` divides by its root)."""
    scale = rule.feedback_scale
    if rule.feedback_init in ("uniform", "tinydfa"):
        lim = scale / np.sqrt(fan if rule.feedback_init == "uniform" else widest)
        return draws.uniform(key, shape, -lim, lim)
    if rule.feedback_init == "gaussian":
        return scale * draws.normal(key, shape)
    return (scale / np.sqrt(fan)) * draws.normal(key, shape)  # variance_scaling


def _draw(key, rule: FeedbackRule, n: int, width: int, src: int) -> jax.Array:
    if n == 0:  # rules without feedback have no options to draw with
        return jnp.zeros((0, width, src), jnp.float32)
    b = draw(key, rule, (1 if rule.shared_feedback else n, width, src), src, width)
    return jnp.broadcast_to(b, (n, width, src)) if rule.shared_feedback else b


def init_feedback(key: jax.Array, net: Net, rule: Rule) -> Feedback:
    """Draws the feedback matrices of ``rule`` for ``net`` as ``rule.feedback_init`` says."""
    n_output, n_hidden = rule.feedback_layout(net)
    k_out, k_hidden = jax.random.split(key)
    return Feedback(output=_draw(k_out, rule, n_output, net.width, net.out_features),
                    hidden=_draw(k_hidden, rule, n_hidden, net.width, net.width))


def check_feedback(net: Net, rule: Rule, feedback: Feedback) -> None:
    """Raises ``ValueError`` if ``feedback`` is not laid out for ``rule`` on ``net``."""
    if not isinstance(feedback, Feedback):
        raise TypeError(f"feedback must be a jdfa.Feedback, got {type(feedback).__name__}")
    n_output, n_hidden = rule.feedback_layout(net)
    want = ((n_output, net.width, net.out_features), (n_hidden, net.width, net.width))
    got = (jnp.shape(feedback.output), jnp.shape(feedback.hidden))
    if got != want:
        raise ValueError(f"feedback does not fit {rule} on {net}: expected shapes output={want[0]}, "
                         f"hidden={want[1]}, got output={got[0]}, hidden={got[1]}; draw it with "
                         "jdfa.init(key, net, rule)")
