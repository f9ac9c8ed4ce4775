"""The output side of the net: losses, targets, the output error ``e`` and accuracy.

A loss pairs the output non-linearity ``f_y`` with its per-example loss; ``e = dLoss/da_y`` of the
batch-mean loss is what every rule sends back. Shapes: ``N`` is the batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


def _softmax_cross_entropy(a_y, t):
    return -jnp.sum(t * jax.nn.log_softmax(a_y), axis=-1)


def _sigmoid_binary_cross_entropy(a_y, t):
    # log-sigmoid form: finite for saturated outputs where log(sigmoid(a)) would underflow.
    return jnp.sum(-t * jax.nn.log_sigmoid(a_y) - (1.0 - t) * jax.nn.log_sigmoid(-a_y), axis=-1)


def _mse(a_y, t):
    # The 1/2 makes e = y_hat - y exactly, the PyTorch report's error.
    return 0.5 * jnp.sum((a_y - t) ** 2, axis=-1)


def _sigmoid_mse(a_y, t):
    return 0.5 * jnp.sum((jax.nn.sigmoid(a_y) - t) ** 2, axis=-1)


class Loss(NamedTuple):
    """An output non-linearity and its loss."""

    per_example: Callable[[jax.Array, jax.Array], jax.Array]  # (N, out), (N, out) -> (N,)
    output: Callable[[jax.Array], jax.Array]  # a_y -> y_hat
    classification: bool  # integer labels allowed, accuracy meaningful


LOSSES: dict[str, Loss] = {
    "softmax_cross_entropy": Loss(_softmax_cross_entropy, jax.nn.softmax, True),
    "sigmoid_binary_cross_entropy": Loss(_sigmoid_binary_cross_entropy, jax.nn.sigmoid, True),
    "mse": Loss(_mse, lambda a: a, True),
    "sigmoid_mse": Loss(_sigmoid_mse, jax.nn.sigmoid, True),
}


def targets(net, y: jax.Array) -> jax.Array:
    """Turns ``y`` into float targets ``(N, out_features)``.

    Integer labels ``(N,)`` become one-hot; with a single output unit (binary tasks such as XOR)
    the label itself, 0 or 1, is the target.
    """
    if jnp.issubdtype(y.dtype, jnp.integer):
        if net.out_features == 1:
            return y[:, None].astype(jnp.float32)
        return jax.nn.one_hot(y, net.out_features, dtype=jnp.float32)
    return y.astype(jnp.float32)


def labels_valid(net, y: jax.Array) -> jax.Array:
    """A bool scalar: every integer label lies in ``[0, classes)`` (one sigmoid unit holds two
    classes), or every float target is finite. Traceable, for guards inside `jit`."""
    if jnp.issubdtype(y.dtype, jnp.integer):
        return jnp.all((y >= 0) & (y < max(net.out_features, 2)))
    return jnp.all(jnp.isfinite(y))


def output_loss(net, a_y: jax.Array, y: jax.Array) -> jax.Array:
    """Batch-mean loss from the output pre-activation ``a_y`` (N, out) and ``y``."""
    return jnp.mean(LOSSES[net.loss].per_example(a_y, targets(net, y)))


def output_error(net, a_y: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns ``(loss, e)`` with ``e = dLoss/da_y`` of the batch-mean loss, shape (N, out).

    ``e`` carries the ``1/N`` of the batch mean, so sums over the batch of per-example updates
    built from it are batch means, scaled exactly as `jax.grad` scales the BP gradient.
    """
    return jax.value_and_grad(lambda a: output_loss(net, a, y))(a_y)


def accuracy(net, a_y: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of rows whose arg-max output is the label (argmax of ``y`` for float targets).

    For a single output unit (e.g. XOR with a sigmoid), the prediction is ``y_hat > 0.5``.
    """
    if net.out_features == 1:
        pred = (LOSSES[net.loss].output(a_y)[:, 0] > 0.5).astype(jnp.int32)
        label = y if jnp.issubdtype(y.dtype, jnp.integer) else (y[:, 0] > 0.5).astype(jnp.int32)
    else:
        pred = jnp.argmax(a_y, axis=-1)
        label = y if jnp.issubdtype(y.dtype, jnp.integer) else jnp.argmax(y, axis=-1)
    return jnp.mean(pred == label)
