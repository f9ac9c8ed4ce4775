"""Evaluation: loss and accuracy of the params on fixed data, as a periodic action."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jdfa import losses
from jdfa.driver.periodic import Periodic
from jdfa.net import Net


@functools.cache
def _eval_fn(net: Net):
    """The jitted ``(params, x, y) -> [loss, accuracy]`` of ``net``, compiled once per net."""

    def fn(params, x, y):
        a_y = net.apply(params, x)
        return jnp.stack([losses.output_loss(net, a_y, y), losses.accuracy(net, a_y, y)])

    return jax.jit(fn)


def evaluate(net: Net, params, x, y, batch: int = 2000) -> dict[str, float]:
    """Mean loss and accuracy of ``params`` on ``(x, y)`` (device arrays), in batches."""
    fn = _eval_fn(net)
    totals = np.zeros(2)
    for i in range(0, x.shape[0], batch):
        xb, yb = x[i:i + batch], y[i:i + batch]
        totals += np.asarray(fn(params, xb, yb)) * xb.shape[0]
    loss, acc = totals / x.shape[0]
    return {"loss": float(loss), "accuracy": float(acc)}


class Evaluate(Periodic):
    """Adds ``train_accuracy`` (on fixed training examples), ``test_accuracy`` and ``test_loss``;
    for token labels (integer, a position axis: a language model's) also ``test_perplexity``,
    ``exp(test_loss)``, the loss being the mean over tokens."""

    def __init__(self, every: int, net: Net, train_xy, test_xy):
        super().__init__(every, at_end=True)
        self.net, self.train_xy, self.test_xy = net, train_xy, test_xy

    def __call__(self, step, state, record):
        record["train_accuracy"] = round(evaluate(self.net, state.params, *self.train_xy)["accuracy"], 6)
        test = evaluate(self.net, state.params, *self.test_xy)
        record["test_accuracy"], record["test_loss"] = round(test["accuracy"], 6), round(test["loss"], 6)
        y = self.test_xy[1]
        if y.ndim > 1 and jnp.issubdtype(y.dtype, jnp.integer):
            record["test_perplexity"] = round(float(np.exp(test["loss"])), 4)
