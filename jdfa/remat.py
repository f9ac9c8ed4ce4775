"""DFA without storing activations (``remat=True``): memory for the activations flat in depth.

A first forward pass finds ``e``; a second recomputes each layer and forms its update in the same
scan step (a 2-D matmul per layer), so no (depth, N, width) stack is ever held. The price is one
more forward pass. This is the one place a rule's update is not built from the shared trace and
contraction: it applies only where every hidden layer reads ``e`` through its own ``B`` (``dfa``,
``fp(0)``, ``bdfa(K >= depth)``), where the fused form is exact.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jdfa import losses, model
from jdfa.feedback import Feedback
from jdfa.model import Dense, Params
from jdfa.net import Net
from jdfa.rules import FeedbackRule, Rule, direct


def check_remat(net: Net, rule: Rule, batch_mode: str) -> None:
    """Raises ``ValueError`` unless ``rule`` is DFA-shaped and the batch mode is ``"mean"``."""
    if not (isinstance(rule, FeedbackRule) and rule.is_dfa(net)) or batch_mode != "mean":
        raise ValueError(f"remat is implemented for DFA (every hidden layer reading e: dfa, fp(0), "
                         f"bdfa(K >= depth)) with batch_mode='mean', not {rule} with "
                         f"batch_mode={batch_mode!r}")


def dfa_update(net: Net, rule: FeedbackRule, params: Params, feedback: Feedback, x: jax.Array,
               y: jax.Array) -> tuple[Params, tuple[jax.Array, jax.Array]]:
    """DFA's update with recomputed activations, and ``(loss, a_y)`` of the first forward pass.

    x: (N, in_features); y: (N,) labels or (N, out_features) targets.
    """
    a_y = model.forward(net, params, x, with_derivative=False).a_y
    loss, e = losses.output_error(net, a_y, y)

    def layer_update(h, w, b, b_feedback):
        h_next, fprime = model.layer(net.f, h, w, b, True)
        d = direct(b_feedback[None], e, rule.feedback_fprime(fprime[None], None))[0]  # DFA's delta, one layer
        return h_next, Dense(h.T @ d, jnp.sum(d, axis=0))

    h, g_in = layer_update(x, params.input.w, params.input.b, feedback.output[0])
    h_top, g_hidden = jax.lax.scan(lambda h, xs: layer_update(h, *xs), h,
                                   (params.hidden.w, params.hidden.b, feedback.output[1:]))
    g = Params(g_in, g_hidden, Dense(h_top.T @ e, jnp.sum(e, axis=0)))
    return g, (loss, a_y)
