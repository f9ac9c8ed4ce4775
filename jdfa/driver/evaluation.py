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


@functools.cache
def _norms_fn(net: Net):
    """The jitted `jdfa.net.Net.point_norms` of ``net``, compiled once per net."""
    return jax.jit(net.point_norms)


def point_norms(net: Net, params, x, batch: int = 2000) -> list[float]:
    """Each feedback point's `jdfa.net.Net.point_norms` on ``x`` (device arrays), bottom-up,
    averaged over its examples in batches."""
    fn, total = _norms_fn(net), 0.0
    for i in range(0, x.shape[0], batch):
        total = total + np.asarray(fn(params, x[i:i + batch])) * x[i:i + batch].shape[0]
    return (total / x.shape[0]).tolist()


def token_metrics(loss: float) -> dict[str, float]:
    """A language model's ``test_perplexity`` and ``test_bits_per_byte`` (its tokens are bytes,
    `jdfa.data.text`) from its mean loss per token in nats."""
    return {"test_perplexity": math.exp(loss), "test_bits_per_byte": loss / math.log(2)}


class Evaluate(Periodic):
    """Adds ``train_accuracy`` (on fixed training examples), ``test_accuracy``, ``test_loss`` and
    ``point_norms`` (`point_norms` on the test examples: how large the signal at each feedback
    point is); for a language model (`jdfa.sampling.is_language_model`), the loss being the mean
    over tokens, also `token_metrics`."""

    def __init__(self, every: int, net: Net, train_xy, test_xy):
        super().__init__(every, at_end=True)
        self.net, self.train_xy, self.test_xy = net, train_xy, test_xy

    def __call__(self, step, state, record):
        record["train_accuracy"] = round(evaluate(self.net, state.params, *self.train_xy)["accuracy"], 6)
        test = evaluate(self.net, state.params, *self.test_xy)
        record["test_accuracy"], record["test_loss"] = round(test["accuracy"], 6), round(test["loss"], 6)
        record["point_norms"] = [round(n, 6) for n in point_norms(self.net, state.params, self.test_xy[0])]
        if is_language_model(self.net):
            record.update({k: round(v, 6) for k, v in token_metrics(test["loss"]).items()})
