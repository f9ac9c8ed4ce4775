"""The stacked MLP's arithmetic: its parameters, its forward pass (one `lax.scan` over the stacked
hidden layers) and its logits. `jdfa.MLP` (in `jdfa.mlp`) is the net these serve; the functions
here read only its fields.

Notation follows the papers: hidden layer ``i`` (1-based, ``i = 1 .. depth``) computes
``a_i = W_i h_{i-1} + b_i`` and ``h_i = f(a_i)`` with ``h_0 = x``; the output layer computes
``a_y = W_y h_depth + b_y``. In code we use the row-vector convention of JAX (a batch is a
matrix of rows), so a layer is ``a = h @ W + b`` with ``W`` of shape ``(fan_in, fan_out)``.

Parameters are a `Params` of three `Dense` layers:

* ``input``  : ``w (in_features, width)``, ``b (width,)`` -- hidden layer 1,
* ``hidden`` : ``w (depth - 1, width, width)``, ``b (depth - 1, width)`` -- hidden layers
  2..depth stacked on a leading *layer axis*, bottom (input side) first,
* ``output`` : ``w (width, out_features)``, ``b (out_features,)``.

Everything stacked over layers is indexed bottom-up: index ``0`` is hidden layer 1.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jdfa import draws
from jdfa.activations import FPRIME_FROM_H
from jdfa.losses import LOSSES
from jdfa.net import Net, mean_rms

WEIGHT_INITS = ("uniform", "lecun_normal", "he_normal", "glorot_uniform", "orthogonal", "zeros")


class Dense(NamedTuple):
    w: jax.Array
    b: jax.Array


class Params(NamedTuple):
    input: Dense  # w (in_features, width), b (width,)
    hidden: Dense  # w (depth - 1, width, width), b (depth - 1, width)
    output: Dense  # w (width, out_features), b (out_features,)


class Trace(NamedTuple):
    """What the forward pass keeps for the updates, each layer's input where its update reads it.

    x:      (N, in_features) the input ``h_0``, read by hidden layer 1.
    h_in:   (depth - 1, N, width) ``h_1 .. h_{depth-1}``, the inputs of hidden layers 2..depth,
            stacked exactly as the batched weight-update contraction reads them.
    h_top:  (N, width) ``h_depth``, the input of the output layer.
    fprime: (depth, N, width) ``f'(a_1) .. f'(a_depth)`` (None when not asked for), times the
            dropout mask when units were dropped.
    a_y:    (N, out_features) output pre-activation.
    keep:   (depth, N, width) the dropout mask, ``0`` or ``1 / (1 - dropout)`` per unit; None when
            no unit was dropped.
    """

    x: jax.Array
    h_in: jax.Array
    h_top: jax.Array
    fprime: jax.Array | None
    a_y: jax.Array
    keep: jax.Array | None = None


def init_params(key: jax.Array, net: Net) -> Params:
    """Draws the parameters of ``net``; biases start at zero."""
    k_in, k_hidden, k_out = jax.random.split(key, 3)
    n_hidden = net.depth - 1
    w_in = init_weight(k_in, (net.in_features, net.width), net.weight_init, net.activation)
    w_hidden = jax.vmap(lambda k: init_weight(k, (net.width, net.width), net.weight_init, net.activation))(
        jax.random.split(k_hidden, n_hidden)
    )
    w_out = init_weight(k_out, (net.width, net.out_features), net.weight_init, net.activation)
    return Params(
        input=Dense(w_in, jnp.zeros((net.width,), jnp.float32)),
        hidden=Dense(w_hidden.reshape(n_hidden, net.width, net.width),
                     jnp.zeros((n_hidden, net.width), jnp.float32)),
        output=Dense(w_out, jnp.zeros((net.out_features,), jnp.float32)),
    )


def init_weight(key, shape, weight_init: str, activation: str) -> jax.Array:
    """A weight of ``shape`` (``(fan_in, fan_out)``, or a conv kernel ``(..., in, out)`` whose
    ``fan_in`` is the product of all but the last axis) drawn as `MLP`'s ``weight_init`` says."""
    fan_in = math.prod(shape[:-1])
    if weight_init == "uniform":
        lim = 1.0 / np.sqrt(fan_in)
        return draws.uniform(key, shape, -lim, lim)
    if weight_init in ("lecun_normal", "he_normal"):
        variance = (1.0 if weight_init == "lecun_normal" else 2.0) / fan_in
        return np.float32(np.sqrt(variance)) * draws.normal(key, shape)
    if weight_init == "glorot_uniform":
        return jax.nn.initializers.glorot_uniform()(key, shape, jnp.float32)
    if weight_init == "orthogonal":
        gain = {"tanh": 5.0 / 3.0, "relu": np.sqrt(2.0)}.get(activation, 1.0)
        return jax.nn.initializers.orthogonal(scale=gain)(key, shape, jnp.float32)
    return jnp.zeros(shape, jnp.float32)


def check_inputs(net: Net, x, y=None) -> None:
    """Raises a clear error for inputs that do not fit ``net``.

    Shapes and ranks are checked always (they are static, also under `jit`); values only when
    concrete, so traced callers (`jit`, `vmap`, `make_jaxpr`) are not blocked: NaN or inf in ``x``
    is an error, whole-number inputs in [0, 255] (raw pixels) a warning, labels out of range an
    error. Under `jit`, `jdfa.train_step`'s guard skips such a step instead.
    """
    if jnp.ndim(x) != 2:
        raise ValueError(f"x must have rank 2 (batch, in_features={net.in_features}), "
                         f"got shape {jnp.shape(x)}")
    if jnp.shape(x)[1] != net.in_features:
        raise ValueError(f"x has {jnp.shape(x)[1]} features but the net expects "
                         f"in_features={net.in_features} (x shape {jnp.shape(x)})")
    if not isinstance(x, jax.core.Tracer):
        _check_values(np.asarray(x))
    if y is None:
        return
    batch = jnp.shape(x)[0]
    y_shape = jnp.shape(y)
    if y_shape[:1] != (batch,):
        raise ValueError(f"y has length {y_shape[:1]} but x has batch size {batch}")
    if jnp.issubdtype(jnp.result_type(y), jnp.integer):
        if len(y_shape) != 1:
            raise ValueError(f"integer labels y must have shape (batch,), got {y_shape}")
        if not LOSSES[net.loss].classification:
            raise TypeError(f"loss {net.loss!r} needs float targets, got integer labels")
        if not isinstance(y, jax.core.Tracer):
            y_np = np.asarray(y)
            n_classes = max(net.out_features, 2)  # one sigmoid unit holds two classes
            if y_np.size and (y_np.min() < 0 or y_np.max() >= n_classes):
                raise ValueError(f"labels must lie in [0, {n_classes}) for out_features="
                                 f"{net.out_features}, got values in [{y_np.min()}, {y_np.max()}]")
    elif y_shape != (batch, net.out_features):
        raise ValueError(f"float targets y must have shape (batch, out_features) = "
                         f"({batch}, {net.out_features}), got {y_shape}; pass integer class "
                         "labels of shape (batch,) for classification")


def _check_values(x: np.ndarray) -> None:
    if x.size and not np.isfinite(x).all():
        rows = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
        raise ValueError(f"x holds NaN or inf in {rows.size} row(s) (the first is row {rows[0]})")
    # Only where the warning can be right: standardised or other real-valued features are the
    # user's choice; whole numbers in [0, 255] reaching past 1 are raw pixels. One message for every
    # split, so Python's warning registry shows it once per place that checks the data.
    if x.size and x.max() > 1 and x.min() >= 0 and x.max() <= 255 and np.array_equal(x, np.round(x)):
        warnings.warn("the inputs are whole numbers in [0, 255]: raw pixel values? jdfa.data.load "
                      "scales images to [0, 1]; divide by 255 for the same", stacklevel=4)


def check_params(net: Net, params: Params) -> None:
    """Raises ``ValueError`` if ``params`` do not have the shapes of ``net``'s parameters."""
    expected = jax.eval_shape(lambda: init_params(jax.random.key(0), net))
    got = jax.tree.map(jnp.shape, params)
    want = jax.tree.map(lambda s: s.shape, expected)
    if got != want:
        raise ValueError(f"params do not fit {net}: expected shapes {want}, got {got}")


def layer(f, h, w, b, with_derivative: bool):
    """One layer ``f(h @ w + b)`` and, ``with_derivative``, ``f'(h @ w + b)`` (else None)."""
    a = h @ w + b
    if not with_derivative:
        return f(a), None
    # For an elementwise f, the JVP with a tangent of ones is f'(a); tanh and sigmoid reuse f(a).
    return jax.jvp(f, (a,), (jnp.ones_like(a),))


def forward(net: Net, params: Params, x: jax.Array, with_derivative: bool = True,
            key: jax.Array | None = None) -> Trace:
    """The forward pass: one `lax.scan` over the stacked hidden layers.

    Args:
      x: (N, in_features).
      key: drops hidden units with probability ``net.dropout`` (one mask per layer drawn from
        it); None, or ``net.dropout == 0``, drops nothing.

    Returns:
      a `Trace` (``fprime`` is ``None`` when ``with_derivative`` is False).
    """
    f, drop = net.f, net.dropout > 0 and key is not None
    keys = jax.random.split(key, net.depth) if drop else None
    # f' of tanh and sigmoid is a function of h, which the trace keeps anyway: recomputed after
    # the scan, which then neither computes nor stores it (with dropout h is scaled: stored).
    from_h = FPRIME_FROM_H.get(net.activation) if with_derivative and not drop else None
    in_scan = with_derivative and from_h is None

    def hidden(h, w, b, k):
        h_next, fprime = layer(f, h, w, b, in_scan)
        if not drop:
            return h_next, fprime, None
        keep = jax.random.bernoulli(k, 1.0 - net.dropout, h_next.shape) / (1.0 - net.dropout)
        return h_next * keep, None if fprime is None else fprime * keep, keep

    h1, fprime1, keep1 = hidden(x, params.input.w, params.input.b, keys[0] if drop else None)

    def step(h, xs):
        h_next, fprime, keep = hidden(h, *xs)
        # Emitting each layer's input (not its output) makes the stacked scan output the very
        # operand of the weight-update contraction: no concatenate copy of the activations.
        return h_next, (h, fprime, keep)

    h_top, (h_in, fprime_rest, keep_rest) = lax.scan(
        step, h1, (params.hidden.w, params.hidden.b, keys[1:] if drop else None))
    a_y = h_top @ params.output.w + params.output.b
    # XLA materialises these concatenates once (two fusions read them: the first layer's delta and
    # the others'); benchmarks/README.md measures that pass.
    fprime = jnp.concatenate([fprime1[None], fprime_rest]) if in_scan else None
    if from_h is not None:
        fprime = from_h(jnp.concatenate([h_in, h_top[None]]))
    keep = jnp.concatenate([keep1[None], keep_rest]) if drop else None
    return Trace(x, h_in, h_top, fprime, a_y, keep)


def apply(net: Net, params: Params, x: jax.Array) -> jax.Array:
    """The output pre-activation ``a_y`` (logits), shape (N, out_features): `measured_apply`'s
    (under `jit` its norms are never computed)."""
    return measured_apply(net, params, x)[0]


def measured_apply(net: Net, params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(a_y, norms)``: the logits and the (depth,) `jdfa.net.mean_rms` of each hidden layer's
    ``h_i`` on ``x``, bottom-up, measured inside the scan as it goes, so no (depth, N, width) trace
    is written (at 100 x 200, measuring `forward`'s trace took 2.2x the logits alone; this, 1.2x)."""
    check_inputs(net, x)
    f = net.f

    def measured(h, wb):
        h, _ = layer(f, h, wb[0], wb[1], False)
        return h, mean_rms(h, 1)

    h, _ = layer(f, x, params.input.w, params.input.b, False)
    first = mean_rms(h, 1)
    h, norms = lax.scan(measured, h, (params.hidden.w, params.hidden.b))
    return h @ params.output.w + params.output.b, jnp.concatenate([first[None], norms])


def layer_dots(u: Params, v: Params) -> jax.Array:
    """(depth + 1,) per-layer inner products of two params-shaped trees, weights and bias
    together: hidden layers 1..depth, then the output layer."""
    first = jnp.vdot(u.input.w, v.input.w) + jnp.vdot(u.input.b, v.input.b)
    hidden = jnp.einsum("lij,lij->l", u.hidden.w, v.hidden.w) + jnp.einsum(
        "li,li->l", u.hidden.b, v.hidden.b)
    last = jnp.vdot(u.output.w, v.output.w) + jnp.vdot(u.output.b, v.output.b)
    return jnp.concatenate([first[None], hidden, last[None]])
