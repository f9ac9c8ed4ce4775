"""Evaluation: loss, accuracy and the feedback points' norms of the params on fixed data, as a
periodic action."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jdfa import losses
from jdfa.driver.periodic import Periodic
from jdfa.net import Net
from jdfa.sampling import is_language_model


@functools.cache
def _eval_fn(net: Net, measured: bool):
    """The jitted ``(params, x, y) -> ([loss, accuracy], point norms or None)`` of ``net``,
    compiled once per net; the norms (``measured``) from the same forward pass
    (`jdfa.net.Net.measured_apply`)."""

    def fn(params, x, y):
        a_y, norms = net.measured_apply(params, x) if measured else (net.apply(params, x), None)
        return jnp.stack([losses.output_loss(net, a_y, y), losses.accuracy(net, a_y, y)]), norms

    return jax.jit(fn)


def evaluate(net: Net, params, x, y, batch: int = 2000, point_norms: bool = False) -> dict:
    """Mean ``loss`` and ``accuracy`` of ``params`` on ``(x, y)`` (device arrays), in batches;
    with ``point_norms``, also each feedback point's `jdfa.net.Net.point_norms` averaged over the
    examples (a list, bottom-up), measured in the same forward passes."""
    fn = _eval_fn(net, point_norms)
    totals, norms = np.zeros(2), 0.0
    for i in range(0, x.shape[0], batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        metrics, batch_norms = fn(params, xb, yb)
        totals += np.asarray(metrics) * xb.shape[0]
        if point_norms:
            norms = norms + np.asarray(batch_norms) * xb.shape[0]
    loss, acc = totals / x.shape[0]
    out = {"loss": float(loss), "accuracy": float(acc)}
    if point_norms:
        out["point_norms"] = (norms / x.shape[0]).tolist()
    return out


def token_metrics(loss: float) -> dict[str, float]:
    """A language model's ``test_perplexity`` and ``test_bits_per_byte`` (its tokens are bytes,
    `jdfa.data.text`) from its mean loss per token in nats."""
    return {"test_perplexity": math.exp(loss), "test_bits_per_byte": loss / math.log(2)}


class Evaluate(Periodic):
    """Adds ``train_accuracy`` (on fixed training examples), ``test_accuracy``, ``test_loss`` and
    ``point_norms`` (`jdfa.net.Net.point_norms` on the test examples: how large the signal at each feedback
    point is); for a language model (`jdfa.sampling.is_language_model`), the loss being the mean
    over tokens, also `token_metrics`."""

    def __init__(self, every: int, net: Net, train_xy, test_xy):
        super().__init__(every, at_end=True)
        self.net, self.train_xy, self.test_xy = net, train_xy, test_xy

    def __call__(self, step, state, record):
        record["train_accuracy"] = round(evaluate(self.net, state.params, *self.train_xy)["accuracy"], 6)
        test = evaluate(self.net, state.params, *self.test_xy, point_norms=True)
        record["test_accuracy"], record["test_loss"] = round(test["accuracy"], 6), round(test["loss"], 6)
        record["point_norms"] = [round(n, 6) for n in test["point_norms"]]
        if is_language_model(self.net):
            record.update({k: round(v, 6) for k, v in token_metrics(test["loss"]).items()})
